"""No method crashes: every registered method on the shared scans, on degenerate clouds, with absurd parameters.

Every run uses the method's defaults (`make_segmenter(name)`) and must return `InstanceMasks` over
`scene.num_points` points with finite scores; degenerate input may instead raise `ParameterError`
or `InputError` with a one-line message, never another exception, a hang or a memory blow-up.

What runs where (seconds per method and scan with defaults: docs/methods/robustness.md):

- Always (`pytest`, `pytest -n 2`): about 165 s of CPU, 1.5-2 minutes with `-n 2` on two free cores:
  * every method on a 2,500-point crop of one scan of each kind (`tests/_scan_crops.py`: room
    mesh, room cloud, tabletop frame, LiDAR sweep and a mesh fused from 7-Scenes RGB-D frames),
    a few seconds in all;
  * every method on one scan of each dataset (`REPRESENTATIVE`): the raw ScanNet mesh
    scannet/scene0000_00, osd/learn/learn0.pcd, scannet-votenet/scene0000_00_vert.npy and the
    colour-less LiDAR sweep semantickitti/sk_points_000700.npy;
  * the fast methods (`FAST`: under a second a scan with defaults) on every scan that
    `list_scans` finds in the dataset folders (`DATASETS`: 1 + 45 + 14 + 2 scans);
  * the 7-Scenes folder: `read_scene` gives 100 RGB-D frames and no points, which is not a
    segmentable scan; every method raises `InputError` that says to fuse the frames first;
  * degenerate synthetic clouds (1, 2, 3, 10 points, identical, collinear, one plane, a far
    outlier, 1e6 offsets, integer coordinates, duplicates, tiny meshes) with and without
    colours, under a time and memory bound;
  * "inf", "-inf", "nan", "1e20", "1e400" and "-1" (but for multicut's signed sigma offsets) for
    every numeric parameter of every method, and "1e9" for the parameters that size an
    allocation, through `make_segmenter`; but for "-1", the message names `method.parameter`
    and its valid range ("kmeans.n_clusters must be a finite number in [0, 1000], got inf").
- With `--exhaustive` (marker `exhaustive`, deselected otherwise): the slow methods on the
  remaining scans as well, i.e. the full product of methods and scans (about 10 minutes of CPU,
  5 with `-n 2`).

Scans are read once per worker and kept (`_scene`, a few at a time), so the room structure each
method removes first is detected once per scan and worker, not once per test. BLAS and OpenMP run
one thread per worker (`one_thread`): two xdist workers with two OpenBLAS threads each on two
cores spin against each other, which made ncut's small dense eigenproblems ten times slower.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import resource
import signal
import time
import tracemalloc
import typing
from contextlib import contextmanager
from types import UnionType

import numpy as np
import pytest
from _scan_crops import KINDS, read_crops
from threadpoolctl import threadpool_limits

from labelfree3d.errors import InputError, LabelFree3DError, ParameterError
from labelfree3d.io import read_scene
from labelfree3d.io.paths import data_root
from labelfree3d.io.scans import list_scans
from labelfree3d.segment import SEGMENTERS, make_segmenter
from labelfree3d.structures import InstanceMasks, Scene

DATA = data_root()
METHODS = sorted(name for name, cls in SEGMENTERS.items() if not cls.requires_model)  # pointins_offsets: test_pointins.py
# under a second a scan with defaults on every shared scan (median; docs/methods/robustness.md)
FAST = ("birch", "felzenszwalb", "kmeans", "plane_euclidean")
SLOW = tuple(m for m in METHODS if m not in FAST)
# dataset folder -> number of scans `list_scans` must find there
DATASETS = {"scannet": 1, "osd/learn": 45, "scannet-votenet": 14, "semantickitti": 2}
REPRESENTATIVE = (
    "scannet/scene0000_00",
    "osd/learn/learn0.pcd",
    "scannet-votenet/scene0000_00_vert.npy",
    "semantickitti/sk_points_000700.npy",
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with threadpool_limits(limits=1):
        yield


def _scans(folder: str) -> list[str]:
    """Scans of a dataset folder relative to DATA; a placeholder when the folder is missing (the test then skips)."""
    try:
        return [path.relative_to(DATA).as_posix() for path in list_scans(DATA / folder)]
    except InputError:
        return [f"{folder} (missing)"]


ALL_SCANS = [scan for folder in DATASETS for scan in _scans(folder)]


def _runs() -> list:
    """(scan, method) pairs, scan by scan so that one worker gets a scan's runs together."""
    runs = []
    for scan in ALL_SCANS:
        for method in METHODS:
            if method in FAST or scan in REPRESENTATIVE:
                runs.append(pytest.param(scan, method, id=f"{scan}-{method}"))
            else:
                runs.append(pytest.param(scan, method, id=f"{scan}-{method}", marks=pytest.mark.exhaustive))
    return runs


@functools.lru_cache(maxsize=4)
def _scene(scan: str) -> Scene:
    path = DATA / scan
    if not path.exists():
        pytest.skip(f"real scan {path} not found; set LABELFREE3D_DATA to the shared data folder")
    return read_scene(path)


