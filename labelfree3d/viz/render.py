"""PNG renders of scenes without a display: a small z-buffer rasteriser in numpy.

Points are splatted as discs sized from the scan's own point spacing; mesh triangles are
filled by a barycentric lattice finer than a pixel; a per-pixel depth test keeps the nearest
surface. Meshes (and clouds with normals) get Lambert shading from a light near the camera,
and every image gets eye-dome lighting (darkened depth edges), so that flat instance colours
still show shape. Colours come from `labelfree3d.viz.layers`, so an instance has the same
colour here as in the HTML viewer. docs/viewer.md says why this is not Open3D's renderer.

Two views: ``top`` (orthographic, straight down the scene's up axis) and ``oblique``
(perspective, from 45 degrees above the horizon); both frame the whole scene.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.io.atomic import atomic_path
from labelfree3d.structures import InstanceMasks, Scene
from labelfree3d.viz.layers import check_predictions, layer_keys, layer_title, point_colors, up_vector

__all__ = [
    "VIEWS",
    "Camera",
    "Raster",
    "fit_camera",
    "rasterize",
    "render_scene",
    "render_layers",
    "render_sheet",
    "top_view_hidden",
    "write_png",
]

VIEWS = ("top", "oblique")

_BACKGROUND = np.array([255, 255, 255], dtype=np.uint8)
_OBLIQUE_ELEVATION = np.radians(45.0)
_OBLIQUE_AZIMUTH = np.radians(60.0)  # looking from the (-x, -y) side of a z-up scan
_FIELD_OF_VIEW = np.radians(50.0)
_FILL = 0.92  # share of the image the scene's projection spans along its tighter axis
_FIT_SAMPLE = 200_000  # points used to frame the view and to estimate spacing
_LATTICE_SPACING = 0.85  # pixels between lattice samples along a triangle edge; with 2x supersampling no holes survive
_MAX_LATTICE = 256  # lattice divisions per triangle edge (bounds memory for huge triangles)
_MAX_SPLAT_RADIUS = 8  # pixels


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole or orthographic camera for `rasterize`.

    Attributes:
        rotation: (3, 3) float64 rows = camera right, image up and backward axes in world
            coordinates (the camera looks along -backward).
        eye: (3,) float64 camera position, metres (orthographic: any point behind the scene).
        focal: pixels per unit of x/depth (perspective) or pixels per metre (orthographic).
        principal: (2,) float64 image position (pixels) of the optical axis.
        orthographic: parallel projection when True.
        width, height: image size in pixels.
    """

    rotation: np.ndarray
    eye: np.ndarray
    focal: float
    principal: np.ndarray
    orthographic: bool
    width: int
    height: int

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image coordinates of (N, 3) world points: ((N,) u right, (N,) v down, (N,) depth in metres)."""
        local = (np.asarray(points, dtype=np.float64) - self.eye) @ self.rotation.T
        depth = -local[:, 2]
        if self.orthographic:
            scale = np.full(depth.shape, self.focal)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = self.focal / depth
        u = self.principal[0] + local[:, 0] * scale
        v = self.principal[1] - local[:, 1] * scale
        return u, v, depth

    def pixels_per_metre(self, depth: np.ndarray) -> np.ndarray:
        """(N,) image size in pixels of one metre seen at each depth."""
        if self.orthographic:
            return np.full(np.shape(depth), self.focal)
        return self.focal / np.maximum(depth, 1e-9)

    def scaled(self, factor: int) -> Camera:
        """The same view on a `factor` times larger image (for supersampling)."""
        return Camera(self.rotation, self.eye, self.focal * factor, self.principal * factor, self.orthographic,
                      self.width * factor, self.height * factor)  # fmt: skip


def _horizontal_basis(up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane normal to `up`: world x and y for a z-up scene."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    first = helper - up * np.dot(helper, up)
    first /= np.linalg.norm(first)
    return first, np.cross(up, first)


def fit_camera(points: np.ndarray, view: str, width: int, height: int, up: np.ndarray | None = None) -> Camera:
    """A camera for `view` ("top" or "oblique") that frames all (N, 3) `points`.

    Args:
        points: the scene's points (a sample is enough), metres.
        view: "top" looks straight down `up` (orthographic); "oblique" looks down at 45
            degrees from the (-x, -y) side of a z-up scene (perspective, 50 degree lens).
        width, height: image size in pixels.
        up: (3,) up direction; default +z.
    """
    if view not in VIEWS:
        raise ParameterError(f"unknown view {view!r}; views are {', '.join(VIEWS)}")
    if width < 8 or height < 8:
        raise ParameterError(f"image size must be at least 8x8 pixels, got {width}x{height}")
    points = np.asarray(points, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    east, north = _horizontal_basis(up)
    center = 0.5 * (points.min(axis=0) + points.max(axis=0))
    radius = max(float(np.linalg.norm(points - center, axis=1).max()), 1e-6)
    if view == "top":
        direction, image_up = -up, north
    else:
        horizontal = np.cos(_OBLIQUE_AZIMUTH) * east + np.sin(_OBLIQUE_AZIMUTH) * north
        direction = np.cos(_OBLIQUE_ELEVATION) * horizontal - np.sin(_OBLIQUE_ELEVATION) * up
        image_up = up
    right = np.cross(direction, image_up)
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(right, direction), -direction])
    orthographic = view == "top"
    distance = 2.0 * radius if orthographic else radius / np.tan(_FIELD_OF_VIEW / 2)
    eye = center - direction * distance
    # frame the projection of the points themselves: tighter than the bounding sphere
    probe = Camera(rotation, eye, 1.0, np.zeros(2), orthographic, width, height)
    u, v, _ = probe.project(points)
    span_u, span_v = max(float(u.max() - u.min()), 1e-9), max(float(v.max() - v.min()), 1e-9)
    focal = _FILL * min(width / span_u, height / span_v)
    principal = np.array([width / 2 - focal * (u.max() + u.min()) / 2, height / 2 - focal * (v.max() + v.min()) / 2])
    return Camera(rotation, eye, focal, principal, orthographic, width, height)


class _DepthBuffer:
    """Per pixel: the depth and the point id of the nearest sample, filled batch by batch."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.depth = np.full(width * height, np.inf, dtype=np.float32)
        self.ids = np.full(width * height, -1, dtype=np.int64)

    def add(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray, ids: np.ndarray) -> None:
        """Samples at image positions (u, v) (pixels), depths (metres), each showing point `ids`."""
        x = u.astype(np.int64)  # truncation: negative positions are rejected below anyway
        y = v.astype(np.int64)
        inside = (u >= 0) & (x < self.width) & (v >= 0) & (y < self.height) & (depth > 0)
        key = y[inside] * self.width + x[inside]
        depth = depth[inside].astype(np.float32, copy=False)
        # two passes instead of a sort: the per-pixel minimum, then the samples that reach it
        np.minimum.at(self.depth, key, depth)
        nearest = np.flatnonzero(depth <= self.depth[key])
        self.ids[key[nearest]] = ids[np.flatnonzero(inside)[nearest]]


