"""Training-free segmentation methods behind one `Segmenter` interface and registry.

`make_segmenter(name, **settings)` builds any of them; `SEGMENTERS` lists what is registered.
"""

from labelfree3d.segment.base import SEGMENTERS, Segmenter, make_segmenter, register_segmenter
from labelfree3d.segment.clustering_baselines import BirchSegmenter, DBSCANSegmenter, HDBSCANSegmenter, KMeansSegmenter
from labelfree3d.segment.felzenszwalb import FelzenszwalbSegmenter
from labelfree3d.segment.multicut import FreePointMulticutSegmenter
from labelfree3d.segment.ncut import MaskedNCutSegmenter
from labelfree3d.segment.plane_euclidean import PlaneEuclideanSegmenter
from labelfree3d.segment.pointins_offsets import PointINSOffsetsSegmenter
from labelfree3d.segment.run import (
    DEFAULT_METHODS,
    SegmentationRun,
    default_method,
    describe_methods,
    segment_file,
    segment_scene,
)

__all__ = [
    "SEGMENTERS",
    "BirchSegmenter",
    "DBSCANSegmenter",
    "FelzenszwalbSegmenter",
    "FreePointMulticutSegmenter",
    "HDBSCANSegmenter",
    "KMeansSegmenter",
    "MaskedNCutSegmenter",
    "PlaneEuclideanSegmenter",
    "PointINSOffsetsSegmenter",
    "SegmentationRun",
    "Segmenter",
    "describe_methods",
    "make_segmenter",
    "register_segmenter",
    "segment_file",
    "default_method",
    "DEFAULT_METHODS",
    "segment_scene",
]
