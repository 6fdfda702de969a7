"""The installed `labelfree3d` console script, for tests that run the real entry point in a subprocess."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def console_script() -> str:
    """Path of the `labelfree3d` script beside this Python (the venv's), else on PATH; fails the test when missing."""
    beside_python = Path(sys.executable).with_name("labelfree3d")
    found = str(beside_python) if beside_python.exists() else shutil.which("labelfree3d")
    if found is None:
        pytest.fail("the labelfree3d console script is not installed (pip install -e .)")
    return found
