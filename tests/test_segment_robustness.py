"""Training-free segmenters beyond `test_segment_all_scans.py`: determinism, `--set` values that
name the valid range, errors raised inside a method that name the scan, and `labelfree3d segment`
on degenerate files through the installed console script.

The real crops come from `tests/_scan_crops.py` (2,500 points of one scan of each kind, and a mesh
fused from four 7-Scenes frames). Nothing here asserts a time.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import numpy as np
import plyfile
import pytest
from _console import console_script
from _scan_crops import KINDS, read_crops
from threadpoolctl import threadpool_limits

from labelfree3d.cli.common import parse_settings
from labelfree3d.errors import InputError, LabelFree3DError, ParameterError
from labelfree3d.io import read_predictions
from labelfree3d.segment import SEGMENTERS, make_segmenter, segment_file
from labelfree3d.structures import InstanceMasks

ROOT = Path(__file__).resolve().parents[1]
METHODS = sorted(name for name, cls in SEGMENTERS.items() if not cls.requires_model)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # one BLAS / OpenMP thread, as in test_segment_all_scans.py (two workers on two cores)
    with threadpool_limits(limits=1):
        yield


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    return message


# --- determinism -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_readings(data_dir, sevenscenes_dir):
    """The crops read twice from the files: no array or cache is shared between the two."""
    return read_crops(data_dir), read_crops(data_dir)


def _same(first: InstanceMasks, second: InstanceMasks) -> bool:
    return (
        first.num_points == second.num_points
        and np.array_equal(first.indptr, second.indptr)
        and np.array_equal(first.indices, second.indices)
        and np.array_equal(first.scores, second.scores)
    )


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("method", METHODS)
def test_same_seed_gives_identical_masks_and_scores(method, two_readings):
    fields = {f.name for f in dataclasses.fields(SEGMENTERS[method])}
    settings = {"seed": 7} if "seed" in fields else {}
    first, second = two_readings
    found = 0
    for kind in KINDS:
        # fresh scene objects: the room structure and the scan scale are detected again each time
        masks = make_segmenter(method, **settings).segment(first[kind].replace())
        again = make_segmenter(method, **settings).segment(second[kind].replace())
        assert _same(masks, again), f"{method} on the {kind} crop: {len(masks)} vs {len(again)} masks"
        found += len(masks)
    assert found > 0, f"{method} found no mask on any crop: nothing was compared"


# --- parameter values from the issue: one line naming method.parameter and the valid range ---------

ISSUE_SETTINGS = [
    ("kmeans", "n_clusters=inf", "kmeans.n_clusters must be a finite number in [0, 1000], got inf"),
    ("dbscan", "min_samples=1e9", "dbscan.min_samples must be in [1, 1000000], got 1000000000"),
    ("felzenszwalb", "k=inf", "felzenszwalb.k must be a finite number in [1, 1000], got inf"),
    ("kmeans", "seed=1e20", "kmeans.seed must be in [0, 4294967295], got 1e+20"),
    ("multicut", "k1=.inf", "multicut.k1 must be a finite number in [1, 100], got inf"),
    ("multicut", "seed=1e20", "multicut.seed must be in [0, 4294967295], got 1e+20"),
    ("ncut", "max_instances=1e400", "ncut.max_instances must be a finite number in [1, 1000000000], got inf"),
    ("ncut", "modality_weights=1,inf", "ncut.modality_weights must be a finite number in [0.0, 1000000.0], got inf"),
]


@pytest.mark.parametrize("method, setting, message", ISSUE_SETTINGS, ids=[f"{m}-{s}" for m, s, _ in ISSUE_SETTINGS])
def test_set_values_out_of_range_name_the_parameter_and_its_range(method, setting, message):
    settings = parse_settings([setting])  # exactly what `--set` gives the library
    if method == "ncut" and setting.startswith("modality_weights"):
        settings["modalities"] = "rgb,normal"
    with pytest.raises(ParameterError) as raised:
        make_segmenter(method, **settings)
    assert _one_line(raised.value) == message


def test_set_values_that_are_not_numbers_keep_the_coercion_message():
    with pytest.raises(ParameterError, match=r"kmeans.n_clusters='1.5': expected an integer"):
        make_segmenter("kmeans", n_clusters="1.5")
    with pytest.raises(ParameterError, match=r"kmeans.n_clusters='many'"):
        make_segmenter("kmeans", n_clusters="many")
    assert make_segmenter("kmeans", n_clusters="1e3").n_clusters == 1000


# --- errors raised inside a method name the scan ---------------------------------------------------


def test_dbscan_memory_refusal_names_the_scan_and_the_method(tmp_path):
    # 20,000 distinct points within 0.1 mm and eps = 5 cm: every point neighbours every other
    path = tmp_path / "pile.npy"
    np.save(path, np.random.default_rng(3).normal(size=(20000, 3)) * 1e-4)
    with pytest.raises(ParameterError) as raised:
        segment_file(path, "dbscan", {"structure": "keep", "voxel_size": 0}, output=tmp_path / "out.npz")
    message = _one_line(raised.value)
    assert message.startswith(f"{path}: dbscan: eps=0.05 puts "), message
    assert not (tmp_path / "out.npz").exists()


def test_ncut_refuses_more_superpoints_than_fit_in_memory_naming_the_scan(tmp_path):
    # single-point superpoints of 12,000 points would need dense 12,000 x 12,000 affinities
    path = tmp_path / "cloud.npy"
    np.save(path, np.random.default_rng(4).random((12000, 3)))
    settings = {"structure": "keep", "superpoint_min_size": 1, "superpoint_k_thresh": 1e-9, "modalities": "normal"}
    with pytest.raises(ParameterError) as raised:
        segment_file(path, "ncut", settings, output=tmp_path / "out.npz")
    message = _one_line(raised.value)
    assert message.startswith(f"{path}: ncut: ") and "superpoints, more than the 10000" in message, message
    assert "superpoint_min_size" in message and not (tmp_path / "out.npz").exists()


# --- dbscan on awkward coordinates and a tiny eps --------------------------------------------------


def _awkward_clouds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    blobs = np.vstack([rng.normal(size=(300, 3)) * 0.02, rng.normal(size=(300, 3)) * 0.02 + [0.5, 0.0, 0.0]])
    with_nan = blobs.copy()
    with_nan[::7, 1] = np.nan
    with_inf = blobs.copy()
    with_inf[::11, 2] = np.inf
    return {
        "nan rows": with_nan,
        "inf rows": with_inf,
        "integers": np.round(blobs * 100).astype(np.int64),  # centimetres as int64: 1 unit = 1 m
        "1e30 scale": blobs * 1e30,
        "1e6 offset": blobs + 1e6,
    }


AWKWARD = _awkward_clouds()


@pytest.mark.parametrize("cloud", sorted(AWKWARD))
def test_dbscan_on_awkward_coordinates_gives_masks_or_one_line_naming_the_file(cloud, tmp_path):
    path = tmp_path / f"{cloud.replace(' ', '_')}.npy"
    np.save(path, AWKWARD[cloud])
    try:
        run = segment_file(path, "dbscan", output=tmp_path / "out.npz")
    except LabelFree3DError as error:
        assert str(path) in _one_line(error)
        assert not (tmp_path / "out.npz").exists()
    else:
        assert run.masks.num_points == run.scene.num_points and np.isfinite(run.masks.scores).all()
        assert read_predictions(run.output)[0].num_points == run.scene.num_points


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["tabletop frame", "room mesh"])
def test_dbscan_with_a_tiny_eps_on_a_real_crop_finds_nothing_rather_than_failing(kind, two_readings):
    scene = two_readings[0][kind].replace()
    masks = make_segmenter("dbscan", eps=1e-6, voxel_size=0).segment(scene)
    assert masks.num_points == scene.num_points and len(masks) == 0  # no two points within a micrometre


# --- colours: defaults fit the scan, an explicit request does not --------------------------------------


@pytest.mark.realdata
def test_ncut_defaults_fit_a_colourless_scan_and_explicit_rgb_is_refused(two_readings):
    # the default modalities (normal, fpfh, rgb) drop rgb when the scan has no colours
    lidar = two_readings[0]["lidar sweep"]
    assert lidar.colors is None
    assert isinstance(make_segmenter("ncut").segment(lidar.replace()), InstanceMasks)
    room = two_readings[0]["room mesh"].replace(colors=None)
    assert len(make_segmenter("ncut").segment(room)) > 0  # normals and FPFH alone still cut objects out
    for scene in (lidar, room):
        with pytest.raises(InputError, match="the 'rgb' modality needs colours and the scene has none") as raised:
            make_segmenter("ncut", modalities="rgb,normal").segment(scene.replace())
        assert scene.source is not None and raised.value.path == str(scene.source)


# --- hdbscan's cluster_selection_epsilon --------------------------------------------------------------


@pytest.mark.realdata
def test_hdbscan_epsilon_that_merges_clusters_gives_masks_or_a_one_line_error(two_readings):
    # scikit-learn's epsilon search fails under NumPy 2 (scikit-learn issue #33219) whenever the
    # epsilon merges clusters; a fixed scikit-learn gives masks instead
    scene = two_readings[0]["room cloud"].replace()
    try:
        masks = make_segmenter("hdbscan", cluster_selection_epsilon=100.0).segment(scene)
    except ParameterError as error:
        assert "hdbscan.cluster_selection_epsilon=100.0" in _one_line(error) and "use 0" in str(error)
    else:
        assert masks.num_points == scene.num_points and np.isfinite(masks.scores).all()


# --- `labelfree3d segment` on degenerate files ------------------------------------------------------


def _write_ply(path: Path, points: np.ndarray) -> None:
    vertex = np.array([tuple(p) for p in points], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(path))


@pytest.mark.parametrize("method", METHODS)
def test_segment_cli_on_a_two_point_file_exits_0_with_masks_or_2_with_one_line(method, tmp_path):
    scan = tmp_path / "two_points.ply"
    _write_ply(scan, np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    out = tmp_path / "masks.npz"
    result = subprocess.run(
        [console_script(), "segment", str(scan), "--method", method, "-o", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        timeout=300,
        cwd=tmp_path,
    )
    combined = result.stdout + result.stderr
    assert "Traceback" not in combined, combined
    if result.returncode == 0:
        masks, info = read_predictions(out)
        assert masks.num_points == 2 and info["method"] == method
    else:
        assert result.returncode == 2, combined
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(scan) in lines[0], combined
        assert not out.exists()

