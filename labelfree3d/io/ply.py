"""PLY points and meshes (ascii and binary) through `plyfile`, with any vertex properties."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import plyfile

from labelfree3d.errors import FormatError, InputError
from labelfree3d.io._labels import compact_ids, integer_labels
from labelfree3d.io.atomic import atomic_path
from labelfree3d.io.registry import register_reader
from labelfree3d.structures import GroundTruth, InstanceMasks, Scene

# property names seen in the wild for each attribute, in order of preference
_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
_INSTANCE_NAMES = ("instance", "instance_id", "instance_label", "objectid", "object_id", "gt_instance")
_SEMANTIC_NAMES = ("label", "semantic", "semantic_id", "semantic_label", "class", "category_id", "scalar_label")


# plyfile's fast path for fixed-length lists, keyed by element then property
_TRIANGLES = {"face": {"vertex_indices": 3, "vertex_index": 3}}


def _find(names: tuple[str, ...], available: dict[str, str]) -> str | None:
    for name in names:
        if name in available:
            return available[name]
    return None


def load_ply(path: str | os.PathLike[str]) -> plyfile.PlyData:
    """Parse a PLY file, turning plyfile's many failure modes into one `FormatError`.

    Binary triangle meshes are first read assuming 3 indices per face, which lets plyfile map
    the face list as a fixed-size array (about 50x faster than its per-face parser); files with
    other polygons are re-read the general way.
    """
    path = Path(path)
    _check_element_counts(path)
    with warnings.catch_warnings():
        # numpy's "loadtxt: input contained no data" on an empty ascii list is not worth a line
        warnings.simplefilter("ignore", UserWarning)
        return _parse_ply(path)


def _parse_ply(path: Path) -> plyfile.PlyData:
    try:
        try:
            with open(path, "rb") as handle:
                return plyfile.PlyData.read(handle, known_list_len=_TRIANGLES)
        except plyfile.PlyElementParseError as error:
            if "unexpected list length" not in str(error):
                raise
        with open(path, "rb") as handle:
            return plyfile.PlyData.read(handle)
    except FileNotFoundError as error:
        raise InputError("no such file", path) from error
    except MemoryError as error:
        raise FormatError("corrupt PLY: the header declares more elements than memory can hold", path) from error
    except (
        plyfile.PlyParseError,
        plyfile.PlyHeaderParseError,
        ValueError,
        EOFError,
        IndexError,
        UnicodeDecodeError,
        OverflowError,
        TypeError,
    ) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, OverflowError):
            message = f"a value does not fit its declared type ({message})"
        if isinstance(error, UnicodeDecodeError):
            message = f"the header is not ASCII text (byte {error.start} is 0x{error.object[error.start]:02x})"
        if "early end-of-file" in message or "buffer is smaller" in message or isinstance(error, EOFError):
            message = f"file is truncated ({message})"
        raise FormatError(f"corrupt PLY: {message}", path) from error


def _check_element_counts(path: Path) -> None:
    """Refuse a header whose element counts cannot fit in the file, before plyfile allocates them.

    plyfile allocates an ascii element's whole table from the declared count before reading a
    row, so a header that lies ("element vertex 99999999999") would ask for terabytes. Every
    ascii row takes at least 2 bytes ("0\n") and every binary row at least 1.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError as error:
        raise InputError("no such file", path) from error
    except IsADirectoryError as error:
        raise InputError("expected a PLY file, got a folder", path) from error
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        return  # plyfile says what is wrong with such a header
    ascii_rows = b"format ascii" in head[:end]
    declared = 0
    for line in head[:end].split(b"\n"):
        words = line.split()
        if len(words) == 3 and words[0] == b"element" and words[2].isdigit():
            declared += int(words[2])
    if declared * (2 if ascii_rows else 1) > size - end:
        raise FormatError(
            f"corrupt PLY: the header declares {declared} element rows, more than the {size} bytes of the file can hold "
            "(truncated, or a wrong count)",
            path,
        )


