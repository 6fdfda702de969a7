"""`labelfree3d benchmark` end to end on real scans, and the library behind it (`labelfree3d.batch.benchmark`)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelfree3d.batch.benchmark import run_benchmark, split_settings
from labelfree3d.cli.main import main
from labelfree3d.errors import InputError, ParameterError
from labelfree3d.evaluate import evaluate_scenes
from labelfree3d.io import read_scene, write_scene
from labelfree3d.segment import SEGMENTERS, Segmenter, make_segmenter
from labelfree3d.segment.base import register_segmenter
from labelfree3d.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]
OSD_CLOUDS = ["learn0.pcd", "learn1.pcd", "learn2.pcd"]
METHODS = ["plane_euclidean", "felzenszwalb"]
SETTINGS = {"plane_euclidean": {}, "felzenszwalb": {"voxel_size": 0.01}}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "labelfree3d", *args], check=False, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def osd_run(osd_dir, tmp_path_factory):
    """`labelfree3d benchmark` on a list of 3 OSD clouds with 2 methods on 2 dask workers."""
    folder = tmp_path_factory.mktemp("bench")
    listing = folder / "scans.txt"
    listing.write_text("".join(f"{osd_dir / name}\n" for name in OSD_CLOUDS))
    output = folder / "out" / "report.html"
    result = run_cli(
        "benchmark", str(listing), "--methods", ",".join(METHODS), "--set", "felzenszwalb.voxel_size=0.01",
        "-o", str(output), "--workers", "2", "--thumbnails", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result, output, json.loads(output.with_suffix(".json").read_text())


def test_benchmark_cli_matches_evaluate_scenes(osd_run, osd_dir):
    result, output, metrics = osd_run
    assert output.is_file() and output.stat().st_size < 3_000_000
    assert metrics["evaluated_scenes"] == ["learn0", "learn1", "learn2"] and metrics["workers"] == 2
    assert list(metrics["methods"]) == METHODS
    scenes = [read_scene(osd_dir / name) for name in OSD_CLOUDS]
    truth = {scene.name: scene.gt for scene in scenes}
    for method in METHODS:
        segmenter = make_segmenter(method, **SETTINGS[method])
        direct = evaluate_scenes({s.name: segmenter.segment(s) for s in scenes}, truth, extra_metrics=False)
        entry = metrics["methods"][method]
        for key in ("ap", "ap50", "ap25"):
            assert entry[key] == pytest.approx(direct[key], abs=1e-9), (method, key)
        for name in truth:
            assert entry["per_scene"][name]["ap50"] == pytest.approx(direct["per_scene"][name]["ap50"], abs=1e-9)
        assert entry["settings"] == SETTINGS[method] and entry["failures"] == 0
        assert entry["masks_per_scene"] > 0 and entry["seconds_per_scene"] > 0
        # the table printed on stdout carries the same numbers
        row = next(line for line in result.stdout.splitlines() if line.strip("│┃ ").startswith(method))
        assert f"{100 * direct['ap25']:.1f}" in row
    assert "report.html" in result.stdout


def test_benchmark_report_opens_in_chromium(osd_run):
    from _chromium import Chromium, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (bash scripts/setup.sh --dev installs it on Debian)")
    _result, output, metrics = osd_run
    browser = Chromium(executable, 1100, 900)
    try:
        url = output.resolve().as_uri()
        browser.open(url)
        assert browser.console_errors() == []
        assert [u for u in browser.requested_urls() if not u.startswith("data:image/png")] == [url]
        assert browser.evaluate("document.querySelectorAll('img').length") == 2 * (
            1 + len(METHODS)
        )  # 2 scenes x (GT + methods)
        assert browser.evaluate("[...document.images].every(image => image.complete && image.naturalWidth === 240)")
        assert browser.evaluate("document.querySelectorAll('svg').length") >= 1
        embedded = browser.evaluate("JSON.parse(document.getElementById('labelfree3d-report').textContent)")
        assert embedded["methods"]["felzenszwalb"]["ap25"] == pytest.approx(metrics["methods"]["felzenszwalb"]["ap25"])
        text = browser.evaluate("document.body.innerText")
        assert "plane_euclidean" in text and "AP50" in text and "s/scene" in text
    finally:
        browser.close()


def test_benchmark_cli_on_one_scannet_scene_folder(scannet_scene_dir, tmp_path):
    output = tmp_path / "scannet.html"
    result = run_cli("benchmark", str(scannet_scene_dir), "-m", "felzenszwalb", "-o", str(output), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics == json.loads(output.with_suffix(".json").read_text())
    assert metrics["evaluated_scenes"] == ["scene0000_00"] and metrics["workers"] == 0
    entry = metrics["methods"]["felzenszwalb"]
    assert entry["counts"]["gt_instances"] > 20 and 0 < entry["ap25"] <= 1 and entry["masks_per_scene"] > 50
    assert (
        metrics["protocol"]["name"].startswith("scannet")
        and metrics["without_gt"] == []
        and metrics["unreadable"] == {}
    )
    assert output.stat().st_size < 2_000_000


# ---------------------------------------------------------------------- bad input: one line, exit 2
@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/folder"], "no such scan file or folder"),
        (["{osd}", "-m", "nosuch"], "unknown method 'nosuch'"),
        (["{osd}", "-m", "felzenszwalb", "--set", "nosuch.key=1"], "unknown method 'nosuch'"),
        (["{osd}", "-m", "felzenszwalb", "--set", "dbscan.eps=1"], "not among the selected methods"),
        (["{osd}", "-m", "felzenszwalb,dbscan", "--set", "eps=0.1"], "felzenszwalb has no parameter 'eps'"),
        (["{osd}", "-m", "felzenszwalb", "--set", "felzenszwalb.nosuch=1"], "no parameter"),
    ],
)
def test_benchmark_bad_input_is_one_line_exit_2(args, message, osd_dir, tmp_path, capsys):
    args = [a.format(osd=osd_dir / "learn0.pcd") for a in args]
    assert main(["benchmark", *args, "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_benchmark_without_ground_truth_exits_2(tmp_path, capsys):
    scene = make_scene("tabletop", 0)
    write_scene(scene.replace(gt=None), tmp_path / "nogt.ply")
    (tmp_path / "README.md").write_text("a scan without labels")
    assert (
        main(["benchmark", str(tmp_path), "-m", "plane_euclidean", "-o", str(tmp_path / "r.html"), "--workers", "0"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "carries ground-truth instances" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------------- library
def test_split_settings_prefixed_and_shared():
    split = split_settings(
        {"voxel_size": 0.02, "felzenszwalb.voxel_size": 0.01, "dbscan.eps": 0.03}, ["felzenszwalb", "dbscan"]
    )
    assert split == {"felzenszwalb": {"voxel_size": 0.01}, "dbscan": {"voxel_size": 0.02, "eps": 0.03}}
    with pytest.raises(ParameterError, match="dbscan has no parameter 'k'"):
        split_settings({"k": 1}, ["felzenszwalb", "dbscan"])


@dataclasses.dataclass
class _FailsOnLearn1(Segmenter):
    """Test-only method: one mask of every point, except on learn1 where it raises."""

    def segment_points(self, scene, features=None):
        from labelfree3d.structures import InstanceMasks

        if scene.name == "learn1":
            raise RuntimeError("cannot cope with learn1")
        return InstanceMasks.from_labels(np.zeros(scene.num_points, dtype=np.int64))


@pytest.fixture
def failing_method():
    register_segmenter("fails_on_learn1_for_tests")(_FailsOnLearn1)
    yield "fails_on_learn1_for_tests"
    SEGMENTERS.pop("fails_on_learn1_for_tests")


def test_failures_are_recorded_and_scored_as_nothing(failing_method, osd_dir, tmp_path):
    corrupt = tmp_path / "corrupt.pcd"
    corrupt.write_bytes(b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nDATA binary\n")
    scans = [osd_dir / name for name in OSD_CLOUDS] + [corrupt]
    result = run_benchmark(scans, [failing_method, "plane_euclidean"], workers=0, thumbnails=1, warm_up_methods=False)
    assert result.scenes == ["learn0", "learn1", "learn2"]
    assert list(result.unreadable) == [str(corrupt)] and result.unreadable[str(corrupt)].startswith(str(corrupt))
    failing = result.methods[failing_method]
    assert list(failing.failures) == ["learn1"]
    assert failing.failures["learn1"] == f"{osd_dir / 'learn1.pcd'}: RuntimeError: cannot cope with learn1"
    assert failing.summary()["failures"] == 1 and set(failing.seconds) == {"learn0", "learn2"}
    # learn1's ground truth still counts (as missed): same GT count as the method that worked
    assert (
        failing.report["counts"]["gt_instances"] == result.methods["plane_euclidean"].report["counts"]["gt_instances"]
    )
    assert failing.report["per_scene"]["learn1"]["predictions"] == 0
    assert result.methods["plane_euclidean"].failures == {}
    assert len(result.thumbnails) == 1 and set(result.thumbnails[0].images) == {"gt", failing_method, "plane_euclidean"}
    payload = result.to_json()
    json.dumps(payload)
    assert payload["methods"][failing_method]["per_scene"]["learn1"]["error"].endswith("cannot cope with learn1")


def test_no_readable_scan_is_an_input_error(tmp_path):
    (tmp_path / "a.pcd").write_bytes(b"garbage")
    with pytest.raises(InputError, match="could be read"):
        run_benchmark(tmp_path, ["plane_euclidean"], workers=0, warm_up_methods=False)
