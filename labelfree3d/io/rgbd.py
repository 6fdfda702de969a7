"""RGB-D frame folders: Microsoft 7-Scenes sequences and ScanNet's exported frames.

7-Scenes (`layout="7scenes"`): `frame-NNNNNN.color.{png,jpg}`, `frame-NNNNNN.depth.png` (uint16
millimetres, 0 and 65535 invalid) and `frame-NNNNNN.pose.txt` (4x4 camera-to-world), either in
the folder itself or in its `frames/` sub-folder. Intrinsics come from `camera-intrinsics.txt`
(3x3 or 4x4) in the folder or its parent, else 7-Scenes' published values fx = fy = 585,
cx = 320, cy = 240.

ScanNet export (`layout="scannet"`, as written by ScanNet's SensReader): `color/N.jpg`,
`depth/N.png` (uint16 millimetres), `pose/N.txt` (4x4 camera-to-world; invalid frames hold -inf)
and `intrinsic/intrinsic_depth.txt` (4x4). ScanNet's colour images (1296x968) are resized to
the depth resolution, the usual approximation of registering them to the depth camera.

The scene has no points; `scene.frames` is a `FrameSequence` that reads a frame's images only
when it is indexed. Depth becomes float32 metres with invalid pixels 0; a frame whose pose
file is missing or not finite has `camera_to_world=None`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io.registry import register_reader
from labelfree3d.structures import FrameSequence, RGBDFrame, Scene

__all__ = ["SEVEN_SCENES_INTRINSICS", "read_color", "read_depth_png", "read_pose", "read_rgbd"]

SEVEN_SCENES_INTRINSICS = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])
_SEVEN_DEPTH = re.compile(r"^(frame-\d+)\.depth\.png$")
_INVALID_DEPTH = 65535  # 7-Scenes marks missing depth with 0 or 65535


@dataclass(frozen=True)
class _FrameFiles:
    name: str
    depth: Path
    color: Path | None
    pose: Path | None


def _number(name: str) -> tuple[int, str]:
    digits = re.findall(r"\d+", name)
    return (int(digits[-1]) if digits else -1, name)


def _seven_scenes_folder(path: Path) -> Path | None:
    for folder in (path, path / "frames"):
        if folder.is_dir() and any(_SEVEN_DEPTH.match(p.name) for p in folder.glob("frame-*.depth.png")):
            return folder
    return None


def _is_scannet_export(path: Path) -> bool:
    depth = path / "depth"
    companions = any((path / sub).is_dir() for sub in ("color", "pose", "intrinsic"))
    return depth.is_dir() and companions and next(depth.glob("*.png"), None) is not None


def _is_rgbd(path: Path) -> bool:
    return _seven_scenes_folder(path) is not None or _is_scannet_export(path)


def _seven_scenes_frames(folder: Path) -> list[_FrameFiles]:
    frames = []
    for depth in folder.glob("frame-*.depth.png"):
        match = _SEVEN_DEPTH.match(depth.name)
        if match is None:
            continue
        stem = match.group(1)
        color = next(
            (folder / f"{stem}.color.{ext}" for ext in ("png", "jpg") if (folder / f"{stem}.color.{ext}").is_file()),
            None,
        )
        pose = folder / f"{stem}.pose.txt"
        frames.append(_FrameFiles(stem, depth, color, pose if pose.is_file() else None))
    return sorted(frames, key=lambda f: _number(f.name))


def _scannet_frames(path: Path) -> list[_FrameFiles]:
    frames = []
    for depth in (path / "depth").glob("*.png"):
        stem = depth.stem
        color = next(
            (
                path / "color" / f"{stem}.{ext}"
                for ext in ("jpg", "png")
                if (path / "color" / f"{stem}.{ext}").is_file()
            ),
            None,
        )
        pose = path / "pose" / f"{stem}.txt"
        frames.append(_FrameFiles(stem, depth, color, pose if pose.is_file() else None))
    return sorted(frames, key=lambda f: _number(f.name))


def read_intrinsics(path: Path) -> np.ndarray:
    """(3, 3) float64 pinhole matrix from a text file holding a 3x3 or 4x4 matrix (pixels)."""
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise FormatError(
            f"intrinsics must be a 3x3 or 4x4 matrix of numbers ({(str(error).splitlines() or [type(error).__name__])[0]})", path
        ) from error
    if values.shape not in ((3, 3), (4, 4)):
        raise FormatError(f"intrinsics matrix has shape {values.shape}, expected (3, 3) or (4, 4)", path)
    k = values[:3, :3]
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise FormatError("intrinsics must have finite, positive focal lengths", path)
    return k


def read_depth_png(path: Path, depth_scale: float = 1000.0) -> np.ndarray:
    """(H, W) float32 depth in metres from a 16-bit PNG in 1/`depth_scale` m units; 0 and 65535 -> 0."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise FormatError(f"depth image must be 16-bit, got PIL mode {image.mode}", path)
            raw = np.asarray(image)
    except FileNotFoundError as error:
        raise InputError("no such depth image", path) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise FormatError(
            f"unreadable depth image ({(str(error).splitlines() or [type(error).__name__])[0] if str(error) else type(error).__name__})", path
        ) from error
    raw = raw.astype(np.int64)
    depth = (raw / depth_scale).astype(np.float32)
    depth[(raw <= 0) | (raw >= _INVALID_DEPTH)] = 0.0
    return depth


