"""A tiny ray-cast RGB-D tabletop for the field tests (open3d RaycastingScene, CPU).

A table slab with a box, a ball and a cylinder; Lambert-shaded colours, z-depth, world-frame normals
facing the camera, instance ids. Mask levels s/m/l = instance / instance / table-vs-objects; the latent
target of each mask is a fixed random 3-vector per level (what the LQC would give).
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from langscene_core.field.views import TrainView
from langscene_core.geometry.camera import Intrinsics, look_at, pixel_rays

COLORS = np.array([[0.55, 0.55, 0.5], [0.85, 0.2, 0.15], [0.2, 0.35, 0.85], [0.9, 0.8, 0.2]])
LIGHT = np.array([0.3, -0.4, 0.87]) / np.linalg.norm([0.3, -0.4, 0.87])


def _meshes() -> list[o3d.geometry.TriangleMesh]:
    table = o3d.geometry.TriangleMesh.create_box(0.8, 0.6, 0.02).translate((-0.4, -0.3, -0.02))
    box = o3d.geometry.TriangleMesh.create_box(0.12, 0.12, 0.12).translate((0.04, -0.16, 0.0))
    ball = o3d.geometry.TriangleMesh.create_sphere(0.07, resolution=24).translate((-0.14, 0.04, 0.07))
    can = o3d.geometry.TriangleMesh.create_cylinder(0.045, 0.16, resolution=32).translate((0.12, 0.14, 0.08))
    return [table, box, ball, can]


def make_views(
    n_views: int,
    width: int = 64,
    height: int = 48,
    azimuth_offset_deg: float = 0.0,
    radius: float = 0.75,
    elevation_deg: float = 40.0,
    seed: int = 0,
) -> list[TrainView]:
    """Views on an orbit around the table (azimuths evenly spaced, shifted by azimuth_offset_deg)."""
    scene = o3d.t.geometry.RaycastingScene()
    for mesh in _meshes():
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    intr = Intrinsics.from_hfov(width, height, 60.0)
    rng = np.random.default_rng(seed)
    codes = rng.uniform(-1, 1, size=(3, len(COLORS), 3)).astype(np.float32)  # [level, instance, 3]
    views = []
    for i in range(n_views):
        azimuth = np.radians(azimuth_offset_deg + 360.0 * i / n_views)
        elevation = np.radians(elevation_deg)
        eye = radius * np.array(
            [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
        )
        pose = look_at(eye, np.array([0.0, 0.0, 0.03]))
        dirs_cam = pixel_rays(intr)  # z = 1: ray parameter t is the camera z depth
        dirs = dirs_cam @ pose[:3, :3].T
        rays = np.concatenate([np.broadcast_to(eye, dirs.shape), dirs], axis=-1).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(rays))
        depth = hit["t_hit"].numpy()
        ids = hit["geometry_ids"].numpy().astype(np.int64)
        valid = np.isfinite(depth)
        ids[~valid] = -1
        normal = hit["primitive_normals"].numpy()
        facing = np.sum(normal * dirs, axis=-1, keepdims=True) > 0
        normal = np.where(facing, -normal, normal) * valid[..., None]
        shade = 0.35 + 0.65 * np.clip(np.sum(normal * LIGHT, axis=-1, keepdims=True), 0, 1)
        rgb = np.where(valid[..., None], COLORS[np.clip(ids, 0, None)] * shade, 0.0).astype(np.float32)
        masks = np.stack([ids, ids, np.where(ids > 0, 1, ids)])  # s, m, l
        latents = np.stack(
            [np.where(valid[..., None], codes[level][np.clip(masks[level], 0, None)], 0.0) for level in range(3)]
        ).astype(np.float32)
        views.append(
            TrainView(
                rgb=rgb,
                intrinsics=intr,
                cam_to_world=pose,
                depth=np.where(valid, depth, 0.0).astype(np.float32),
                normal=normal.astype(np.float32),
                masks=masks,
                latents=latents,
            )
        )
    return views
