"""The `labelfree3d` command: sub-commands are registered from one module each."""

from __future__ import annotations

import importlib
import signal
import sys

import typer

from labelfree3d.cli.common import console, state
from labelfree3d.errors import LabelFree3DError

app = typer.Typer(
    name="labelfree3d",
    help="Label-free 3D instance segmentation of real scans.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# each module defines register(app); order is the order of `labelfree3d --help`
COMMAND_MODULES = [  # fmt: skip
    "info", "convert", "segment", "pseudo_label", "fuse", "lift", "train", "fit", "pretrain", "probe", "predict", "evaluate", "benchmark", "view", "report", "demo",
]


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    state.debug = debug


for _name in COMMAND_MODULES:
    importlib.import_module(f"labelfree3d.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line to stderr and exit with status 2."""
    args = sys.argv[1:] if argv is None else argv
    state.debug = "--debug" in args
    previous = _interrupt_on_sigterm()
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str]) -> int:
    """Run the typer app and map its outcomes to exit statuses (see `main`)."""
    try:
        status = app(args=args, standalone_mode=False)
        if isinstance(status, int) and not isinstance(status, bool):  # click returns typer.Exit's code here
            return status
    except LabelFree3DError as error:
        if state.debug:
            raise
        console.err(f"error: {error}")
        return 2
    except KeyboardInterrupt:
        console.err("interrupted")
        return 130
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except SystemExit as done:  # click's own exits (usage errors print their message)
        return int(done.code or 0) if isinstance(done.code, int) else 2
    except Exception as error:  # click usage errors and friends
        usage_errors, aborts = _click_exception_classes()
        if isinstance(error, usage_errors):
            error.show()
            return 2
        if isinstance(error, aborts):
            if isinstance(error.__context__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
                console.err("interrupted")
                return 130
            console.err("aborted")
            return 1
        raise
    return 0


def _interrupt_on_sigterm() -> object | None:
    """Let SIGTERM unwind like Ctrl-C (KeyboardInterrupt), so writers remove their temporary files and we exit 130.

    Returns the handler it replaced (None when it could not install one).
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called from a worker thread): leave it as it is
        return None
    return signal.SIG_DFL if previous is None else previous


def _click_exception_classes() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(ClickException classes, Abort classes) of every click that typer may be running on.

    typer up to 0.25 raises the `click` package's exceptions; 0.26 and later vendor click as
    `typer._click` (and define `Abort` in `typer.exceptions`), different classes, so all are looked up.
    """
    usage_errors: list[type[Exception]] = []
    aborts: list[type[Exception]] = []
    for module_name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        usage_errors.extend(c for c in [getattr(module, "ClickException", None)] if c is not None)
        aborts.extend(c for c in [getattr(module, "Abort", None)] if c is not None)
    return tuple(usage_errors), tuple(aborts)


if __name__ == "__main__":
    sys.exit(main())
