"""The noisy-sensor capture of the benchmarks (langscene_core.sim.noise): depth noise as the
structured-light model says, millimetre quantisation, holes kept, pose errors of the stated size."""

import numpy as np
import pytest

from langscene_core.geometry.camera import Intrinsics
from langscene_core.sim.noise import SensorNoise, add_sensor_noise, depth_sigma_m
from langscene_core.sim.render import RenderedFrame
from langscene_core.sim.trajectory import orbit_pose


def _frame(depth: float, pose: np.ndarray) -> RenderedFrame:
    d = np.full((200, 200), depth, dtype=np.float32)
    d[:10] = 0.0  # no surface
    return RenderedFrame(
        name="f",
        rgb=np.zeros((200, 200, 3), np.uint8),
        depth=d,
        normals=np.zeros((200, 200, 3), np.float32),
        ids=np.zeros((200, 200), np.int32),
        intrinsics=Intrinsics.from_hfov(200, 200, 60.0),
        cam_to_world=pose,
    )


def test_depth_sigma_follows_the_structured_light_model():
    assert depth_sigma_m(np.array([0.4, 1.0, 1.5])) == pytest.approx([0.0012, 0.001884, 0.003499])


@pytest.mark.parametrize("depth", [0.6, 1.5])
def test_depth_noise_grows_with_range_and_is_quantised(depth):
    (noisy,) = add_sensor_noise([_frame(depth, np.eye(4))], SensorNoise(pose_sigma_m=0, pose_sigma_deg=0))
    measured = noisy.depth[10:]
    assert np.all(noisy.depth[:10] == 0)
    assert np.allclose(measured * 1000, np.round(measured * 1000), atol=1e-3)
    assert np.std(measured) == pytest.approx(np.sqrt(depth_sigma_m(depth) ** 2 + 1e-6 / 12), rel=0.1)
    assert abs(np.mean(measured) - depth) < 2e-4


def test_pose_errors_have_the_stated_size():
    pose = orbit_pose(30, 35, 0.7)
    frames = add_sensor_noise([_frame(1.0, pose)] * 400, SensorNoise(pose_sigma_m=0.003, pose_sigma_deg=0.2, seed=3))
    shifts = np.array([f.cam_to_world[:3, 3] - pose[:3, 3] for f in frames])
    angles = [
        np.degrees(np.arccos(np.clip((np.trace(f.cam_to_world[:3, :3] @ pose[:3, :3].T) - 1) / 2, -1, 1)))
        for f in frames
    ]
    assert np.std(shifts, axis=0) == pytest.approx([0.003] * 3, rel=0.15)
    assert np.sqrt(np.mean(np.square(angles))) == pytest.approx(0.2, rel=0.15)
    for f in frames[:5]:
        assert np.allclose(f.cam_to_world[:3, :3] @ f.cam_to_world[:3, :3].T, np.eye(3), atol=1e-12)