@register_reader("ply", extensions=(".ply",), description="PLY point cloud or triangle mesh, ascii or binary")
def read_ply(path: Path, instance_field: str | None = None, semantic_field: str | None = None) -> Scene:
    """Read a PLY file into a `Scene`.

    Colours (red/green/blue, any integer or float type), normals (nx/ny/nz) and faces
    (`vertex_indices`; polygons are fan-triangulated) are recognised by name. A vertex property
    named like an instance id (`instance`, `objectId`, ...) becomes ground-truth instances
    (negative values = unlabelled), one named like a class (`label`, `semantic`, ...) becomes
    semantic ids; `instance_field` / `semantic_field` pick them explicitly.
    """
    data = load_ply(path)
    if "vertex" not in data:
        raise FormatError("PLY has no 'vertex' element", path)
    vertex = data["vertex"].data
    available = {name.lower(): name for name in vertex.dtype.names or ()}
    missing = [axis for axis in "xyz" if axis not in available]
    if missing:
        raise FormatError(f"PLY vertex element lacks coordinate fields {missing}; has {sorted(available)}", path)
    points = np.stack([vertex[available[a]] for a in "xyz"], axis=1).astype(np.float32)
    if points.shape[0] == 0:
        raise InputError("the point cloud is empty", path)

    colors = None
    for triple in _COLOR_NAMES:
        if all(c in available for c in triple):
            raw = np.stack([vertex[available[c]] for c in triple], axis=1)
            colors = raw if np.issubdtype(raw.dtype, np.integer) else np.clip(raw.astype(np.float32), 0, 1)
            if np.issubdtype(raw.dtype, np.integer) and raw.max(initial=0) > 255:  # 16-bit colour
                colors = (raw.astype(np.float32) / 65535.0).astype(np.float32)
            break
    normals = None
    for triple in _NORMAL_NAMES:
        if all(c in available for c in triple):
            normals = np.stack([vertex[available[c]] for c in triple], axis=1).astype(np.float32)
            break

    faces = _read_faces(data, path)
    if faces is not None and faces.size and (faces.min() < 0 or faces.max() >= points.shape[0]):
        raise FormatError(
            f"PLY faces index vertices outside [0, {points.shape[0]}) (indices {int(faces.min())}..{int(faces.max())}): "
            "the face list or the vertex count is wrong",
            path,
        )

    instance_name = _pick_field(instance_field, _INSTANCE_NAMES, available, path)
    semantic_name = _pick_field(semantic_field, _SEMANTIC_NAMES, available, path)
    gt = None
    if instance_name is not None or semantic_name is not None:
        semantic = None
        if semantic_name is not None:
            semantic = integer_labels(np.asarray(vertex[semantic_name]), f"vertex property {semantic_name!r}", path)
        if instance_name is not None:
            raw_ids = integer_labels(np.asarray(vertex[instance_name]), f"vertex property {instance_name!r}", path)
            instance_ids = _compact_ids(raw_ids)
        else:
            instance_ids = np.full(points.shape[0], -1, dtype=np.int64)
        gt = GroundTruth(instance_ids, semantic_ids=semantic)

    # the rule of every reader: vertices with a NaN/inf coordinate are dropped (and counted),
    # with the faces that use them; the remaining faces are re-indexed
    finite = np.isfinite(points).all(axis=1)
    dropped = int(np.count_nonzero(~finite))
    dropped_faces = 0
    if dropped:
        if dropped == points.shape[0]:
            raise InputError(f"all {dropped} points have NaN or infinite coordinates", path)
        keep = np.flatnonzero(finite)
        points = points[keep]
        colors = None if colors is None else colors[keep]
        normals = None if normals is None else normals[keep]
        gt = None if gt is None else gt.subset(keep)
        if faces is not None:
            position = np.full(finite.shape[0], -1, dtype=np.int64)
            position[keep] = np.arange(keep.size)
            mapped = position[faces]
            whole = (mapped >= 0).all(axis=1)
            dropped_faces = int(np.count_nonzero(~whole))
            faces = mapped[whole] if whole.any() else None
    scene = Scene(points=points, colors=colors, normals=normals, faces=faces, gt=gt, name=_scene_name(path), source=path)
    scene.metadata.update(format="ply", ply_format="ascii" if data.text else ("binary_big_endian" if data.byte_order == ">" else "binary_little_endian"))
    scene.metadata["vertex_fields"] = ",".join(vertex.dtype.names or ())
    if dropped:
        scene.metadata["dropped_nan_points"] = dropped
    if dropped_faces:
        scene.metadata["dropped_faces"] = dropped_faces
    return scene


