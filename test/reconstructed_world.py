"""Gaussian centres as a reconstruction gives them, sampled from the synthetic world's true meshes.

Measured on the demo scene (config/demo_scene.json, 20k Gaussians, `make demo`) against the true
meshes of its box, ball and cylinder: Gaussians sit a median 2.4-5.4 mm inside the true surface, 5 %
of them 8-12 mm inside, at most 1-3 mm outside; about 200-300 of them per 6-8 cm object; their
normals are a median 3-9 degrees off (90th percentile 12-20). The imitation here: uniform surface
samples at a reconstruction's density, moved along the true normal by an inward-biased offset, some
deep inside, a few up to 3 mm outside, jittered, with holes and noisy sign-ambiguous normals; hidden
surfaces (object bottoms, the table under objects) are left out as a capture from above never sees
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from langscene_core.sim import World


@dataclass(frozen=True)
class ReconstructionNoise:
    """Lengths in metres. offset_mean < 0: points inside the true surface."""

    density: float = 25000.0  # surface samples per square metre (the demo: ~18k on a ball)
    offset_mean: float = -0.003  # along the true outward normal
    offset_std: float = 0.002
    tangential_std: float = 0.001
    deep_fraction: float = 0.05  # samples 6-15 mm inside instead
    outside_fraction: float = 0.03  # samples 1-3 mm outside instead
    normal_noise: float = 0.12  # per-component Gaussian noise on the unit normal (~7 degrees)
    holes_per_square_metre: float = 150.0  # missing discs (the demo ball: about 2)
    hole_radius: float = 0.008


@dataclass(frozen=True)
class ReconstructedPoints:
    """means: [N, 3] float32 world frame; normals: [N, 3] float32 unit, random sign; owner: [N] int
    instance id (0 the table, k the object ``spec.objects[k - 1]``); outward: [N, 3] float32, the true
    outward normal of the surface each sample was drawn from (what a sign should agree with)."""

    means: np.ndarray
    normals: np.ndarray
    owner: np.ndarray
    outward: np.ndarray


def _visible(world: World, instance: int, points: np.ndarray) -> np.ndarray:
    """[K] bool: not an object's bottom face, nor table under an object."""
    if instance != 0:
        return points[:, 2] > 0.001
    lifted = o3d.core.Tensor((points + [0.0, 0.0, 0.002]).astype(np.float32))
    return (world.raycaster.compute_occupancy(lifted).numpy() < 0.5) & (points[:, 2] > -0.001)


def reconstruct_like(
    world: World, noise: ReconstructionNoise = ReconstructionNoise(), seed: int = 0
) -> ReconstructedPoints:
    """Noisy partial surface samples of every mesh of ``world`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    o3d.utility.random.seed(seed)
    means, normals, owner, outward = [], [], [], []
    for instance, mesh in enumerate(world.meshes):
        area = mesh.get_surface_area()
        cloud = mesh.sample_points_uniformly(max(int(area * noise.density), 10), use_triangle_normal=True)
        points, true_normals = np.asarray(cloud.points), np.asarray(cloud.normals)
        keep = _visible(world, instance, points)
        for centre in points[rng.choice(len(points), rng.poisson(area * noise.holes_per_square_metre))]:
            keep &= np.linalg.norm(points - centre, axis=1) > noise.hole_radius
        points, true_normals = points[keep], true_normals[keep]
        offset = rng.normal(noise.offset_mean, noise.offset_std, len(points))
        kind = rng.random(len(points))
        deep, outside = kind < noise.deep_fraction, kind > 1.0 - noise.outside_fraction
        offset[deep] = rng.uniform(-0.015, -0.006, deep.sum())
        offset[outside] = rng.uniform(0.001, 0.003, outside.sum())
        offset = np.minimum(offset, 0.003)
        jitter = rng.normal(0.0, noise.tangential_std, points.shape)
        jitter -= np.einsum("ij,ij->i", jitter, true_normals)[:, None] * true_normals
        noisy = true_normals + rng.normal(0.0, noise.normal_noise, true_normals.shape)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        means.append(points + offset[:, None] * true_normals + jitter)
        normals.append(noisy * rng.choice([-1.0, 1.0], (len(points), 1)))
        owner.append(np.full(len(points), instance))
        outward.append(true_normals)
    return ReconstructedPoints(
        means=np.concatenate(means).astype(np.float32),
        normals=np.concatenate(normals).astype(np.float32),
        owner=np.concatenate(owner),
        outward=np.concatenate(outward).astype(np.float32),
    )
