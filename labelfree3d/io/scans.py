"""Which scans a path names: the one place that turns "a scan, a folder of scans or a list" into paths.

Every command that takes a set of scans (`benchmark`, `evaluate`'s ground truth, `predict`,
`train`'s data lists, the batch engine in `labelfree3d.batch`) resolves it here, so they agree
on what counts as a scan:

* a file or folder `read_scene` recognises is one scan (a ScanNet scene folder, a `.pcd`, ...);
* any other folder is a folder of scans: its immediate children that are scans, in natural
  order (`learn2` before `learn10`); files that are not scans (READMEs, shell scripts, split
  lists) are skipped, and so are the label arrays that belong to another scan (the
  `_ins_label.npy` / `_sem_label.npy` / `_bbox.npy` beside a VoteNet `_vert.npy` export, the
  `*labels*.npy` beside a SemanticKITTI `*points*.npy`); the search is not recursive;
* a text file (`.txt`, `.lst`, `.list`) that is not a scan lists scans, one path per line
  (relative paths are taken from the list's folder; blank lines and `#` comments skipped); each
  line may itself be a scan, a folder of scans or a glob pattern;
* a glob pattern (`scans/*.ply`) is expanded.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

from labelfree3d.errors import InputError, UnknownFormatError
from labelfree3d.io.registry import READERS, detect_format

__all__ = ["ScanSource", "LIST_SUFFIXES", "list_scans", "is_scan", "is_companion_file", "companion_files", "natural_key"]

ScanSource = Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]]
LIST_SUFFIXES = (".txt", ".lst", ".list")

# label arrays of a VoteNet-style export: <scene>_vert.npy holds the points, these its labels
_VOTENET_COMPANION = re.compile(r"^(?P<scene>.+)_(ins_label|sem_label|bbox)\.npy$", re.IGNORECASE)


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers numerically: learn2 < learn10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def is_companion_file(path: Path) -> bool:
    """True for label arrays that belong to another scan of the same folder (not scans themselves)."""
    name = path.name
    match = _VOTENET_COMPANION.match(name)
    if match and path.with_name(f"{match['scene']}_vert{path.suffix}").exists():
        return True
    if path.suffix.lower() == ".npy" and "labels" in path.stem:
        stem = path.stem
        cut = stem.rfind("labels")
        points = path.with_name(stem[:cut] + "points" + stem[cut + len("labels") :] + path.suffix)
        return points.is_file()
    return False


def companion_files(path: str | os.PathLike[str]) -> list[Path]:
    """The label arrays that belong to the scan file `path` (the ones `is_companion_file` skips), sorted.

    A VoteNet `<scene>_vert.npy` has `<scene>_ins_label.npy`, `_sem_label.npy` and `_bbox.npy`;
    a SemanticKITTI-style `*points*.npy` has the `*labels*.npy` of the same name. Only files
    that exist are returned; a folder scan has none (its files are the scan).
    """
    path = Path(path)
    if path.is_dir():
        return []
    candidates: list[Path] = []
    stem, suffix = path.stem, path.suffix
    if stem.lower().endswith("_vert"):
        scene = stem[: -len("_vert")]
        candidates += [path.with_name(f"{scene}_{kind}{suffix}") for kind in ("ins_label", "sem_label", "bbox")]
    if suffix.lower() == ".npy" and "points" in stem:
        cut = stem.rfind("points")
        candidates.append(path.with_name(stem[:cut] + "labels" + stem[cut + len("points") :] + suffix))
    return sorted(c for c in candidates if c.is_file())


def is_scan(path: str | os.PathLike[str], format: str | None = None) -> bool:
    """True when `path` is a scan by itself: `read_scene` recognises it (or it suits `format`'s reader).

    Hidden files and the label arrays of another scan (`is_companion_file`) are not scans.
    """
    path = Path(path)
    if path.name.startswith(".") or not path.exists() or (path.is_file() and is_companion_file(path)):
        return False
    if format is not None:
        if format not in READERS:
            raise UnknownFormatError(f"unknown format {format!r}; known: {', '.join(sorted(READERS))}", path)
        return READERS[format].folder == path.is_dir()
    try:
        detect_format(path)
    except UnknownFormatError:
        return False
    return True


def _folder_children(folder: Path, format: str | None) -> list[Path]:
    children = sorted(folder.iterdir(), key=lambda p: natural_key(p.name))
    if format is not None and not READERS[format].folder:
        # a forced file reader: the children that are scans of any kind, read with that reader
        return [child for child in children if child.is_file() and is_scan(child)]
    return [child for child in children if is_scan(child, format)]


def _is_scan_folder(path: Path, format: str | None) -> bool:
    if format is None:
        return is_scan(path)
    spec = READERS[format]
    if not spec.folder:
        return False
    if spec.detect is not None:
        try:
            if spec.detect(path):
                return True
        except OSError:
            pass
    # a forced folder reader: the folder itself, unless it holds folders (then those are the scans)
    return not any(child.is_dir() and not child.name.startswith(".") for child in path.iterdir())


def _read_list(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the scan list ({error})", path) from error
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            lines.append((number, entry))
    return lines


def _expand(
    entry: str | os.PathLike[str], format: str | None, base: Path | None, listed_in: tuple[Path, int] | None
) -> list[Path]:
    text = os.fspath(entry)
    where = f"line {listed_in[1]}: " if listed_in else ""
    origin = listed_in[0] if listed_in else None
    if base is not None and not os.path.isabs(text):
        text = os.fspath(base / text)
    if any(ch in text for ch in "*?["):
        matches = sorted(glob.glob(text), key=natural_key)
        if not matches:
            raise InputError(f"{where}no scan matches this pattern" + (f" ({text})" if origin else ""), origin or text)
        found = []
        for match in matches:
            found += _expand(match, format, None, listed_in)
        return found
    path = Path(text)
    if not path.exists():
        if origin is not None:
            raise InputError(f"{where}no such scan file or folder: {path}", origin)
        raise InputError("no such scan file or folder", path)
    if path.is_dir():
        if _is_scan_folder(path, format):
            return [path]
        children = _folder_children(path, format)
        if not children:
            nested = any(child.is_dir() and not child.name.startswith(".") for child in path.iterdir())
            raise InputError("folder holds no scans" + (" (sub-folders are not searched)" if nested else ""), path)
        return children
    if format is None and path.suffix.lower() in LIST_SUFFIXES and not is_scan(path):
        if listed_in is not None:
            raise InputError(f"{where}a scan list may not name another list: {path}", origin)
        found = []
        for number, line in _read_list(path):
            found += _expand(line, format, path.parent, (path, number))
        if not found:
            raise InputError("scan list names no scans", path)
        return found
    if format is None:
        detect_format(path)  # a file that is no scan fails here, naming it
    return [path]


def list_scans(source: ScanSource, format: str | None = None) -> list[Path]:
    """The scans named by `source`, in order and without duplicates (see the module docstring).

    Args:
        source: a scan, a folder of scans, a scan list (`.txt`), a glob pattern, or a sequence
            of any of these.
        format: reader name the scans will be read with (`read_scene(..., format=)`); then
            every file (or, for folder readers, folder) given is taken as a scan without
            detection, and a folder of scans contributes its children of the reader's kind.

    Raises:
        InputError: a missing path, a pattern or folder without scans, an unreadable list, or
            a file that is not a scan (`UnknownFormatError`, naming it).
    """
    if format is not None and format not in READERS:
        raise UnknownFormatError(f"unknown format {format!r}; known: {', '.join(sorted(READERS))}")
    entries = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths: list[Path] = []
    for entry in entries:
        paths += _expand(entry, format, None, None)
    return list(dict.fromkeys(paths))
