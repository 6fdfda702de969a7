"""Outputs that never lose data or lie: write to a temporary sibling, then rename into place.

Rules every writer of labelfree3d follows through `atomic_path` / `atomic_folder`:

* the output appears whole or not at all: a crash, Ctrl-C, SIGTERM or a bad input leaves the
  previous file (or nothing) in place and removes its temporary file; only SIGKILL or a power
  cut can leave a hidden ``.<name>.*.tmp*`` sibling behind, never a truncated output;
* an output that is an input of the same command is refused (`check_output`);
* a rename never replaces something that is not a regular file: an existing folder, socket or
  block device is refused; a character device (``/dev/null``, a terminal) or a pipe
  (``/dev/stdout`` piped into another program) is written through, after the data is complete;
  a symbolic link is kept and the file it points to is replaced;
* a folder that cannot be written (read-only, ``/proc``, a parent that is a file, a full disk)
  raises `InputError` naming the output, which the CLI prints as one line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from labelfree3d.errors import InputError

__all__ = ["atomic_path", "atomic_folder", "check_output", "deferred_interrupts", "ensure_output_folder", "write_text_atomic"]

PathLike = str | os.PathLike[str]

# errors of the write itself (as opposed to a bug in the writer): reported as a one-line InputError
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def check_output(path: PathLike, inputs: Iterable[PathLike | None] = (), folder: bool = False) -> Path:
    """Refuse an output path that would destroy an input or replace something that is no regular file.

    Cheap (a few `stat` calls), so commands call it before their expensive work; the atomic
    writers call it again just before writing.

    Args:
        path: the output file (or folder when `folder`).
        inputs: the files or folders the command reads; None entries are ignored.
        folder: the output is a folder (e.g. the ScanNet benchmark layout) rather than a file.

    Returns:
        `path` as a Path.

    Raises:
        InputError (naming `path`): it is one of `inputs`; it is a folder (file outputs) or a file
            (folder outputs); it is a socket or a block device.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise InputError(f"the output is the input {source}; refusing to overwrite it (choose another output path)", path)
    try:
        mode = os.stat(path).st_mode  # follows symbolic links: what a write would reach
    except FileNotFoundError:
        _probe_writable(path)
        return path
    except OSError as error:
        raise _write_error(error, path) from error
    if folder:
        if not stat.S_ISDIR(mode):
            raise InputError("exists and is not a folder; the output here is a folder", path)
        return path
    if stat.S_ISDIR(mode):
        raise InputError("is a folder; give a file name for the output", path)
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        raise InputError("exists and is not a regular file (a socket or block device?); refusing to replace it", path)
    return path


def _probe_writable(path: Path) -> None:
    """Raise InputError when no file can be created where `path` (absent) would go.

    Creates and removes a hidden file in the nearest existing folder above `path`: permission
    bits say nothing for root, and pseudo file systems (``/proc``) refuse whatever they say.
    """
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write the output: {folder} is not a folder", path)
    try:
        with tempfile.TemporaryFile(prefix=".labelfree3d-probe.", dir=folder):
            pass
    except OSError as error:
        raise _write_error(error, path) from error


def _same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` name the same file (hard links and symbolic links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would resolve
        return os.path.realpath(a) == os.path.realpath(b)


def _is_stream(path: Path) -> bool:
    """True when `path` exists and is a character device or a pipe (written through, never renamed over)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _make_parents(folder: Path, output: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns those created (deepest last) so a failure can remove them."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    created = []
    try:
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
    except FileExistsError:
        if not folder.is_dir():
            _remove_folders(created)
            raise InputError(f"cannot create the output folder {folder}: a file of that name is in the way", output) from None
    except OSError as error:
        _remove_folders(created)
        raise InputError(f"cannot create the output folder {folder} ({error.strerror})", output) from error
    return created


def _remove_folders(created: list[Path]) -> None:
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            directory.rmdir()


def _write_error(error: OSError, path: Path) -> InputError:
    return InputError(f"cannot write the output ({error.strerror or error})", path)


def ensure_output_folder(path: PathLike) -> Path:
    """Create the output folder `path` (and its parents) if needed, e.g. a training run folder.

    Raises:
        InputError (naming `path`): it is a file, or it cannot be created (read-only, ``/proc``).
    """
    path = check_output(path, folder=True)
    _make_parents(path, path)
    return path


@contextlib.contextmanager
def atomic_path(path: PathLike, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`.

    The temporary file keeps the final suffix so that libraries choosing a format by extension
    (Open3D, imageio) behave the same. On an exception (KeyboardInterrupt included) the
    temporary file is removed and `path` is left untouched. See the module docstring for
    symbolic links, devices and pipes.

    Raises:
        InputError (naming `path`): `check_output` refuses it, or its folder cannot be created or
            written (read-only, ``/proc``, disk full).
    """
    path = check_output(path, inputs)
    if _is_stream(path):
        yield from _write_through(path)
        return
    # rename onto what a symbolic link points to, so the link itself survives
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    parent = target.parent if str(target.parent) else Path(".")
    created = _make_parents(parent, path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=parent)
    except OSError as error:
        _remove_folders(created)
        raise _write_error(error, path) from error
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        _remove_folders(created)
        if isinstance(error, OSError) and (error.errno in _WRITE_ERRNOS or error.filename in (str(tmp), str(target))):
            raise _write_error(error, path) from error
        raise


def _write_through(path: Path) -> Iterator[Path]:
    """Let the writer fill a temporary file, then copy it into the device or pipe `path`."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix="labelfree3d.", suffix=f".tmp{path.suffix}")
    except OSError as error:
        raise _write_error(error, path) from error
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as source, open(path, "wb") as sink:
            shutil.copyfileobj(source, sink)
    except OSError as error:
        raise _write_error(error, path) from error
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: PathLike, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Yield an empty staging folder beside `path`; on success its content appears in `path` whole.

    When `path` does not exist the staging folder is renamed to it (atomic). When it exists
    (e.g. a benchmark folder shared by several scenes) the staged files are moved into it,
    deepest files first, so a top-level index file lands last, with SIGINT/SIGTERM deferred
    until the moves are done; existing files of other names are kept. On an exception the
    staging folder is removed and `path` is untouched.

    Raises:
        InputError (naming `path`): it is an existing file or an input, or cannot be created.
    """
    path = check_output(path, inputs, folder=True)
    parent = path.parent if str(path.parent) else Path(".")
    created = _make_parents(parent, path)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    except OSError as error:
        _remove_folders(created)
        raise _write_error(error, path) from error
    try:
        yield staging
        with deferred_interrupts():
            if not path.exists():
                try:
                    os.rename(staging, path)
                    return
                except OSError:  # appeared meanwhile: merge below
                    pass
            files = sorted((p for p in staging.rglob("*") if not p.is_dir()), key=lambda p: -len(p.relative_to(staging).parts))
            for source in files:
                destination = path / source.relative_to(staging)
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, destination)
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_folders(created)
        if isinstance(error, OSError) and error.errno in _WRITE_ERRNOS:
            raise _write_error(error, path) from error
        raise


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the duration of the block (a short commit), then deliver them.

    A signal received inside the block is passed to the handler that was installed before (the
    CLI's turns both into KeyboardInterrupt) once the block is done. Outside the main thread,
    where Python cannot install handlers, the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        previous[number] = signal.signal(number, remember)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        if received:
            number = received[0]
            handler = previous[number]
            if callable(handler):
                handler(number, None)
            elif handler != signal.SIG_IGN:
                os.kill(os.getpid(), number)  # the default action, now that the block is done


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
