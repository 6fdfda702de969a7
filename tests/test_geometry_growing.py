"""`grow_labels`: partial labels grown along the surface, stopped by gaps, exclusions and distance."""

from __future__ import annotations

import numpy as np
import pytest

from labelfree3d.errors import ParameterError
from labelfree3d.geometry.growing import grow_labels


def _two_strips():
    """Two 1 m strips of points 1 cm apart along x, 10 cm apart in y."""
    x = np.arange(0, 1.0, 0.01)
    first = np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1)
    return np.concatenate([first, first + [0, 0.1, 0]])


def test_each_region_fills_its_own_strip_and_never_crosses_the_gap():
    points = _two_strips()
    labels = np.full(len(points), -1)
    labels[0], labels[100] = 3, 7  # one seed at the start of each strip
    grown = grow_labels(points, labels, np.ones(len(points), bool), link_radius=0.025, max_distance=5.0)
    assert (grown[:100] == 3).all() and (grown[100:] == 7).all()


def test_growth_stops_at_max_distance_at_excluded_points_and_where_regions_meet():
    points = _two_strips()[:100]
    labels = np.full(100, -1)
    labels[0] = 1
    near = grow_labels(points, labels, np.ones(100, bool), link_radius=0.015, max_distance=0.205)
    assert np.array_equal(np.flatnonzero(near == 1), np.arange(21))  # 20 links of 1 cm
    eligible = np.ones(100, bool)
    eligible[50] = False  # a cut the region may not pass
    cut = grow_labels(points, labels, eligible, link_radius=0.015, max_distance=5.0)
    assert (cut[:50] == 1).all() and (cut[50:] == -1).all()
    labels[99] = 2
    meet = grow_labels(points, labels, np.ones(100, bool), link_radius=0.015, max_distance=5.0)
    assert (meet[:49] == 1).all() and (meet[51:] == 2).all()  # each point goes to the nearer seed
    assert np.array_equal(labels, np.r_[1, np.full(98, -1), 2])  # the input is not modified


def test_bad_arguments_are_refused():
    points = _two_strips()
    with pytest.raises(ParameterError, match="one per point"):
        grow_labels(points, np.full(3, -1), np.ones(len(points), bool), 0.02, 0.1)
    with pytest.raises(ParameterError, match="link_radius"):
        grow_labels(points, np.full(len(points), -1), np.ones(len(points), bool), 0.0, 0.1)
