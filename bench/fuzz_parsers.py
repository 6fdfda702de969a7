"""Coverage-guided fuzzing of the PLY and PCD parsers, for a bounded time.

    python bench/fuzz_parsers.py --seconds 300 [--engine atheris|mutation] [--out bench/results/fuzz]

Seeds are small files cut from the real shared scans (a binary and an ascii PLY mesh piece of
ScanNet's scene0000_00, ascii / binary / binary_compressed PCD pieces of OSD's learn0, and the
real learn0 header). Each input is written to a temporary file and read with `read_scene`; a
`LabelFree3DError` is the expected refusal, anything else is a finding: its input is saved under
`--out` (`finding-<hash>.<ply|pcd>`) and fuzzing goes on, so one run lists every distinct crash
site. The summary (executions, distinct findings with exception type, message and the
labelfree3d frame they came from) is printed as JSON and written to `--out/summary.json`.

Engines: atheris (libFuzzer, coverage-guided over labelfree3d and plyfile; `pip install
atheris`, the `fuzz` extra) when importable, else a mutation fuzzer (bit flips, byte runs,
splices and header numbers replaced by boundary values) driven by `random`.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FINDINGS: dict[str, dict] = {}
STATS = {"executions": 0, "refused": 0, "accepted": 0, "started": time.time()}
INTERESTING = [b"0", b"-1", b"1", b"4294967295", b"18446744073709551616", b"99999999999", b"nan", b"inf", b"-0",
               b"1e308", b"", b"x", b"F", b"U", b"I", b"binary", b"ascii", b"binary_compressed"]  # fmt: skip


def make_seeds(folder: Path) -> dict[str, bytes]:
    """Small valid PLY and PCD files derived from the shared scans (name -> bytes)."""
    import numpy as np

    from labelfree3d.io import read_scene, write_ply
    from labelfree3d.io.paths import data_root

    data = data_root()
    mesh = read_scene(data / "scannet/scene0000_00/scene0000_00_vh_clean_2.ply").subset(np.arange(300))
    write_ply(mesh, folder / "mesh.ply")
    write_ply(mesh, folder / "mesh_ascii.ply", binary=False)
    real_pcd = (data / "osd/learn/learn0.pcd").read_bytes()
    header_end = real_pcd.index(b"\n", real_pcd.index(b"DATA")) + 1
    cloud = read_scene(data / "osd/learn/learn0.pcd")
    points, n = cloud.points[:200], 200
    labels = (cloud.gt.instance_ids[:200] + 1).astype("<u4")
    head = (f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z label\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\n"
            f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n").encode()  # fmt: skip
    rows = "".join(f"{x:.5f} {y:.5f} {z:.5f} {v}\n" for (x, y, z), v in zip(points, labels)).encode()
    record = np.zeros(n, [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("label", "<u4")])
    record["x"], record["y"], record["z"], record["label"] = points[:, 0], points[:, 1], points[:, 2], labels
    # binary_compressed: fields one after another, as LZF literal runs (a valid stream)
    planar = b"".join(record[name].tobytes() for name in ("x", "y", "z", "label"))
    literal = bytearray()
    for start in range(0, len(planar), 32):
        chunk = planar[start : start + 32]
        literal += bytes([len(chunk) - 1]) + chunk
    compressed = len(literal).to_bytes(4, "little") + len(planar).to_bytes(4, "little") + bytes(literal)
    return {
        "mesh.ply": (folder / "mesh.ply").read_bytes(),
        "mesh_ascii.ply": (folder / "mesh_ascii.ply").read_bytes(),
        "ascii.pcd": head + b"DATA ascii\n" + rows,
        "binary.pcd": head + b"DATA binary\n" + record.tobytes(),
        "compressed.pcd": head + b"DATA binary_compressed\n" + compressed,
        "learn0_header.pcd": real_pcd[:header_end] + real_pcd[header_end : header_end + 4000],
    }


def run_one(data: bytes, scratch: Path, out: Path) -> None:
    """Parse `data` as PLY (first byte even) or PCD (odd); record anything but a LabelFree3DError."""
    from labelfree3d.errors import LabelFree3DError
    from labelfree3d.io import read_scene

    if not data:
        return
    suffix = ".ply" if data[0] % 2 == 0 else ".pcd"
    body = data[1:]
    path = scratch / f"input{suffix}"
    path.write_bytes(body)
    STATS["executions"] += 1
    try:
        read_scene(path, format=suffix[1:])
        STATS["accepted"] += 1
    except LabelFree3DError as error:
        STATS["refused"] += 1
        if "\n" in str(error):
            _record(ValueError(f"multi-line message: {str(error)[:200]!r}"), body, suffix, out)
    except MemoryError as error:
        _record(error, body, suffix, out)
    except Exception as error:  # a finding
        _record(error, body, suffix, out)


def _record(error: BaseException, body: bytes, suffix: str, out: Path) -> None:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "labelfree3d" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    key = f"{type(error).__name__}@{where}"
    if key in FINDINGS:
        FINDINGS[key]["count"] += 1
        return
    digest = hashlib.sha1(body).hexdigest()[:12]
    (out / f"finding-{digest}{suffix}").write_bytes(body)
    FINDINGS[key] = {"type": type(error).__name__, "where": where, "message": str(error)[:300],
                     "input": f"finding-{digest}{suffix}", "count": 1}  # fmt: skip
    print(f"finding: {key}: {str(error)[:160]}", file=sys.stderr, flush=True)


def _summary(out: Path, engine: str) -> None:
    summary = {"engine": engine, "seconds": round(time.time() - STATS["started"], 1),
               **{k: v for k, v in STATS.items() if k != "started"}, "findings": list(FINDINGS.values())}  # fmt: skip
    text = json.dumps(summary, indent=1)
    (out / "summary.json").write_text(text + "\n")
    print(text, flush=True)


def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    """One to four random edits: bit flips, byte runs, deletions, splices, header numbers replaced."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            out += bytes([rng.randrange(256)])
            continue
        choice = rng.random()
        header = max(1, min(len(out), (out.find(b"end_header") + 12) if b"end_header" in out else out.find(b"DATA") + 30))
        at = rng.randrange(len(out)) if rng.random() < 0.5 or header <= 1 else rng.randrange(header)
        if choice < 0.25:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif choice < 0.4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice < 0.55:
            del out[at : at + rng.randint(1, 64)]
        elif choice < 0.65:
            del out[rng.randrange(len(out)) :]  # truncation
        elif choice < 0.75:
            other = rng.choice(seeds) or b"\x00"
            cut = rng.randrange(len(other))
            out[at:] = other[cut:]
        else:  # replace a number of the header by a boundary value
            text = bytes(out[:header])
            digits = [i for i in range(len(text)) if 48 <= text[i] <= 57 and (i == 0 or not 48 <= text[i - 1] <= 57)]
            if digits:
                start = rng.choice(digits)
                end = start
                while end < len(text) and 48 <= text[end] <= 57:
                    end += 1
                out[start:end] = rng.choice(INTERESTING)
    return bytes(out)