def _scene_name(path: Path) -> str:
    name = path.name
    for suffix in (".labels.ply", ".ply"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    # ScanNet meshes are named <scene>_vh_clean_2.ply; the scene name pairs them with GT
    for suffix in ("_vh_clean_2", "_vh_clean"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _pick_field(explicit: str | None, candidates: tuple[str, ...], available: dict[str, str], path: Path) -> str | None:
    if explicit is not None:
        if explicit.lower() not in available:
            raise InputError(f"PLY has no vertex property {explicit!r}; has {sorted(available)}", path)
        return available[explicit.lower()]
    return _find(candidates, available)


def _compact_ids(raw_ids: np.ndarray) -> np.ndarray:
    """Renumber arbitrary instance ids to [0, K); negative ids stay unlabelled (-1)."""
    return compact_ids(raw_ids)


def _read_faces(data: plyfile.PlyData, path: Path) -> np.ndarray | None:
    if "face" not in data or data["face"].count == 0:
        return None
    face = data["face"].data
    names = face.dtype.names or ()
    key = next((n for n in ("vertex_indices", "vertex_index") if n in names), None)
    if key is None:
        raise FormatError(f"PLY face element has no vertex_indices list; has {list(names)}", path)
    polygons = face[key]
    if polygons.ndim == 2:  # read through the fixed-length fast path: already (F, 3)
        return np.asarray(polygons, dtype=np.int64)
    lengths = np.fromiter((len(p) for p in polygons), dtype=np.int64, count=len(polygons))
    if lengths.size and np.all(lengths == 3):
        return np.vstack(polygons).astype(np.int64)
    triangles = []
    for polygon in polygons:  # rare: quads or n-gons, fan-triangulated
        polygon = np.asarray(polygon, dtype=np.int64)
        for i in range(1, len(polygon) - 1):
            triangles.append((polygon[0], polygon[i], polygon[i + 1]))
    return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)


def write_ply(
    scene: Scene,
    path: str | os.PathLike[str],
    colors: np.ndarray | None = None,
    extra_fields: dict[str, np.ndarray] | None = None,
    binary: bool = True,
) -> Path:
    """Write a scene as PLY (atomically): xyz, colours, normals, faces and extra vertex fields.

    Args:
        scene: the scene; its faces are written when present.
        path: output path.
        colors: (N, 3) uint8 or [0, 1] float colours overriding the scene's.
        extra_fields: name -> (N,) numeric array written as extra vertex properties (e.g.
            `instance`, `score`); ground-truth ids are written as `gt_instance` / `gt_semantic`
            unless a field of that name is given.
        binary: binary little-endian (default) or ascii.
    """
    n = scene.num_points
    fields: list[tuple[str, np.ndarray]] = [(a, scene.points[:, i].astype(np.float32)) for i, a in enumerate("xyz")]
    rgb = scene.colors if colors is None else colors
    if rgb is not None:
        rgb = np.asarray(rgb)
        if not np.issubdtype(rgb.dtype, np.integer):
            rgb = np.round(np.clip(rgb, 0, 1) * 255)
        rgb = rgb.astype(np.uint8)
        fields += [(c, rgb[:, i]) for i, c in enumerate(("red", "green", "blue"))]
    if scene.normals is not None:
        fields += [(c, scene.normals[:, i].astype(np.float32)) for i, c in enumerate(("nx", "ny", "nz"))]
    extra = dict(extra_fields or {})
    if scene.gt is not None:
        extra.setdefault("gt_instance", scene.gt.instance_ids.astype(np.int32))
        if scene.gt.semantic_ids is not None:
            extra.setdefault("gt_semantic", scene.gt.semantic_ids.astype(np.int32))
    for name, values in extra.items():
        values = np.asarray(values)
        if values.shape != (n,):
            raise InputError(f"extra PLY field {name!r} has shape {values.shape}, expected ({n},)")
        if values.dtype == np.int64:
            values = values.astype(np.int32)
        elif values.dtype == np.float64:
            values = values.astype(np.float32)
        fields.append((name, values))
    vertex = np.empty(n, dtype=[(name, values.dtype) for name, values in fields])
    for name, values in fields:
        vertex[name] = values
    elements = [plyfile.PlyElement.describe(vertex, "vertex")]
    if scene.faces is not None and len(scene.faces):
        face = np.empty(len(scene.faces), dtype=[("vertex_indices", np.int32, (3,))])
        face["vertex_indices"] = scene.faces.astype(np.int32)
        elements.append(plyfile.PlyElement.describe(face, "face"))
    with atomic_path(path) as tmp:
        plyfile.PlyData(elements, text=not binary).write(str(tmp))
    return Path(path)


def write_segmentation_ply(
    scene: Scene, masks: InstanceMasks, path: str | os.PathLike[str], unassigned_gray: float = 0.6
) -> Path:
    """PLY with one colour per predicted instance, for MeshLab / CloudCompare.

    Overlapping masks are flattened by score (`InstanceMasks.to_labels`). Vertex fields
    `instance` (-1 = none) and `score` are added, so the file alone carries the labels.
    """
    from labelfree3d.viz.palette import instance_colors

    if masks.num_points != scene.num_points:
        raise InputError(f"{masks.num_points}-point masks do not fit a {scene.num_points}-point scene", scene.source)
    labels = masks.to_labels()
    colors = instance_colors(labels, unassigned_gray=unassigned_gray)
    score = np.where(labels >= 0, masks.scores[np.maximum(labels, 0)] if len(masks) else 0.0, 0.0)
    return write_ply(scene, path, colors=colors, extra_fields={"instance": labels, "score": score})