def read_color(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB image, resized (bilinear) to `size` = (H, W) when it differs."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError as error:
        raise InputError("no such colour image", path) from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise FormatError(
            f"unreadable colour image ({(str(error).splitlines() or [type(error).__name__])[0] if str(error) else type(error).__name__})", path
        ) from error


def read_pose(path: Path) -> np.ndarray | None:
    """(4, 4) float64 camera-to-world matrix, or None when it holds -inf / NaN (invalid frame)."""
    try:
        pose = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise FormatError(f"pose must be a 4x4 matrix of numbers ({(str(error).splitlines() or [type(error).__name__])[0]})", path) from error
    if pose.shape != (4, 4):
        raise FormatError(f"pose matrix has shape {pose.shape}, expected (4, 4)", path)
    return pose if np.all(np.isfinite(pose)) else None


def _loader(frames: list[_FrameFiles], intrinsics: np.ndarray, depth_scale: float) -> Callable[[int], RGBDFrame]:
    def load(position: int) -> RGBDFrame:
        files = frames[position]
        depth = read_depth_png(files.depth, depth_scale)
        color = None if files.color is None else read_color(files.color, depth.shape)
        pose = None if files.pose is None else read_pose(files.pose)
        return RGBDFrame(depth=depth, intrinsics=intrinsics, camera_to_world=pose, color=color, name=files.name)

    return load


@register_reader(
    "rgbd",
    folder=True,
    detect=_is_rgbd,
    description="RGB-D frame folder: 7-Scenes (frame-*.depth.png) or ScanNet export (depth/, color/, pose/)",
)
def read_rgbd(path: Path, depth_scale: float = 1000.0) -> Scene:
    """Open an RGB-D sequence folder as a point-less `Scene` with lazily loaded frames.

    Args:
        path: a 7-Scenes sequence folder (or its `frames/` folder) or a ScanNet export folder.
        depth_scale: depth PNG units per metre (1000: millimetres, both datasets).

    Returns:
        Scene with zero points and `frames` (one per depth image, in frame-number order);
        `metadata` has `rgbd_layout`, `intrinsics_source` and `depth_size` / `color_size`
        (W x H, read from the first frame's image headers only).
    """
    seven = _seven_scenes_folder(path)
    if seven is not None:
        frames = _seven_scenes_frames(seven)
        layout = "7scenes"
        candidates = [seven / "camera-intrinsics.txt", seven.parent / "camera-intrinsics.txt"]
        found = next((c for c in candidates if c.is_file()), None)
        intrinsics = SEVEN_SCENES_INTRINSICS.copy() if found is None else read_intrinsics(found)
        intrinsics_source = "7-Scenes default" if found is None else found.name
        sequence_dir = seven.parent if seven.name == "frames" else seven
        name = sequence_dir.name
        if re.fullmatch(r"seq-\d+", name):  # 7-Scenes' own layout <scene>/seq-NN: "chess_seq-01"
            name = f"{sequence_dir.parent.name}_{name}"
    elif _is_scannet_export(path):
        frames = _scannet_frames(path)
        layout = "scannet"
        k_path = path / "intrinsic" / "intrinsic_depth.txt"
        if not k_path.is_file():
            raise InputError("ScanNet export lacks intrinsic/intrinsic_depth.txt", path)
        intrinsics = read_intrinsics(k_path)
        intrinsics_source = "intrinsic/intrinsic_depth.txt"
        name = path.name
    else:
        raise InputError("no RGB-D frames (frame-*.depth.png or depth/*.png) in the folder", path)
    if depth_scale <= 0:
        raise InputError(f"depth_scale must be positive, got {depth_scale}", path)
    sequence = FrameSequence(
        [f.name for f in frames], _loader(frames, intrinsics, depth_scale), intrinsics, source=path
    )
    scene = Scene(points=np.zeros((0, 3), dtype=np.float32), frames=sequence, name=name, source=path)
    scene.metadata.update(rgbd_layout=layout, intrinsics_source=intrinsics_source, depth_scale=float(depth_scale))
    scene.metadata.update(_image_sizes(frames[0]))
    scene.metadata["posed_frames"] = sum(f.pose is not None for f in frames)
    return scene


def _image_sizes(first: _FrameFiles) -> dict[str, str]:
    from PIL import Image, UnidentifiedImageError

    sizes = {}
    for key, file in (("depth_size", first.depth), ("color_size", first.color)):
        if file is None:
            continue
        try:
            with Image.open(file) as image:  # opening reads the header only, not the pixels
                sizes[key] = f"{image.size[0]}x{image.size[1]}"
        except (UnidentifiedImageError, OSError) as error:
            raise FormatError("unreadable image", file) from error
    return sizes