def check_masks(masks: InstanceMasks, scene: Scene) -> None:
    """The contract of `Segmenter.segment`: valid masks over the scene's points with finite scores."""
    assert isinstance(masks, InstanceMasks)
    assert masks.num_points == scene.num_points
    InstanceMasks(masks.indptr, masks.indices, masks.scores, masks.num_points)  # validates the invariants
    assert masks.scores.shape == (len(masks),)
    assert np.isfinite(masks.scores).all()


def check_one_line(error: Exception) -> None:
    message = str(error)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"


def test_the_shared_data_holds_every_dataset(data_dir):
    for folder, count in DATASETS.items():
        assert len(_scans(folder)) == count, folder
    assert set(REPRESENTATIVE) <= set(ALL_SCANS)


@pytest.mark.realdata
@pytest.mark.parametrize("scan, method", _runs())
def test_method_on_shared_scan(scan, method, data_dir):
    scene = _scene(scan)
    check_masks(make_segmenter(method).segment(scene), scene)


@pytest.mark.realdata
@pytest.mark.parametrize("method", METHODS)
def test_rgbd_frames_are_not_a_segmentable_scan(method, sevenscenes_dir):
    scene = read_scene(sevenscenes_dir)
    assert scene.num_points == 0 and scene.frames is not None
    with pytest.raises(InputError, match="fuse") as raised:
        make_segmenter(method).segment(scene)
    check_one_line(raised.value)


# --- small crops of every kind of scan ------------------------------------------------------------


@pytest.fixture(scope="module")
def crops(data_dir, sevenscenes_dir) -> dict[str, Scene]:
    return read_crops(data_dir)


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_method_on_a_crop_of_every_kind_of_scan(method, kind, crops, warm):
    scene = crops[kind].replace()  # a fresh copy: no structure cached by another method's run
    with bounded():
        try:
            masks = make_segmenter(method).segment(scene)
        except LabelFree3DError as error:  # allowed, but must be one line
            check_one_line(error)
            return
    check_masks(masks, scene)


@pytest.mark.realdata
@pytest.mark.parametrize("kind", KINDS)
def test_every_crop_holds_objects_the_methods_find(kind, crops):
    # the crops are not all floor or table: most methods find at least one mask on each
    scene = crops[kind]
    assert scene.num_points == 2500
    found = {method: len(make_segmenter(method).segment(scene.replace())) for method in METHODS}
    assert sum(count > 0 for count in found.values()) >= len(METHODS) // 2, found


# --- degenerate clouds ----------------------------------------------------------------------------

TIME_LIMIT = 60  # seconds a method may take on a cloud of at most a few thousand points
MEMORY_LIMIT = 500 * 2**20  # bytes of numpy / Python memory it may allocate on one


def _grid(n: int) -> np.ndarray:
    a, b = np.meshgrid(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, n))
    return np.stack([a.ravel(), b.ravel(), np.zeros(n * n)], axis=1)


def _degenerate_clouds() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(60, 3)) * 0.05
    tetra_faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])
    return {
        "1 point": (np.zeros((1, 3)), None),
        "2 points": (np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), None),
        "3 points": (np.eye(3), None),
        "10 points": (rng.normal(size=(10, 3)) * 0.05, None),
        "identical": (np.full((4000, 3), 3.25), None),
        "collinear": (np.linspace(0.0, 1.0, 500)[:, None] * np.array([1.0, 0.5, 0.2]), None),
        "one plane": (_grid(20), None),
        "far outlier": (np.vstack([blob, [[1000.0, 1000.0, 1000.0]]]), None),
        "1e6 offsets": (np.vstack([2.0 * _grid(20), blob + [1.0, 1.0, 0.2]]) + 1e6, None),
        "integer": (np.stack(np.meshgrid(*[np.arange(6)] * 3), axis=-1).reshape(-1, 3), None),
        "duplicates": (np.repeat(np.eye(3), 300, axis=0), None),
        "tetrahedron mesh": (np.vstack([np.zeros(3), np.eye(3)]), tetra_faces),
        "collapsed mesh": (np.zeros((4, 3)), tetra_faces),
    }


DEGENERATE = _degenerate_clouds()


@contextmanager
def bounded(seconds: int = TIME_LIMIT, memory: int = MEMORY_LIMIT):
    """Fail when the block runs longer than `seconds` or allocates more than `memory` bytes.

    Memory is what tracemalloc sees (numpy arrays, Python objects) and the growth of the
    process's peak resident set; time is an alarm in the main thread.
    """

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        yield
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    resident_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert traced_peak < memory, f"allocated {traced_peak / 2**20:.0f} MiB"
    assert resident_growth < 2 * memory, f"resident set grew by {resident_growth / 2**20:.0f} MiB"


