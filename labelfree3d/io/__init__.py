"""Readers and writers for real scan formats, predictions and segmentation exports.

`read_scene(path)` detects the format from the folder layout, file name or extension (or
takes `format=`); every reader returns a `Scene`, with ground truth when the format has it.
ScanNet's benchmark ground truth (`<scene>.txt`, no points) is read by `read_scannet_gt_txt`
into a `GroundTruth` (`labelfree3d.io.scannet_gt`).
All writers write to a temporary file and rename it into place.
"""

# reader modules register themselves on import. Detection tries every reader's `detect`
# predicate (folder layouts, name patterns) in this order before falling back to extensions,
# so specific detectors (OSD before the generic PCD extension, the SemanticKITTI npy pair and
# VoteNet's `_vert.npy` before the generic .npy extension) must come first, and the Pointcept
# folder (any folder with coord.npy) after the more specific folder layouts.
from labelfree3d.io import npz as _npz  # noqa: F401
from labelfree3d.io import ply as _ply  # noqa: F401
from labelfree3d.io import osd as _osd  # noqa: F401
from labelfree3d.io import pcd as _pcd  # noqa: F401
from labelfree3d.io import scannet as _scannet  # noqa: F401
from labelfree3d.io import s3dis as _s3dis  # noqa: F401
from labelfree3d.io import rgbd as _rgbd  # noqa: F401
from labelfree3d.io import las as _las  # noqa: F401
from labelfree3d.io import scannet_exports as _scannet_exports  # noqa: F401
from labelfree3d.io import semantickitti as _semantickitti  # noqa: F401
from labelfree3d.io import npy as _npy  # noqa: F401
from labelfree3d.io.atomic import atomic_path, write_text_atomic
from labelfree3d.io.ply import write_ply, write_segmentation_ply
from labelfree3d.io.predictions import (
    read_prediction_metadata,
    read_predictions,
    read_scannet_benchmark,
    write_predictions,
    write_scannet_benchmark,
)
from labelfree3d.io.scannet_gt import read_scannet_gt_txt, write_scannet_gt_txt
from labelfree3d.io.segmentation_output import SEGMENTATION_FORMATS, write_segmentation
from labelfree3d.io.registry import READERS, detect_format, read_scene, register_reader
from labelfree3d.io.writers import write_scene

__all__ = [
    "read_scene",
    "detect_format",
    "register_reader",
    "READERS",
    "write_scene",
    "write_segmentation",
    "SEGMENTATION_FORMATS",
    "write_ply",
    "write_segmentation_ply",
    "write_predictions",
    "read_predictions",
    "read_prediction_metadata",
    "write_scannet_benchmark",
    "read_scannet_benchmark",
    "read_scannet_gt_txt",
    "write_scannet_gt_txt",
    "atomic_path",
    "write_text_atomic",
]
