"""course_lib.features against F.unfold, F.interpolate(nearest-exact) and F.grid_sample."""

import pytest
import torch
import torch.nn.functional as F

from course_lib import coords, features
from course_lib.errors import CourseError


def test_unfold3x3_equals_F_unfold():
    feat = torch.randn(2, 5, 6, 7)
    oracle = F.unfold(feat, 3, padding=1).reshape(2, 45, 6, 7)
    assert torch.equal(features.unfold3x3(feat), oracle)


def test_unfold3x3_by_hand_corner_sees_zeros():
    feat = torch.arange(1, 5, dtype=torch.float32).reshape(1, 1, 2, 2)  # [[1, 2], [3, 4]]
    u = features.unfold3x3(feat)[0, :, 0, 0]  # 3x3 window around the top-left pixel
    assert u.tolist() == [0, 0, 0, 0, 1, 2, 0, 3, 4]


@pytest.mark.parametrize("lr,hr", [((3, 4), (7, 9)), ((5, 5), (13, 13)), ((4, 6), (8, 12)), ((2, 2), (3, 3))])
def test_query_nearest_dense_equals_nearest_exact(lr, hr):
    feat = torch.randn(2, 4, *lr)
    oracle = F.interpolate(feat, size=hr, mode="nearest-exact")
    assert torch.equal(features.query_nearest_dense(feat, hr), oracle)


def test_query_nearest_flat_matches_dense_on_the_grid():
    feat = torch.randn(2, 4, 5, 6)
    dense = features.query_nearest_dense(feat, (13, 17))
    grid = coords.make_coord((13, 17), flatten=True).expand(2, -1, -1)
    flat = features.query_nearest(feat, grid)
    assert torch.equal(flat, dense.flatten(2).transpose(1, 2))


def test_query_nearest_equals_grid_sample_at_random_points():
    feat = torch.randn(1, 3, 5, 6)
    q = torch.rand(1, 100, 2) * 1.98 - 0.99
    oracle = F.grid_sample(feat, q.flip(-1)[:, None], mode="nearest", align_corners=False)[:, :, 0].transpose(1, 2)
    assert torch.equal(features.query_nearest(feat, q), oracle)


def test_bad_inputs():
    with pytest.raises(CourseError, match=r"\(B, C, h, w\)"):
        features.unfold3x3(torch.zeros(3, 4, 4))
    with pytest.raises(CourseError, match="coord must have shape"):
        features.query_nearest(torch.zeros(1, 2, 4, 4), torch.zeros(1, 5, 3))


def test_check_feature_map_gives_one_line_errors():
    check_feature_map = features.check_feature_map
    check_feature_map(torch.zeros(1, 8, 3, 4), 8)  # fine: returns None
    with pytest.raises(CourseError, match=r"\(B, C, h, w\), got \(8, 3, 4\)"):
        check_feature_map(torch.zeros(8, 3, 4), 8)
    with pytest.raises(CourseError, match="expects 8-channel features, got 6 channels: build it with feat_dim=6"):
        check_feature_map(torch.zeros(1, 6, 3, 4), 8)
    with pytest.raises(CourseError, match="got list"):
        check_feature_map([1, 2], 8)
