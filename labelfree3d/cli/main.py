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
    """Run the CLI; user errors print one line to stderr and exit with status 2, Ctrl-C and SIGTERM exit 130."""
    args = sys.argv[1:] if argv is None else argv
    state.debug = "--debug" in args
    previous = _install_interrupt_handlers()
    try:
        status = _run(args)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    # typer versions differ in what an interrupt turns into (Abort, Exit(130), or a swallowed 0)
    if status == 130 or _received_signals:
        console.err("interrupted")
        return 130
    return status


_received_signals: list[int] = []


def _install_interrupt_handlers() -> dict[int, object]:
    """Make SIGTERM unwind like Ctrl-C (KeyboardInterrupt), so that writers remove their temporary files,
    and remember either signal, so that the exit status is 130 whatever typer makes of the interrupt.

    A SIGINT that the parent made us ignore (a background job) stays ignored. Returns the handlers
    replaced, to be restored; none outside the main thread, where Python cannot install handlers.
    """
    _received_signals.clear()

    def interrupt(signum: int, frame: object) -> None:
        _received_signals.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous: dict[int, object] = {}
    try:
        for number in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(number)
            if number == signal.SIGINT and current is not signal.default_int_handler:
                continue
            signal.signal(number, interrupt)
            previous[number] = signal.SIG_DFL if current is None else current
    except ValueError:  # not the main thread
        pass
    return previous


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
        return 130  # `main` says so
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
                return 130
            console.err("aborted")
            return 1
        raise
    return 0


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