def _lambert(normals: np.ndarray, camera: Camera) -> np.ndarray:
    """(N,) shading factor in [0.45, 1] of surfaces with `normals` (either side lit)."""
    light = camera.rotation[2] + 0.35 * camera.rotation[1] - 0.25 * camera.rotation[0]
    light /= np.linalg.norm(light)
    lengths = np.linalg.norm(normals, axis=1)
    cosine = np.abs(normals @ light) / np.maximum(lengths, 1e-12)
    return 0.45 + 0.55 * cosine


def _splat_points(buffer: _DepthBuffer, camera: Camera, points: np.ndarray, ids: np.ndarray | None = None) -> None:
    """Discs whose radius follows the scan's point spacing at each point's depth; `ids` = what each point shows."""
    u, v, depth = camera.project(points)
    # discs a little wider than the local point spacing: random samples of a surface leave
    # gaps up to about that size between neighbours
    radius = np.clip(1.3 * _local_spacing(points) * camera.pixels_per_metre(depth), 0.5, _MAX_SPLAT_RADIUS)
    disc = np.floor(radius + 0.5).astype(np.int64) - 1  # 0: one pixel, 1: 3x3 disc, ...
    ids = np.arange(points.shape[0]) if ids is None else ids
    for r in np.unique(disc):
        chosen = np.flatnonzero(disc == r)
        offsets = [(dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1) if dx * dx + dy * dy <= r * r + r]
        for dx, dy in offsets:
            buffer.add(u[chosen] + dx, v[chosen] + dy, depth[chosen], ids[chosen])


