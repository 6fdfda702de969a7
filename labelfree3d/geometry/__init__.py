"""Geometry layer: normals, voxels, sampling, neighbourhood graphs, planes, room structure, clusters, superpoints.

Functions take and return numpy arrays (not `Scene`s) so that every other package can use them;
this package depends on numpy, scipy, numba, Open3D and fpsample only, never on torch. Units
are those of the input coordinates (metres for the scans labelfree3d reads). Absurd arguments
(negative sizes, k < 1, empty or NaN input) raise `labelfree3d.errors.ParameterError`.
"""

from labelfree3d.geometry.clustering import euclidean_clustering
from labelfree3d.geometry.components import connected_components, relabel_consecutive
from labelfree3d.geometry.growing import grow_labels
from labelfree3d.geometry.mesh import face_edges, mesh_adjacency, mesh_edges
from labelfree3d.geometry.neighbors import edges_to_csr, knn, knn_graph, radius_graph, unique_undirected_edges
from labelfree3d.geometry.normals import estimate_point_normals, face_normals, mesh_vertex_normals, orient_normals
from labelfree3d.geometry.planes import detect_planes, fit_plane, plane_inliers, point_plane_distances
from labelfree3d.geometry.sampling import farthest_point_sampling
from labelfree3d.geometry.structure import (
    CEILING,
    REST,
    SUPPORT,
    WALL,
    RoomStructure,
    detect_structure,
    point_spacing,
    surface_noise,
)
from labelfree3d.geometry.superpoints import (
    felzenszwalb_segmentation,
    mesh_superpoints,
    point_cloud_superpoints,
    point_edge_weights,
    scannet_edge_weights,
)
from labelfree3d.geometry.voxel import VoxelGrid, one_point_per_cell, voxel_coordinates, voxel_downsample

__all__ = [
    "CEILING",
    "REST",
    "SUPPORT",
    "WALL",
    "RoomStructure",
    "VoxelGrid",
    "connected_components",
    "detect_planes",
    "detect_structure",
    "edges_to_csr",
    "estimate_point_normals",
    "euclidean_clustering",
    "face_edges",
    "face_normals",
    "farthest_point_sampling",
    "felzenszwalb_segmentation",
    "fit_plane",
    "grow_labels",
    "knn",
    "knn_graph",
    "mesh_adjacency",
    "mesh_edges",
    "mesh_superpoints",
    "mesh_vertex_normals",
    "orient_normals",
    "plane_inliers",
    "point_cloud_superpoints",
    "point_edge_weights",
    "point_plane_distances",
    "point_spacing",
    "radius_graph",
    "relabel_consecutive",
    "scannet_edge_weights",
    "surface_noise",
    "unique_undirected_edges",
    "one_point_per_cell",
    "voxel_coordinates",
    "voxel_downsample",
]
