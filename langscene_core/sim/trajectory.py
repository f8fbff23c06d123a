"""Camera poses around the table: capture trajectories (orbit, arc, two_view) and eval views.

Poses are camera-to-world [4, 4] float64 in the OpenCV convention (langscene_core.geometry.camera.look_at), all
looking at :data:`LOOK_AT` (a little above the table centre). Azimuth 0 is the -y side of the table
(the "front"), increasing counter-clockwise seen from above.
"""

from __future__ import annotations

import numpy as np

from langscene_core.geometry.camera import look_at
from langscene_core.sim.spec import CameraSpec

LOOK_AT = np.array([0.0, 0.0, 0.03])
ARC_SPAN_DEG = 120.0
TWO_VIEW_AZIMUTHS_DEG = (-60.0, 60.0)
TWO_VIEW_EXTRA_ELEVATION_DEG = 15.0  # the sparse pair looks down more steeply to see every object
EVAL_EXTRA_ELEVATION_DEG = 10.0
EVAL_RADIUS_SCALE = 0.9


def orbit_pose(azimuth_deg: float, elevation_deg: float, radius: float) -> np.ndarray:
    """[4, 4] camera-to-world of a camera on a sphere around LOOK_AT, looking at it, image up = world z."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    offset = radius * np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    return look_at(LOOK_AT + offset, LOOK_AT)


def capture_azimuths(camera: CameraSpec) -> np.ndarray:
    """[V] azimuths in degrees of the capture trajectory."""
    if camera.trajectory == "orbit":
        return np.arange(camera.views) * 360.0 / camera.views
    if camera.trajectory == "arc":
        return np.linspace(-ARC_SPAN_DEG / 2, ARC_SPAN_DEG / 2, camera.views)
    if camera.trajectory == "two_view":
        return np.array(TWO_VIEW_AZIMUTHS_DEG)
    raise ValueError(f"camera.trajectory: unknown trajectory {camera.trajectory!r}")


def capture_poses(camera: CameraSpec) -> np.ndarray:
    """[V, 4, 4] camera-to-world poses of the capture trajectory."""
    elevation = camera.elevation_deg + (TWO_VIEW_EXTRA_ELEVATION_DEG if camera.trajectory == "two_view" else 0.0)
    return np.stack([orbit_pose(a, min(elevation, 85.0), camera.radius) for a in capture_azimuths(camera)])


def eval_poses(camera: CameraSpec, count: int) -> np.ndarray:
    """[count, 4, 4] poses off the capture trajectory: higher, closer, azimuths between capture views."""
    if count == 0:
        return np.zeros((0, 4, 4))
    azimuths = (np.arange(count) + 0.5) * 360.0 / count + 360.0 / (4 * max(camera.views, count))
    elevation = min(camera.elevation_deg + EVAL_EXTRA_ELEVATION_DEG, 85.0)
    return np.stack([orbit_pose(a, elevation, camera.radius * EVAL_RADIUS_SCALE) for a in azimuths])
