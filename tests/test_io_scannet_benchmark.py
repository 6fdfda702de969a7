"""ScanNet benchmark text files: mask files in every layout ScanNet's loader accepts, and garbage."""

from __future__ import annotations

import numpy as np
import pytest

from labelfree3d import FormatError, InstanceMasks
from labelfree3d.io import read_scannet_benchmark, read_scene, write_scannet_benchmark
from labelfree3d.io._integer_lines import binary_lines, integer_lines, normalise_lines


def _scannet_loader(path):
    """What ScanNet's `util_3d.load_ids` does with a mask file (the reference for every layout)."""
    with open(path) as handle:
        return np.array(handle.read().splitlines(), dtype=np.int64)


def _write_index(folder, scene, columns, scores):
    """A benchmark folder whose mask files hold the given bytes (one file per mask)."""
    (folder / "predicted_masks").mkdir(parents=True)
    lines = []
    for k, data in enumerate(columns):
        relative = f"predicted_masks/{scene}_{k:03d}.txt"
        (folder / relative).write_bytes(data)
        lines.append(f"{relative} 1 {scores[k]:.6f}")
    index = folder / f"{scene}.txt"
    index.write_text("\n".join(lines) + "\n")
    return index


def _layouts(member: np.ndarray, rng: np.random.Generator) -> dict[str, bytes]:
    """The same mask (N,) bool in the layouts mask writers produce."""
    zero_one = "".join("1\n" if m else "0\n" for m in member)
    values = np.where(member, rng.choice([-7, 3, 12, 1000], member.shape[0]), 0)
    return {
        "0/1 lines": zero_one.encode(),
        "no final newline": zero_one.rstrip("\n").encode(),
        "CRLF": zero_one.replace("\n", "\r\n").encode(),
        "CRLF, no final newline": zero_one.replace("\n", "\r\n").rstrip("\r\n").encode(),
        "blank lines at the end": (zero_one + "\n\n").encode(),
        "old Mac CR": zero_one.replace("\n", "\r").encode(),
        "multi-digit and negative ids": "".join(f"{v}\n" for v in values).encode(),
        "unsigned multi-digit ids": "".join(f"{abs(v)}\n" for v in values).encode(),
        "leading zeros": "".join("001\n" if m else "000\n" for m in member).encode(),
        "blanks around the numbers": "".join(" 1 \n" if m else "\t0\n" for m in member).encode(),
    }


def test_every_layout_gives_the_masks_and_agrees_with_scannets_loader(tmp_path):
    rng = np.random.default_rng(0)
    member = rng.random(500) < 0.3
    member[-1] = True  # the last line matters for the missing-newline layouts
    for i, (layout, data) in enumerate(_layouts(member, rng).items()):
        folder = tmp_path / f"layout{i}"
        index = _write_index(folder, "scene0000_00", [data, b"0\n" * 500], [0.9, 0.1])
        masks, labels = read_scannet_benchmark(index)
        assert masks.num_points == 500, layout
        assert np.array_equal(masks[0], np.flatnonzero(member)), layout
        assert len(masks[1]) == 0 and labels.tolist() == [1, 1], layout
        if layout not in ("blank lines at the end",):  # ScanNet's loader chokes on blank lines
            mask_file = folder / "predicted_masks" / "scene0000_00_000.txt"
            assert np.array_equal(_scannet_loader(mask_file) != 0, member), layout


def test_the_fast_paths_take_the_common_layouts():
    assert binary_lines(normalise_lines(b"0\n1\n1")).tolist() == [False, True, True]
    assert binary_lines(normalise_lines(b"0\r\n1\r\n")).tolist() == [False, True]
    assert binary_lines(normalise_lines(b"0\n2\n")) is None  # other digits: the general parser
    assert binary_lines(normalise_lines(b"0\n 1\n")) is None
    assert normalise_lines(b"") == b"" and normalise_lines(b"\n\n") == b""
    assert integer_lines(normalise_lines(b"3001\n0\n39012"), "x.txt", "file").tolist() == [3001, 0, 39012]
    assert integer_lines(b"-5\n+6\n 7 \n", "x.txt", "file").tolist() == [-5, 6, 7]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"0\nabc\n1\n", 2),
        (b"0\n\n1\n", 2),  # a blank line in the middle loses a vertex
        (b"0 1\n1\n", 1),  # two numbers on one line
        (b"1.0\n0\n", 1),
        (b"0\n-\n", 2),
        (b"0\n- 5\n", 2),
        (b"0\n1\n\x00\n", 3),
    ],
)
def test_garbage_is_a_one_line_format_error_naming_the_file_and_line(tmp_path, data, line):
    index = _write_index(tmp_path, "sceneX", [b"0\n1\n0\n", data], [0.5, 0.5])
    with pytest.raises(FormatError) as caught:
        read_scannet_benchmark(index)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "predicted_masks" / "sceneX_001.txt"))
    assert f"line {line} is" in message and "one integer per vertex line" in message
    assert len(message.splitlines()) == 1


def test_values_beyond_int64_and_length_mismatch_are_errors(tmp_path):
    index = _write_index(tmp_path / "a", "s", [b"0\n99999999999999999999\n"], [0.5])
    with pytest.raises(FormatError, match="s_000.txt: .*does not fit in 64 bits"):
        read_scannet_benchmark(index)
    index = _write_index(tmp_path / "b", "s", [b"0\n1\n", b"0\n1\n1\n"], [0.5, 0.4])
    with pytest.raises(FormatError, match="s_001.txt: mask has 3 lines, earlier masks have 2"):
        read_scannet_benchmark(index)


def test_real_scannet_masks_in_every_layout(tmp_path, scannet_scene_dir):
    """scene0000_00's 55 objects as masks over its 81,369 vertices, written by us and in other layouts."""
    scene = read_scene(scannet_scene_dir)
    truth = InstanceMasks.from_labels(scene.gt.instance_ids)
    index = write_scannet_benchmark(truth, tmp_path / "ours", scene.name)
    back, _ = read_scannet_benchmark(index)
    assert len(back) == 55 and back.num_points == 81_369
    assert np.array_equal(back.indptr, truth.indptr) and np.array_equal(back.indices, truth.indices)
    # ScanNet's own exporter writes '%d\n' of int32 0/1; others write the instance's encoded id, CRLF
    columns, expected = [], []
    for k in range(0, 55, 11):
        member = np.zeros(scene.num_points, dtype=bool)
        member[truth[k]] = True
        encoded = np.where(member, 39_000 + k + 1, 0)
        columns.append("".join(f"{v}\r\n" for v in encoded).encode())
        expected.append(truth[k])
    index = _write_index(tmp_path / "encoded", scene.name, columns, np.linspace(1, 0.5, len(columns)))
    back, _ = read_scannet_benchmark(index)
    for k, indices in enumerate(expected):
        assert np.array_equal(back[k], indices)


def test_non_finite_confidence_is_a_format_error_naming_the_index(tmp_path):
    index = _write_index(tmp_path, "s", [b"0\n1\n"], [0.5])
    index.write_text(index.read_text().replace("0.500000", "nan"))
    with pytest.raises(FormatError, match=r"s.txt: mask scores contain NaN"):
        read_scannet_benchmark(index)
