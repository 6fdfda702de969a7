"""Layer colours and PNG renders: non-blank, different per layer, same geometry and colours across images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from _viz_scenes import tabletop_with_predictions
from labelfree3d.errors import InputError, ParameterError
from labelfree3d.io import read_scene
from labelfree3d.synthetic import make_scene
from labelfree3d.structures import InstanceMasks, Scene
from labelfree3d.viz import palette, point_colors, render_layers, render_sheet, write_png
from labelfree3d.viz.layers import compact_labels, gt_color_table, layer_keys, up_vector
from labelfree3d.viz.palette import UNASSIGNED_GRAY, VIRIDIS_STOPS, confidence_colors, muted
from labelfree3d.viz.render import fit_camera, rasterize


@pytest.fixture(scope="module")
def tabletop():
    return tabletop_with_predictions()


def foreground(image: np.ndarray) -> np.ndarray:
    return ~np.all(image == 255, axis=2)


# ---------------------------------------------------------------------- colours
def test_confidence_colours_run_from_dark_violet_to_yellow():
    colours = confidence_colors(np.array([0.2, 0.5, 0.8]))
    assert colours[0].tolist() == VIRIDIS_STOPS[0].astype(int).tolist()
    assert colours[2].tolist() == VIRIDIS_STOPS[-1].astype(int).tolist()
    assert confidence_colors(np.array([0.5]), low=0.0, high=1.0)[0].tolist() == VIRIDIS_STOPS[4].astype(int).tolist()
    # equal scores get the middle colour, NaN too
    middle = VIRIDIS_STOPS[4].astype(int).tolist()
    assert confidence_colors(np.array([3.0, 3.0]))[1].tolist() == middle
    assert confidence_colors(np.array([0.0, np.nan, 1.0]))[1].tolist() == middle


def test_muted_colours_are_lighter_and_still_distinct():
    table = palette(6)
    quiet = muted(table)
    assert np.all(quiet.astype(int).sum(axis=1) > 0)
    assert len({tuple(c) for c in quiet}) == 6
    assert np.all(np.abs(quiet.astype(int) - 215).max(axis=1) < np.abs(table.astype(int) - 215).max(axis=1) + 1)


def test_layer_keys_follow_the_documented_order(tabletop):
    scene, predictions = tabletop
    with_superpoints = scene.replace(superpoints=np.arange(scene.num_points) // 100)
    assert layer_keys(with_superpoints, predictions) == [
        "rgb", "gt", "pred:oracle", "pred:halves", "superpoints", "confidence:oracle", "confidence:halves",
    ]  # fmt: skip
    assert layer_keys(Scene(points=scene.points)) == ["rgb"]


def test_point_colours_come_from_the_palette_by_instance_and_mask(tabletop):
    scene, predictions = tabletop
    gt = point_colors(scene, predictions, "gt")
    table = gt_color_table(scene.gt)
    labelled = scene.gt.instance_ids >= 0
    assert np.array_equal(gt[labelled], table[scene.gt.instance_ids[labelled]])
    void = ~scene.gt.instance_evaluated
    assert void.any() and np.array_equal(table[void], muted(palette(scene.gt.num_instances))[void])

    masks = predictions["halves"]
    labels = masks.to_labels()
    colours = point_colors(scene, predictions, "pred:halves")
    assert np.array_equal(colours[labels >= 0], palette(len(masks))[labels[labels >= 0]])
    assert np.all(colours[labels < 0] == UNASSIGNED_GRAY)
    confidence = point_colors(scene, predictions, "confidence:halves")
    assert np.array_equal(confidence[labels >= 0], confidence_colors(masks.scores)[labels[labels >= 0]])


def test_superpoint_ids_are_compacted_before_colouring():
    labels, count = compact_labels(np.array([5000, 7, 7, -1, 5000, 12]))
    assert labels.tolist() == [2, 0, 0, -1, 2, 1] and count == 3


def test_scans_without_colour_get_a_height_ramp_and_cameras_look_down_the_right_axis():
    points = np.random.default_rng(0).random((500, 3))
    scene = Scene(points=points)
    gray = point_colors(scene, None, "rgb")
    assert np.all(gray[:, 0] == gray[:, 1])
    assert gray[np.argmax(points[:, 2]), 0] > gray[np.argmin(points[:, 2]), 0]
    # the up axis is the measured gravity (the support plane's normal), within the frame's prior
    assert up_vector(scene) @ [0, 0, 1] > np.cos(np.radians(30))
    organised = Scene(points=points, metadata={"pixel_index": np.arange(500)})
    assert up_vector(organised) @ [0, -1, 0] > np.cos(np.radians(60))
    flat = make_scene("room", seed=0)
    assert up_vector(flat) @ [0, 0, 1] > 0.999


def test_unknown_layers_and_mismatched_predictions_are_refused(tabletop):
    scene, predictions = tabletop
    with pytest.raises(ParameterError, match="no prediction set named 'nope'"):
        point_colors(scene, predictions, "pred:nope")
    with pytest.raises(ParameterError, match="unknown layer"):
        point_colors(scene, predictions, "normals")
    with pytest.raises(ParameterError, match="no superpoints"):
        point_colors(scene, predictions, "superpoints")
    with pytest.raises(InputError, match="covers 10 points"):
        render_layers(scene, {"short": InstanceMasks.empty(10)})


# ---------------------------------------------------------------------- renders
def test_renders_are_non_blank_and_differ_between_layers_and_views(tabletop):
    scene, predictions = tabletop
    images = render_layers(scene, predictions, ["rgb", "gt", "pred:oracle", "pred:halves"], width=160, height=120)
    for image in images.values():
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        covered = foreground(image).mean()
        assert 0.15 < covered < 0.98  # the scene fills the frame without touching every pixel
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    # one camera per view: every layer covers exactly the same pixels
    for view in ("top", "oblique"):
        masks = [foreground(images[key, view]) for key in ("rgb", "gt", "pred:oracle", "pred:halves")]
        assert all(np.array_equal(masks[0], m) for m in masks[1:])
    layers = ["rgb", "gt", "pred:oracle", "pred:halves"]
    for a in range(len(layers)):
        for b in range(a + 1, len(layers)):
            changed = np.any(images[layers[a], "oblique"] != images[layers[b], "oblique"], axis=2).mean()
            assert changed > 0.01, (layers[a], layers[b])
    assert not np.array_equal(foreground(images["gt", "top"]), foreground(images["gt", "oblique"]))


def test_a_pixel_shows_its_point_in_that_points_layer_colour(tabletop):
    scene, predictions = tabletop
    camera = fit_camera(scene.points, "oblique", 120, 90)
    raster = rasterize(scene.points, camera, supersample=1)
    colours = point_colors(scene, predictions, "gt")
    image = raster.colorize(colours)
    seen = raster.ids >= 0
    expected = np.round(colours[raster.ids[seen]] * raster.shade[seen][:, None])
    assert np.abs(image[seen].astype(int) - expected).max() <= 1
    assert np.all(raster.shade[seen] > 0) and np.all(raster.shade <= 1.0)
    # points near the camera hide those behind them: the top of the highest object is seen
    highest = int(np.argmax(scene.points[:, 2]))
    u, v, _ = camera.project(scene.points[highest : highest + 1])
    window = raster.ids[int(v[0]) - 2 : int(v[0]) + 3, int(u[0]) - 2 : int(u[0]) + 3]
    instance = scene.gt.instance_ids[highest]
    assert np.mean(scene.gt.instance_ids[window[window >= 0]] == instance) > 0.8


def test_sheet_and_png_files(tabletop, tmp_path):
    scene, predictions = tabletop
    sheet = render_sheet(scene, predictions, ["gt", "pred:oracle"], width=120, height=90)
    assert sheet.shape == (2 * (90 + 22), 2 * 120, 3)
    path = write_png(sheet, tmp_path / "sheet.png")
    with Image.open(path) as written:
        assert written.format == "PNG" and np.array_equal(np.asarray(written.convert("RGB")), sheet)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temporary file left behind
    with pytest.raises(ParameterError, match="uint8"):
        write_png(sheet.astype(np.float32), tmp_path / "bad.png")
    with pytest.raises(ParameterError, match="unknown view"):
        fit_camera(scene.points, "side", 100, 100)


@pytest.mark.realdata
def test_scannet_mesh_renders_as_a_closed_surface(scannet_scene_dir):
    scene = read_scene(scannet_scene_dir)
    images = render_layers(scene, None, ["rgb", "gt", "superpoints"], ["top"], width=200, height=150)
    rgb, gt, superpoints = (images[key, "top"] for key in ("rgb", "gt", "superpoints"))
    covered = foreground(gt)
    assert covered.mean() > 0.3  # the room stands diagonally in the frame
    # triangles are filled: hardly any background pixel has covered pixels on all four sides
    inner = covered[1:-1, 1:-1]
    surrounded = covered[:-2, 1:-1] & covered[2:, 1:-1] & covered[1:-1, :-2] & covered[1:-1, 2:]
    assert np.count_nonzero(surrounded & ~inner) < 0.002 * np.count_nonzero(inner)
    assert np.any(rgb != gt, axis=2).mean() > 0.3 and np.any(gt != superpoints, axis=2).mean() > 0.3
