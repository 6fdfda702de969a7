"""The geometry layer stays torch-free and independent of the rest of labelfree3d."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import labelfree3d.geometry

GEOMETRY = Path(labelfree3d.geometry.__file__).parent
THIRD_PARTY = {"numpy", "scipy", "numba", "open3d", "fpsample"}
STANDARD = {"__future__", "dataclasses", "math", "numbers", "typing"}
OURS = ("labelfree3d.errors", "labelfree3d.structures", "labelfree3d.geometry")


def test_geometry_imports_only_allowed_modules():
    for source in sorted(GEOMETRY.glob("*.py")):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = top in THIRD_PARTY | STANDARD or name.startswith(OURS)
                assert allowed, f"{source.name} imports {name}"


def test_importing_geometry_does_not_load_torch():
    code = "import sys, labelfree3d.geometry; print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(GEOMETRY.parents[1]))  # this checkout, not an installed copy
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "False"
