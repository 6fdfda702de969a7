"""Usage errors through the installed console script: exit 2, one message, never a traceback.

These run the real `labelfree3d` entry point (not `main()` in-process) so that they exercise the
click that the resolved typer actually uses: typer 0.26 and later vendor click as `typer._click`, whose
exception classes differ from the `click` package's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from _console import console_script

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
        [console_script(), *args],
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
    result = subprocess.run([console_script()], capture_output=True, text=True, timeout=120)
    combined = result.stdout + result.stderr
    assert "Traceback" not in combined
    assert "segment" in combined and "evaluate" in combined
