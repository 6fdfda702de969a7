"""Small crops of one real scan of every kind, for tests that run every segmenter quickly.

A crop is the `CROP_POINTS` points nearest to one point of the scan (a ball, so that surfaces,
mesh faces and the local density stay as they are), taken at test time from the shared data:
- "room mesh": scannet/scene0000_00 (ScanNet mesh with colours and faces);
- "room cloud": scannet-votenet/scene0000_00_vert.npy (VoteNet export: points and colours);
- "tabletop frame": osd/learn/learn0.pcd (organized Kinect frame);
- "lidar sweep": semantickitti/sk_points_000700.npy (colour-less LiDAR);
- "fused mesh": a TSDF mesh fused from 4 of the 7-Scenes RGB-D frames at 4 cm voxels (~1 s).

Crops of scans with ground truth are centred on the largest evaluated object, so that they hold
an object and the surface it stands on rather than only floor or table; the LiDAR crop (no
instance ground truth) is centred on a fixed point of the sweep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from labelfree3d.io import read_scene
from labelfree3d.structures import Scene

CROP_POINTS = 2500
# every how many-th point of the ball a crop keeps: the ball around an OSD object holds ~40,000
# points at Kinect density, and 2,500 of them would cover only a part of the object
THINNING = {"tabletop frame": 16}
SCANS = {
    "room mesh": "scannet/scene0000_00",
    "room cloud": "scannet-votenet/scene0000_00_vert.npy",
    "tabletop frame": "osd/learn/learn0.pcd",
    "lidar sweep": "semantickitti/sk_points_000700.npy",
}
FUSED = "fused mesh"
KINDS = (*SCANS, FUSED)


def crop(scene: Scene, num_points: int = CROP_POINTS, thinning: int = 1) -> Scene:
    """The `num_points` points of `scene` nearest to its crop centre, in their original order;
    with `thinning` t, every t-th of the t * `num_points` nearest.

    The centre is the point nearest to the centroid of the largest evaluated ground-truth
    instance, or the point at 40 % of the scan's order when there is none.
    """
    points = scene.points.astype(np.float64)
    centre = points[int(0.4 * points.shape[0])]
    gt = scene.gt
    if gt is not None and gt.num_evaluated > 0:
        ids = gt.instance_ids
        evaluated = np.flatnonzero(gt.instance_evaluated)
        sizes = np.bincount(ids[ids >= 0], minlength=gt.num_instances)[evaluated]
        members = points[ids == evaluated[int(np.argmax(sizes))]]
        centroid = members.mean(axis=0)
        centre = members[int(np.argmin(np.linalg.norm(members - centroid, axis=1)))]
    _, nearest = cKDTree(points).query(centre, k=min(thinning * num_points, points.shape[0]))
    return scene.subset(np.sort(np.atleast_1d(nearest))[::thinning])


def fused_mesh(sevenscenes: Path) -> Scene:
    """A small TSDF mesh of the 7-Scenes sequence (every 25th of its 100 frames, 4 cm voxels)."""
    from labelfree3d.lift import TSDFFusion

    frames = read_scene(sevenscenes).frames[::25]
    mesh, _ = TSDFFusion(voxel_length=0.04, sdf_trunc=0.16).fuse(frames, name="chess", source=str(sevenscenes))
    return mesh


def read_crops(data: Path) -> dict[str, Scene]:
    """kind -> crop, read afresh (no cached structure or normals on the scenes)."""
    crops = {kind: crop(read_scene(data / relative), thinning=THINNING.get(kind, 1)) for kind, relative in SCANS.items()}
    crops[FUSED] = crop(fused_mesh(data / "7scenes"))
    return crops
