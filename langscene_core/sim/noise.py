"""A real camera's errors on rendered captures: depth noise growing with range, millimetre depth
quantisation, and a few millimetres / tenths of a degree of pose error.

The depth model is the axial noise of a structured-light sensor measured by Nguyen, Izadi and Lovell
(3DIMPVT 2012) for the Kinect: sigma_z(z) = 0.0012 + 0.0019 (z - 0.4)^2 metres (1.2 mm at 0.4 m, 1.9 mm
at 1 m, 3.5 mm at 1.5 m), times ``depth_scale``. Depth is then rounded to millimetres as a 16UC1 stream
carries it. Each capture pose is perturbed by a translation drawn with ``pose_sigma_m`` per axis and a
rotation about a random axis with angle drawn with ``pose_sigma_deg``: the error of a SLAM or arm pose.
Only what a sensor measures gets noise; the world (and so the grading truth) is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation

from langscene_core.sim.render import RenderedFrame


@dataclass(frozen=True)
class SensorNoise:
    """depth_scale: factor on the structured-light sigma_z(z) (0: exact depth, still quantised);
    pose_sigma_m: metres per axis; pose_sigma_deg: degrees of rotation; seed: of the draws."""

    depth_scale: float = 1.0
    pose_sigma_m: float = 0.003
    pose_sigma_deg: float = 0.2
    seed: int = 0


def depth_sigma_m(depth: np.ndarray) -> np.ndarray:
    """Axial noise sigma in metres of a structured-light camera at depth [...] metres (module docstring)."""
    return 0.0012 + 0.0019 * (np.asarray(depth, dtype=np.float64) - 0.4) ** 2


def add_sensor_noise(frames: Sequence[RenderedFrame], noise: SensorNoise) -> list[RenderedFrame]:
    """The frames as a noisy camera and pose source would give them (module docstring): depth [H, W]
    metres with sigma_z noise and mm rounding (0 stays 0 = no measurement), cam_to_world perturbed."""
    rng = np.random.default_rng(noise.seed)
    noisy = []
    for frame in frames:
        valid = frame.depth > 0
        drawn = frame.depth + noise.depth_scale * depth_sigma_m(frame.depth) * rng.standard_normal(frame.depth.shape)
        depth = np.where(valid, np.round(np.maximum(drawn, 0.001) * 1000.0) / 1000.0, 0.0).astype(np.float32)
        axis = rng.standard_normal(3)
        rotation = Rotation.from_rotvec(
            axis / np.linalg.norm(axis) * np.radians(noise.pose_sigma_deg * rng.standard_normal())
        )
        pose = frame.cam_to_world.copy()
        pose[:3, :3] = rotation.as_matrix() @ pose[:3, :3]
        pose[:3, 3] += noise.pose_sigma_m * rng.standard_normal(3)
        noisy.append(replace(frame, depth=depth, cam_to_world=pose))
    return noisy
