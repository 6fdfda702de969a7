"""Registry of scene readers, with format detection by folder layout, file name and extension."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelfree3d.errors import InputError, UnknownFormatError
from labelfree3d.structures import Scene

ReadFunction = Callable[..., Scene]
DetectFunction = Callable[[Path], bool]


@dataclass(frozen=True)
class ReaderSpec:
    """A registered reader.

    Attributes:
        name: format name used with `read_scene(..., format=name)` and `--format`.
        read: function `(path, **options) -> Scene`.
        extensions: lower-case file suffixes (".ply") this reader claims by default.
        detect: optional predicate recognising a path more specifically than its extension
            (a folder layout, a file-name pattern); tried before extensions.
        folder: True when the reader takes a folder.
        description: one line for `labelfree3d formats`.
    """

    name: str
    read: ReadFunction
    extensions: tuple[str, ...] = ()
    detect: DetectFunction | None = None
    folder: bool = False
    description: str = ""


READERS: dict[str, ReaderSpec] = {}


def register_reader(
    name: str,
    *,
    extensions: tuple[str, ...] = (),
    detect: DetectFunction | None = None,
    folder: bool = False,
    description: str = "",
) -> Callable[[ReadFunction], ReadFunction]:
    """Decorator registering a reader function under `name` (see `ReaderSpec`)."""

    def decorate(function: ReadFunction) -> ReadFunction:
        if name in READERS:
            raise ValueError(f"reader {name!r} registered twice")
        READERS[name] = ReaderSpec(name, function, tuple(e.lower() for e in extensions), detect, folder, description)
        return function

    return decorate


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for double in (".tar.gz",):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name of the reader that handles `path`, by layout, name pattern, then extension.

    Raises:
        InputError: the path does not exist.
        UnknownFormatError: no reader recognises it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    for spec in READERS.values():
        if spec.detect is not None and spec.folder == path.is_dir():
            try:
                if spec.detect(path):
                    return spec.name
            except OSError:
                continue
    if path.is_dir():
        raise UnknownFormatError(
            "folder layout not recognised (expected a ScanNet/ScanNet++ scene, S3DIS room, "
            "Pointcept scan or RGB-D frame folder)",
            path,
        )
    suffix = _suffix(path)
    for spec in READERS.values():
        if suffix in spec.extensions:
            return spec.name
    known = sorted({e for s in READERS.values() for e in s.extensions})
    raise UnknownFormatError(f"unknown file type {suffix or '(no extension)'!r}; known: {', '.join(known)}", path)


def read_scene(path: str | os.PathLike[str], format: str | None = None, **options: Any) -> Scene:
    """Read a scan into a `Scene`, choosing the reader automatically unless `format` is given.

    Args:
        path: file or folder.
        format: reader name (see `READERS`), or None to detect.
        **options: reader-specific options (e.g. `void_labels` for ScanNet).

    Raises:
        InputError (or a subclass): missing, unreadable, corrupt or inconsistent input; the
            message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if format is None:
        format = detect_format(path)
    if format not in READERS:
        raise UnknownFormatError(f"unknown format {format!r}; known: {', '.join(sorted(READERS))}", path)
    spec = READERS[format]
    if spec.folder != path.is_dir():
        kind = "a folder" if spec.folder else "a file"
        raise InputError(f"format {format!r} expects {kind}", path)
    try:
        scene = spec.read(path, **options)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, IndexError, EOFError) as error:
        detail = getattr(error, "strerror", None) or (str(error).splitlines() or [type(error).__name__])[0]
        raise InputError(f"cannot read as {format}: {detail}", path) from error
    scene.metadata.setdefault("format", format)
    return scene
