"""Downscaled keyframes stay geometrically consistent with the full-resolution capture."""

import numpy as np
import open3d as o3d
import pytest

from langscene_core.capture.frames import Frame
from langscene_core.capture.resample import downscale_frame, scaled_intrinsics
from langscene_core.geometry.camera import Intrinsics, look_at, unproject_depth
from langscene_core.sim import CameraSpec, build_world, intrinsics_of, random_spec, render


@pytest.fixture(scope="module")
def rendered():
    spec = random_spec(5, 4)
    world = build_world(spec)
    intrinsics = intrinsics_of(CameraSpec(width=320, height=240))
    pose = look_at(np.array([0.5, -0.4, 0.45]), np.zeros(3))
    view = render(world, intrinsics, pose)[0]
    depth = np.where(view.depth > 0, view.depth, np.nan).astype(np.float32)
    return world, Frame(stamp=1.0, rgb=view.rgb, intrinsics=view.intrinsics, cam_to_world=pose, depth=depth)


@pytest.mark.parametrize("side", [160, 200])
def test_downscaled_depth_unprojects_onto_the_true_surfaces(rendered, side):
    world, frame = rendered
    small = downscale_frame(frame, side)
    height, width = round(240 * side / 320), side
    assert (
        small.rgb.shape == (height, width, 3) and small.rgb.dtype == np.uint8 and small.depth.shape == (height, width)
    )
    assert (small.intrinsics.width, small.intrinsics.height) == (width, height)
    points = unproject_depth(small.depth, small.intrinsics, small.cam_to_world).reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)]
    assert len(points) > 0.5 * width * height
    scene = o3d.t.geometry.RaycastingScene()
    for mesh in world.meshes:
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    distance = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
    assert np.percentile(distance, 95) < 2e-4  # smooth surfaces: sampled at the new pixel centres
    assert distance.max() < 5e-3  # occlusion edges: a real sample within a source pixel, never in between
    assert np.isnan(small.depth).any() == np.isnan(frame.depth).any()  # unknown depth stays unknown


def test_downscaled_colours_are_area_averages(rendered):
    _, frame = rendered
    small = downscale_frame(frame, 160)
    blocks = frame.rgb.astype(np.float64).reshape(120, 2, 160, 2, 3).mean(axis=(1, 3))
    assert np.abs(small.rgb - blocks).mean() < 3.0


def test_small_frames_and_zero_are_unchanged_and_negative_is_an_error(rendered):
    _, frame = rendered
    assert downscale_frame(frame, 0) is frame and downscale_frame(frame, 320) is frame
    with pytest.raises(ValueError, match="max_side"):
        downscale_frame(frame, -1)


def test_scaled_intrinsics_keep_the_field_of_view():
    camera = Intrinsics(fx=300.0, fy=310.0, cx=162.0, cy=118.0, width=320, height=240)
    half = scaled_intrinsics(camera, 160, 120)
    assert (half.fx, half.fy, half.cx, half.cy) == (150.0, 155.0, 81.0, 59.0)