def _local_spacing(points: np.ndarray) -> np.ndarray:
    """(N,) mean distance from each point to its three nearest neighbours (metres).

    Large clouds are measured against a random sample of `_FIT_SAMPLE` points and scaled by
    sqrt(sample size / N), the spacing ratio of a surface sampled that much more sparsely.
    """
    from scipy.spatial import cKDTree

    n = points.shape[0]
    if n < 4:
        return np.full(n, 0.01)
    if n <= _FIT_SAMPLE:
        distances, _ = cKDTree(points).query(points, k=4)
        return np.maximum(distances[:, 1:].mean(axis=1), 1e-6)  # column 0 is the point itself
    sample = points[np.random.default_rng(0).choice(n, _FIT_SAMPLE, replace=False)]
    distances, _ = cKDTree(sample).query(points, k=3)
    return np.maximum(distances.mean(axis=1) * np.sqrt(_FIT_SAMPLE / n), 1e-6)


def _fill_triangles(buffer: _DepthBuffer, camera: Camera, points: np.ndarray, faces: np.ndarray) -> None:
    """Fill triangles with lattice samples under a pixel apart, each showing its nearest vertex."""
    u, v, depth = camera.project(points)
    corners_u, corners_v = u[faces], v[faces]
    visible = np.all(depth[faces] > 0, axis=1)
    edge = np.sqrt(np.maximum.reduce([(corners_u[:, a] - corners_u[:, b]) ** 2 + (corners_v[:, a] - corners_v[:, b]) ** 2
                                      for a, b in ((0, 1), (1, 2), (2, 0))]))  # fmt: skip
    divisions = np.clip(np.ceil(edge / _LATTICE_SPACING), 1, _MAX_LATTICE).astype(np.int64)
    divisions[~visible] = 0
    screen = np.stack([u, v, depth], axis=1).astype(np.float32)
    for k in np.unique(divisions[divisions > 0]):
        group = np.flatnonzero(divisions == k)
        i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
        keep = i + j <= k
        weights = (np.stack([i[keep], j[keep], k - i[keep] - j[keep]], axis=1) / k).astype(np.float32)  # (L, 3)
        nearest_corner = np.argmax(weights, axis=1)
        chunk = max(1, 4_000_000 // weights.shape[0])  # bounds the (faces, 3, L) temporaries
        for start in range(0, group.shape[0], chunk):
            chosen = faces[group[start : start + chunk]]
            # one matrix product: (faces * 3 coordinates, 3 corners) @ (3 corners, L samples)
            corners = screen[chosen].transpose(0, 2, 1).reshape(-1, 3)
            samples = (corners @ weights.T).reshape(chosen.shape[0], 3, -1)
            buffer.add(
                samples[:, 0].ravel(), samples[:, 1].ravel(), samples[:, 2].ravel(), chosen[:, nearest_corner].ravel()
            )


def _eye_dome(depth: np.ndarray, strength: float = 3.0) -> np.ndarray:
    """(H, W) shading factor darkening pixels that lie behind a neighbouring surface.

    Eye-dome lighting: the summed excess of log depth over the four neighbours two pixels
    away, mapped through exp(-strength * excess). Log depth makes it scale-free: a smooth
    surface barely darkens, a silhouette 30 % in front of its background gives about 0.45.
    Background pixels count as far away and are left white.
    """
    finite = np.isfinite(depth)
    if not finite.any():
        return np.ones(depth.shape)
    log_depth = np.log(np.where(finite, depth, 1.0))
    filled = np.where(finite, log_depth, log_depth[finite].max() + 1.0)
    padded = np.pad(filled, 2, mode="edge")
    excess = np.zeros(depth.shape)
    h, w = depth.shape
    for dy, dx in ((-2, 0), (2, 0), (0, -2), (0, 2)):
        excess += np.maximum(0.0, filled - padded[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w])
    return np.where(finite, np.exp(-strength * excess), 1.0)


@dataclass(frozen=True, eq=False)
class Raster:
    """Which point each pixel shows and how it is shaded: one rasterisation, any colouring.

    Attributes:
        ids: (H * s, W * s) int64 index of the point (or mesh vertex) seen at each supersampled
            pixel, -1 for background.
        shade: (H * s, W * s) float32 factor in (0, 1] (Lambert times eye-dome lighting).
        supersample: s; `colorize` shrinks the image by it.
    """

    ids: np.ndarray
    shade: np.ndarray
    supersample: int

    def colorize(self, colors: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 image of the rasterised scene with per-point `colors` ((N, 3) uint8)."""
        from PIL import Image

        colors = np.asarray(colors)
        if colors.ndim != 2 or colors.shape[1] != 3 or (self.ids.size and colors.shape[0] <= self.ids.max()):
            raise ParameterError(f"colors of shape {colors.shape} do not cover the rasterised points")
        seen = self.ids >= 0
        image = np.empty(self.ids.shape + (3,), dtype=np.float32)
        image[~seen] = _BACKGROUND
        image[seen] = colors[self.ids[seen]] * self.shade[seen][:, None]
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
        if self.supersample > 1:
            image = np.asarray(Image.fromarray(image).reduce(self.supersample))
        return image


def rasterize(
    points: np.ndarray,
    camera: Camera,
    *,
    faces: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    supersample: int = 2,
    hidden: np.ndarray | None = None,
) -> Raster:
    """Rasterise points or a triangle mesh once; `Raster.colorize` then paints any layer.

    Args:
        points: (N, 3) positions (mesh vertices when `faces` is given), metres.
        camera: the view (e.g. from `fit_camera`); sets the image size.
        faces: (F, 3) vertex indices to draw a mesh instead of points.
        normals: (N, 3) point normals for shading a cloud (meshes use their own vertex normals).
        supersample: rasterise this many times larger and shrink when colouring (anti-aliasing).
        hidden: optional (N,) bool, points not drawn (with the faces that touch them), e.g. the
            ceiling in a top view.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ParameterError(f"points must be (N, 3), got {points.shape}")
    if supersample < 1:
        raise ParameterError(f"supersample must be >= 1, got {supersample}")
    big = camera.scaled(supersample)
    buffer = _DepthBuffer(big.width, big.height)
    lambert = None
    if hidden is not None:
        hidden = np.asarray(hidden, dtype=bool)
        if hidden.shape != (points.shape[0],):
            raise ParameterError(f"hidden must be ({points.shape[0]},) bool, got shape {hidden.shape}")
    if faces is not None and len(faces):
        faces = np.asarray(faces, dtype=np.int64)
        if hidden is not None:
            faces = faces[~hidden[faces].any(axis=1)]
        corners = points[faces]
        face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        vertex_normals = np.zeros_like(points)
        for c in range(3):  # area-weighted: the cross product's length is twice the face area
            np.add.at(vertex_normals, faces[:, c], face_normals)
        lambert = _lambert(vertex_normals, big)
        _fill_triangles(buffer, big, points, faces)
    else:
        if normals is not None:
            lambert = _lambert(np.asarray(normals, dtype=np.float64), big)
        if hidden is None:
            _splat_points(buffer, big, points)
        else:
            shown = np.flatnonzero(~hidden)
            if shown.size:
                _splat_points(buffer, big, points[shown], shown)
    depth = buffer.depth.reshape(big.height, big.width)
    ids = buffer.ids.reshape(big.height, big.width)
    shade = _eye_dome(depth)
    if lambert is not None:
        shade = shade * np.where(ids >= 0, lambert[np.maximum(ids, 0)], 1.0)
    return Raster(ids, shade.astype(np.float32), supersample)


def _scene_sample(scene: Scene) -> np.ndarray:
    n = scene.num_points
    if n <= _FIT_SAMPLE:
        return scene.points
    return scene.points[np.random.default_rng(0).choice(n, _FIT_SAMPLE, replace=False)]


def _rasterize_scene(scene: Scene, camera: Camera, supersample: int, view: str = "oblique") -> Raster:
    faces = scene.faces if scene.is_mesh else None
    hidden = top_view_hidden(scene) if view == "top" else None
    return rasterize(scene.points, camera, faces=faces, normals=scene.normals, supersample=supersample, hidden=hidden)


def top_view_hidden(scene: Scene) -> np.ndarray | None:
    """(N,) bool points a top view leaves out: the ceiling (`labelfree3d.segment.structure`), or None.

    A room seen from above is its ceiling; cutting it shows the floor and the furniture.
    """
    from labelfree3d.geometry import CEILING
    from labelfree3d.segment.structure import scene_structure

    ceiling = scene_structure(scene).labels == CEILING
    return ceiling if ceiling.any() and not ceiling.all() else None


def render_scene(
    scene: Scene,
    colors: np.ndarray,
    view: str = "oblique",
    width: int = 640,
    height: int = 480,
    supersample: int = 2,
) -> np.ndarray:
    """(height, width, 3) uint8 render of `scene` with per-point `colors` ((N, 3) uint8).

    Meshes are drawn as meshes, clouds as points; `view` is "top" or "oblique".
    """
    if scene.num_points == 0:
        raise InputError("cannot render a scene without points", scene.source)
    camera = fit_camera(_scene_sample(scene), view, width, height, up_vector(scene))
    return _rasterize_scene(scene, camera, supersample, view).colorize(colors)


def render_layers(
    scene: Scene,
    predictions: Mapping[str, InstanceMasks] | None = None,
    layers: Sequence[str] | None = None,
    views: Sequence[str] = VIEWS,
    width: int = 640,
    height: int = 480,
    supersample: int = 2,
) -> dict[tuple[str, str], np.ndarray]:
    """Renders of several layers and views of one scene, with the same camera per view.

    Args:
        scene: the scan.
        predictions: prediction set name -> masks over the scene's points.
        layers: layer keys (see `labelfree3d.viz.layers`); default every layer the scene has.
        views: "top" and/or "oblique".

    Returns:
        (layer key, view) -> (height, width, 3) uint8 image.
    """
    predictions = check_predictions(scene, predictions)
    layers = list(layers) if layers is not None else layer_keys(scene, predictions)
    sample = _scene_sample(scene)
    up = up_vector(scene)
    rasters = {
        view: _rasterize_scene(scene, fit_camera(sample, view, width, height, up), supersample, view) for view in views
    }
    images = {}
    for key in layers:
        colors = point_colors(scene, predictions, key)
        for view, raster in rasters.items():
            images[key, view] = raster.colorize(colors)
    return images


def render_sheet(
    scene: Scene,
    predictions: Mapping[str, InstanceMasks] | None = None,
    layers: Sequence[str] | None = None,
    views: Sequence[str] = VIEWS,
    width: int = 480,
    height: int = 360,
    supersample: int = 2,
) -> np.ndarray:
    """One image with a row per layer and a column per view, each row titled.

    Returns:
        (rows * (height + title), len(views) * width, 3) uint8 image.
    """
    from PIL import Image, ImageDraw

    predictions = check_predictions(scene, predictions)
    layers = list(layers) if layers is not None else layer_keys(scene, predictions)
    images = render_layers(scene, predictions, layers, views, width, height, supersample)
    title_height = 22
    sheet = Image.new("RGB", (width * len(views), (height + title_height) * len(layers)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, key in enumerate(layers):
        top = row * (height + title_height)
        draw.text((6, top + 5), f"{scene.name}: {layer_title(key, scene)}", fill=(20, 20, 20))
        for column, view in enumerate(views):
            sheet.paste(Image.fromarray(images[key, view]), (column * width, top + title_height))
            draw.text((column * width + width - 60, top + 5), view, fill=(110, 110, 110))
    return np.asarray(sheet)


def write_png(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Save an (H, W, 3) uint8 image as PNG, atomically; returns the path."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ParameterError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", optimize=True)
    return Path(path)
