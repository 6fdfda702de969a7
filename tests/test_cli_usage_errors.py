"""Usage errors through the installed console script: exit 2, one message, never a traceback.

These run the real `labelfree3d` entry point (not `main()` in-process) so that they exercise the
click that the resolved typer actually uses: typer 0.26 and later vendor click as `typer._click`, whose
exception classes differ from the `click` package's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _console_script() -> str:
    beside_python = Path(sys.executable).with_name("labelfree3d")
    found = str(beside_python) if beside_python.exists() else shutil.which("labelfree3d")
    if found is None:
        pytest.fail("the labelfree3d console script is not installed (pip install -e .)")
    return found


USAGE_ERRORS = {
    "unknown command": (["fitt"], "No such command"),
    "missing argument": (["segment"], "Missing argument"),
    "unknown option": (["info", "--no-such-option", "x.ply"], "No such option"),
    "not a number": (["view", "x.ply", "--max-points", "many"], "--max-points"),
    "unknown global option": (["--no-such-flag", "info"], "No such option"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors_exit_2_with_a_message_and_no_traceback(case: str, tmp_path: Path) -> None:
    args, expected = USAGE_ERRORS[case]
    result = subprocess.run(
        [_console_script(), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    combined = result.stdout + result.stderr
    assert result.returncode == 2, combined
    assert "Traceback" not in combined, combined
    assert expected in combined, combined
    assert list(tmp_path.iterdir()) == [], "a usage error must not write anything"


def test_no_arguments_shows_the_commands_without_a_traceback() -> None:
    result = subprocess.run([_console_script()], capture_output=True, text=True, timeout=120)
    combined = result.stdout + result.stderr
    assert "Traceback" not in combined
    assert "segment" in combined and "evaluate" in combined
