"""Shared fixtures: the real-scan folder and small synthetic scenes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from labelfree3d.io.paths import DATA_ENV_VAR, data_root

DATA = data_root()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--exhaustive",
        action="store_true",
        help="also run the tests marked exhaustive (every segmenter on every shared scan, minutes)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect `exhaustive` tests unless --exhaustive is given or -m names the marker."""
    if config.getoption("--exhaustive") or "exhaustive" in (config.getoption("markexpr") or ""):
        return
    dropped = [item for item in items if item.get_closest_marker("exhaustive")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("exhaustive")]


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"real scan {path} not found; set {DATA_ENV_VAR} to the shared data folder"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has ../shared/data: a missing file is a real failure
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the shared real scans."""
    return _require(DATA)


@pytest.fixture(scope="session")
def scannet_scene_dir() -> Path:
    """Raw ScanNet scene folder scene0000_00 (mesh, segs, aggregation)."""
    return _require(DATA / "scannet" / "scene0000_00")


@pytest.fixture(scope="session")
def scannet_votenet_dir() -> Path:
    """Folder of the 14 scans of VoteNet's ScanNet export (<scene>_vert/_ins_label/_sem_label/_bbox.npy)."""
    return _require(DATA / "scannet-votenet")


@pytest.fixture(scope="session")
def osd_dir() -> Path:
    """Folder of the 45 labelled OSD learn clouds."""
    return _require(DATA / "osd" / "learn")


@pytest.fixture(scope="session")
def sevenscenes_dir() -> Path:
    """7-Scenes sequence folder (frames/ + camera-intrinsics.txt)."""
    return _require(DATA / "7scenes")


@pytest.fixture(scope="session")
def semantickitti_dir() -> Path:
    """Folder of the SemanticKITTI npy pairs."""
    return _require(DATA / "semantickitti")


# --- synthetic PCD files --------------------------------------------------------------------

_PCD_TYPES = {"f": "F", "i": "I", "u": "U"}


def _lzf_literals(data: bytes) -> bytes:
    """A valid LZF stream made only of literal runs (at most 32 bytes each)."""
    out = bytearray()
    for start in range(0, len(data), 32):
        chunk = data[start : start + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def write_pcd(
    path: Path,
    fields: dict[str, np.ndarray],
    data: str = "binary",
    width: int | None = None,
    height: int = 1,
    header: dict[str, str | None] | None = None,
    cut: int = 0,
) -> Path:
    """Write a PCD v0.7 file from named arrays ((N,) or (N, COUNT)), for tests.

    `header` replaces (str) or removes (None) header lines by keyword; `cut` drops that many
    bytes from the end of the file (to make truncated files).
    """
    arrays = {name: np.asarray(values) for name, values in fields.items()}
    n = next(iter(arrays.values())).shape[0]
    width = n // height if width is None else width
    counts = [1 if a.ndim == 1 else a.shape[1] for a in arrays.values()]
    lines = {
        "VERSION": "0.7",
        "FIELDS": " ".join(name.split("#")[0] for name in arrays),
        "SIZE": " ".join(str(a.dtype.itemsize) for a in arrays.values()),
        "TYPE": " ".join(_PCD_TYPES[a.dtype.kind] for a in arrays.values()),
        "COUNT": " ".join(str(c) for c in counts),
        "WIDTH": str(width),
        "HEIGHT": str(height),
        "VIEWPOINT": "0 0 0 1 0 0 0",
        "POINTS": str(n),
        "DATA": data,
    }
    for key, value in (header or {}).items():
        if value is None:
            lines.pop(key, None)
        else:
            lines[key] = value
    text = "# .PCD v0.7 - Point Cloud Data file format\n" + "".join(f"{k} {v}\n" for k, v in lines.items())
    columns = [a.reshape(n, c) for a, c in zip(arrays.values(), counts)]
    if data == "ascii":
        rows = []
        for i in range(n):
            values = []
            for column in columns:
                values += ["nan" if np.isnan(v) else repr(v.item()) for v in column[i]] if column.dtype.kind == "f" else [str(v) for v in column[i]]
            rows.append(" ".join(values))
        body = ("\n".join(rows) + "\n").encode()
    elif data == "binary_compressed":
        raw = b"".join(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes() for a in arrays.values())
        packed = _lzf_literals(raw)
        body = struct.pack("<II", len(packed), len(raw)) + packed
    else:
        dtype = np.dtype([(f"f{i}", a.dtype.newbyteorder("<"), (c,)) for i, (a, c) in enumerate(zip(arrays.values(), counts))])
        table = np.empty(n, dtype=dtype)
        for i, column in enumerate(columns):
            table[f"f{i}"] = column
        body = table.tobytes()
    blob = text.encode() + body
    path.write_bytes(blob[: len(blob) - cut] if cut else blob)
    return path


@pytest.fixture
def make_pcd():
    """The `write_pcd(path, fields, data=..., ...)` helper for synthetic PCD files."""
    return write_pcd