def fuzz_mutation(seeds: dict[str, bytes], seconds: float, scratch: Path, out: Path, seed: int) -> None:
    rng = random.Random(seed)
    corpus = [(b"\x00" if name.endswith(".ply") else b"\x01") + data for name, data in seeds.items()]
    deadline = time.time() + seconds
    while time.time() < deadline:
        parent = rng.choice(corpus)
        child = parent[:1] + mutate(parent[1:], rng, [c[1:] for c in corpus])
        run_one(child, scratch, out)


def _instrument_parsers(atheris) -> int:
    """Add coverage instrumentation to the functions of the PLY / PCD parsers (and plyfile).

    They are imported already (the seeds were made with them), and instrumenting everything
    loaded (`atheris.instrument_all`, ~20,000 functions with numpy) takes minutes: only these
    modules' functions and methods are instrumented, in place.
    """
    import inspect

    import plyfile

    import labelfree3d.io._labels
    import labelfree3d.io.pcd
    import labelfree3d.io.ply
    import labelfree3d.io.registry

    count = 0
    for module in (plyfile, labelfree3d.io.ply, labelfree3d.io.pcd, labelfree3d.io.registry, labelfree3d.io._labels):
        targets = []
        for value in vars(module).values():
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                targets.append(value)
            elif inspect.isclass(value) and value.__module__ == module.__name__:
                targets += [v for v in vars(value).values() if inspect.isfunction(v)]
                targets += [v.__func__ for v in vars(value).values() if isinstance(v, (classmethod, staticmethod))]
        for function in targets:
            try:
                atheris.instrument_func(function)
                count += 1
            except Exception:  # e.g. numba-compiled kernels: left uninstrumented
                continue
    print(f"instrumented {count} parser functions", file=sys.stderr, flush=True)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="Fuzzing time (default 300).")
    parser.add_argument("--engine", choices=("auto", "atheris", "mutation"), default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the mutation engine.")
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="labelfree3d-fuzz-"))
    seeds = make_seeds(scratch)
    engine = args.engine
    if engine in ("auto", "atheris"):
        try:
            import atheris
        except ImportError:
            if engine == "atheris":
                raise SystemExit("atheris is not installed (pip install atheris); use --engine mutation")
            engine = "mutation"
        else:
            engine = "atheris"
    run_one(b"\x01" + seeds["compressed.pcd"], scratch, args.out)  # compiles the LZF kernel before timing
    if engine == "mutation":
        atexit.register(_summary, args.out, engine)
        fuzz_mutation(seeds, args.seconds, scratch, args.out, args.seed)
        return
    corpus = scratch / "corpus"
    corpus.mkdir()
    for name, data in seeds.items():
        (corpus / name).write_bytes((b"\x00" if name.endswith(".ply") else b"\x01") + data)
    _instrument_parsers(atheris)
    # libFuzzer leaves through C's exit(), which skips Python's atexit hooks: the callback ends
    # the run itself at the deadline (libFuzzer's own -max_total_time is only a backstop)
    deadline = time.time() + args.seconds

    def one_input(data: bytes) -> None:
        if time.time() > deadline:
            _summary(args.out, engine)
            sys.stdout.flush()
            os._exit(0)
        run_one(data, scratch, args.out)

    libfuzzer = [sys.argv[0], f"-max_total_time={int(args.seconds) + 60}", "-rss_limit_mb=4096", "-max_len=65536",
                 f"-artifact_prefix={args.out}{os.sep}", str(corpus)]  # fmt: skip
    atheris.Setup(libfuzzer, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
