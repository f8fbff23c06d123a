"""CPU ray-cast renderer of a :class:`World` (open3d ``RaycastingScene``, all views in one cast).

Per pixel: RGB (Lambert shading from one directional light plus ambient, cast shadows, and a small
deterministic texture noise fixed to world positions so every view sees the same texture), depth,
world-frame normals and instance ids (convention in :mod:`langscene_core.sim.scene`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from langscene_core.capture.frames import Frame as CameraFrame
from langscene_core.geometry.camera import Intrinsics, pixel_rays
from langscene_core.sim.scene import BACKGROUND_ID, World
from langscene_core.sim.spec import COLORS, CameraSpec

LIGHT_DIRECTION = np.array([0.3, -0.4, 1.0]) / np.linalg.norm([0.3, -0.4, 1.0])  # towards the light
AMBIENT = 0.35
BACKGROUND_RGB = np.array([0.75, 0.82, 0.90])  # linear, a pale sky
TEXTURE_CELL = 0.004  # metres; texture noise is constant over world cubes of this size
TEXTURE_STRENGTH = 0.12  # albedo is scaled by 1 +- this
SHADOW_OFFSET = 1e-4  # metres along the normal before casting a shadow ray


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """One rendered (or loaded) view.

    rgb: [H, W, 3] uint8 sRGB. depth: [H, W] float32 metres along the camera z axis, 0 = no surface.
    normals: [H, W, 3] float32 unit world-frame normals facing the camera, 0 = no surface.
    ids: [H, W] int32 instance ids (-1 background, 0 table, k = spec.objects[k - 1]).
    cam_to_world: [4, 4] float64, OpenCV camera axes.
    """

    name: str
    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    ids: np.ndarray
    intrinsics: Intrinsics
    cam_to_world: np.ndarray

    def to_camera_frame(self, stamp: float) -> CameraFrame:
        """The pipeline's posed RGB-D frame (langscene_core.capture.frames.Frame: depth NaN where no surface)."""
        depth = np.where(self.depth > 0, self.depth, np.nan).astype(np.float32)
        return CameraFrame(
            stamp=stamp, rgb=self.rgb, intrinsics=self.intrinsics, cam_to_world=self.cam_to_world, depth=depth
        )


def intrinsics_of(camera: CameraSpec) -> Intrinsics:
    """Pinhole intrinsics of a spec's camera (square pixels, centred principal point)."""
    return Intrinsics.from_hfov(camera.width, camera.height, camera.hfov_deg)


def _texture_noise(points: np.ndarray, seed: int) -> np.ndarray:
    """[N] values in [-1, 1], a hash of the world cube of side TEXTURE_CELL holding each point [N, 3]."""
    cells = np.floor(points / TEXTURE_CELL).astype(np.int64).astype(np.uint64)
    h = (
        (cells[:, 0] * np.uint64(73856093))
        ^ (cells[:, 1] * np.uint64(19349663))
        ^ (cells[:, 2] * np.uint64(83492791))
        ^ np.uint64(seed * 2654435761 % 2**32)
    )
    h ^= h >> np.uint64(13)  # integer mixing so neighbouring cells decorrelate
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return (h % np.uint64(2**16)).astype(np.float64) / 2**15 - 1.0


def _albedo_table(world: World) -> np.ndarray:
    """[N + 1, 3] linear albedo per instance id (row 0 = table)."""
    names = [world.spec.table.color] + [o.color for o in world.spec.objects]
    return np.array([COLORS[n] for n in names])


def render(
    world: World, intrinsics: Intrinsics, cam_to_world: np.ndarray, names: list[str] | None = None
) -> list[RenderedFrame]:
    """Render V views with one ray cast.

    cam_to_world: [V, 4, 4] (or [4, 4] for one view) camera-to-world poses. names: V frame names
    (default ``view_0000``...). Returns V frames in pose order.
    """
    poses = np.asarray(cam_to_world, dtype=np.float64).reshape(-1, 4, 4)
    names = names if names is not None else [f"view_{i:04d}" for i in range(len(poses))]
    if len(names) != len(poses):
        raise ValueError(f"names: {len(names)} names for {len(poses)} poses")
    dirs = np.einsum("vij,hwj->vhwi", poses[:, :3, :3], pixel_rays(intrinsics))  # camera z = 1 per ray
    origins = np.broadcast_to(poses[:, None, None, :3, 3], dirs.shape)
    rays = np.concatenate([origins, dirs], axis=-1).astype(np.float32)
    hit = world.raycaster.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()  # along a ray with camera-z step 1, so t is the depth
    found = np.isfinite(t)
    ids = np.where(found, hit["geometry_ids"].numpy().astype(np.int64), BACKGROUND_ID).astype(np.int32)
    normals = hit["primitive_normals"].numpy().astype(np.float64)
    facing_away = np.einsum("vhwi,vhwi->vhw", normals, dirs) > 0
    normals = np.where(facing_away[..., None], -normals, normals) * found[..., None]

    points = origins[found] + dirs[found] * t[found][:, None]
    n_hit = normals[found]
    shadow_rays = np.concatenate([points + SHADOW_OFFSET * n_hit, np.broadcast_to(LIGHT_DIRECTION, points.shape)], -1)
    lit = ~world.raycaster.test_occlusions(o3d.core.Tensor(shadow_rays.astype(np.float32))).numpy()
    lambert = np.clip(n_hit @ LIGHT_DIRECTION, 0.0, None) * lit
    albedo = (
        _albedo_table(world)[ids[found]] * (1.0 + TEXTURE_STRENGTH * _texture_noise(points, world.spec.seed))[:, None]
    )
    linear = np.broadcast_to(BACKGROUND_RGB, (*t.shape, 3)).copy()
    linear[found] = albedo * (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]
    rgb = np.round(255.0 * np.clip(linear, 0.0, 1.0) ** (1 / 2.2)).astype(np.uint8)
    depth = np.where(found, t, 0.0).astype(np.float32)
    return [
        RenderedFrame(
            name=names[v],
            rgb=rgb[v],
            depth=depth[v],
            normals=normals[v].astype(np.float32),
            ids=ids[v],
            intrinsics=intrinsics,
            cam_to_world=poses[v].copy(),
        )
        for v in range(len(poses))
    ]
