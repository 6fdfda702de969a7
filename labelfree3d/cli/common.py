"""Shared CLI plumbing: consoles, the --debug flag and `--set key=value` parsing."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from labelfree3d.errors import ParameterError


@dataclass
class _State:
    debug: bool = False


state = _State()


class _Consoles:
    """stdout for results, stderr for progress and errors (so `--json` output stays clean)."""

    def __init__(self) -> None:
        self.out = Console(highlight=False)
        self.error = Console(stderr=True, highlight=False)

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.out.print(*args, **kwargs)

    def err(self, message: str) -> None:
        self.error.print(message, markup=False, highlight=False, soft_wrap=True)

    def json(self, payload: Any) -> None:
        # plain print: rich would wrap long lines and break machine-readable output
        print(json.dumps(payload, indent=2, default=_to_builtin))


def _to_builtin(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


console = _Consoles()


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _scalar(raw: str) -> Any:
    """One `--set` value as YAML reads it, with `3e-3` a float (YAML 1.1 reads it as a string)."""
    import yaml

    value = yaml.safe_load(raw)
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """Parse repeated `--set key=value` options; values are read as YAML scalars (1, 0.5, 3e-3, true, a,b)."""
    import yaml

    settings: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ParameterError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ParameterError(f"--set expects key=value, got {pair!r}")
        try:
            value = _scalar(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and "," in value:
            value = [_scalar(v) for v in value.split(",")]
        settings[key] = value
    return settings


STATUS_LINE_DELAY_S = 2.0


@contextlib.contextmanager
def status_lines(title: str) -> Iterator[None]:
    """Show the library's `report_status` messages on stderr while the block runs.

    On a terminal: one spinner line, "title: message  0:01:12", rewritten as steps start, with the
    time elapsed ticking. Otherwise (logs, pipes, CI): one plain line per step that runs longer than
    `STATUS_LINE_DELAY_S`, "[12.3 s] message" (the time the step started), so that a long run shows
    which step it is in.
    """
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from labelfree3d.status import status_listener

    started = time.perf_counter()
    if console.error.is_terminal:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console.error, transient=True) as spinner:
            task = spinner.add_task(f"{title}…", total=None)

            def update(message: str) -> None:
                spinner.update(task, description=f"{title}: {message}…")

            with status_listener(update):
                yield
        return

    # a step's line appears only once the step has run for STATUS_LINE_DELAY_S: quick commands and
    # one-line errors stay one line in logs, while a long step still says what it is doing
    import threading

    pending: list[threading.Timer] = []

    def show(message: str, at: float) -> None:
        console.err(f"[{at:6.1f} s] {message}")

    def line(message: str) -> None:
        for timer in pending:
            timer.cancel()
        pending.clear()
        if STATUS_LINE_DELAY_S <= 0:
            show(message, time.perf_counter() - started)
            return
        timer = threading.Timer(STATUS_LINE_DELAY_S, show, args=(message, time.perf_counter() - started))
        timer.daemon = True
        pending.append(timer)
        timer.start()

    try:
        with status_listener(line):
            yield
    finally:
        for timer in pending:
            timer.cancel()


def exit_if_failed(errors: list[str], header: str) -> None:
    """Print `header` and one indented line per failed scan to stderr, then exit with status 1 (nothing when none failed)."""
    if not errors:
        return
    import typer

    console.err(header)
    for error in errors:
        console.err(f"  {error}")
    raise typer.Exit(1)