@pytest.fixture(scope="module")
def warm():
    """Run every method once first, so that imports and JIT compilation count against no bound."""
    rng = np.random.default_rng(1)
    scene = Scene(points=rng.normal(size=(500, 3)), colors=rng.random((500, 3)))
    for method in METHODS:
        make_segmenter(method).segment(scene)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # fewer distinct points than clusters
@pytest.mark.parametrize("colored", [False, True], ids=["xyz", "rgb"])
@pytest.mark.parametrize("cloud", list(DEGENERATE))
@pytest.mark.parametrize("method", METHODS)
def test_method_on_degenerate_cloud(method, cloud, colored, warm):
    points, faces = DEGENERATE[cloud]
    colors = np.random.default_rng(2).random((points.shape[0], 3)) if colored else None
    scene = Scene(points=points, colors=colors, faces=faces, name=cloud.replace(" ", "_"))
    started = time.perf_counter()
    with bounded():
        try:
            masks = make_segmenter(method).segment(scene)
        except (ParameterError, InputError) as error:
            check_one_line(error)
            return
    check_masks(masks, scene)
    assert time.perf_counter() - started < TIME_LIMIT


def test_dbscan_refuses_neighbourhoods_that_do_not_fit_in_memory():
    # 20,000 distinct points within 0.1 mm and eps = 5 cm: every point neighbours every other
    points = np.random.default_rng(3).normal(size=(20000, 3)) * 1e-4
    scene = Scene(points=points)
    with bounded(memory=200 * 2**20), pytest.raises(ParameterError, match="eps") as raised:
        make_segmenter("dbscan", structure="keep", voxel_size=0).segment(scene)
    check_one_line(raised.value)


def test_identical_points_cluster_as_one():
    # a pile of coincident points is one cluster, without a radius graph of all its pairs
    scene = Scene(points=np.full((20000, 3), 1.5))
    with bounded(memory=200 * 2**20):
        masks = make_segmenter("dbscan", structure="keep", voxel_size=0).segment(scene)
    assert len(masks) == 1 and masks.sizes[0] == scene.num_points


# --- absurd parameters ----------------------------------------------------------------------------

ABSURD = ("inf", "-inf", "nan", "1e20", "1e400", "-1")
# parameters whose valid range includes -1 (multicut's eq. 4 offsets lie in [-10, 10])
SIGNED = {"multicut.sigma_low", "multicut.sigma_high"}
# integer parameters that size an allocation (kNN tables, tree nodes, distance tables): 1e9 is refused
ALLOCATING = {
    "birch.branching_factor",
    "birch.max_clusters",
    "birch.n_clusters",
    "dbscan.min_samples",
    "felzenszwalb.k",
    "hdbscan.min_cluster_size",
    "hdbscan.min_samples",
    "kmeans.max_clusters",
    "kmeans.n_clusters",
    "multicut.k1",
    "multicut.k2",
    "multicut.normal_k",
    "ncut.knn",
}
# settings a parameter needs to be checked at all (weights are counted against the modalities)
COMPANIONS = {"ncut.modality_weights": {"modalities": "rgb"}}


def _numeric(hint) -> bool:
    if typing.get_origin(hint) in (typing.Union, UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is tuple:
        hint = typing.get_args(hint)[0]
    return hint in (int, float)


def _numeric_parameters() -> list[str]:
    found = []
    for method in METHODS:
        hints = typing.get_type_hints(SEGMENTERS[method])
        found += [f"{method}.{f.name}" for f in dataclasses.fields(SEGMENTERS[method]) if _numeric(hints[f.name])]
    return found


NUMERIC = _numeric_parameters()


def test_every_allocating_parameter_is_numeric():
    assert ALLOCATING <= set(NUMERIC) and SIGNED <= set(NUMERIC) and set(COMPANIONS) <= set(NUMERIC)


@pytest.mark.parametrize("parameter", NUMERIC)
def test_absurd_parameter_values_raise_parameter_error(parameter):
    method, key = parameter.split(".")
    values = ABSURD + (("1e9",) if parameter in ALLOCATING else ())
    for value in values:
        if value == "-1" and parameter in SIGNED:
            continue
        try:
            segmenter = make_segmenter(method, **COMPANIONS.get(parameter, {}), **{key: value})
        except ParameterError as error:
            check_one_line(error)
            if value != "-1":  # NaN, infinities, numbers beyond int64: the message names the valid range
                assert re.match(rf"{re.escape(parameter)} must be .*in [\[(][^,]+, [^\]]+\], got ", str(error)), error
        else:
            pytest.fail(f"{parameter}={value} accepted as {getattr(segmenter, key)!r}")


def test_huge_integers_keep_their_exact_value_or_are_refused():
    assert make_segmenter("plane_euclidean", min_cluster_points="123456789").min_cluster_points == 123456789
    assert make_segmenter("plane_euclidean", min_cluster_points="1e3").min_cluster_points == 1000
    for value in ("9223372036854775808", 2**63, "1.5", 1.5):
        with pytest.raises(ParameterError):
            make_segmenter("plane_euclidean", min_cluster_points=value)
