"""Synthetic tabletop point clouds with exact geometry, for the query and grasp tests and bench.

Frame: scene frame, z up, the table top is the plane z = 0. Objects rest on it. Points are surface
samples (like Gaussian centres) with outward normals; signed distances give the analytic truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Box:
    """Cuboid resting on the table: centre (x, y) on the table, yaw (rad), full size (sx, sy, sz)."""

    xy: tuple[float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.xy[0], self.xy[1], self.size[2] / 2])

    def to_local(self, p: np.ndarray) -> np.ndarray:
        return (p - self.centre) @ _yaw_matrix(self.yaw)

    def sdf(self, p: np.ndarray) -> np.ndarray:
        q = np.abs(self.to_local(p)) - np.asarray(self.size) / 2
        return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(axis=-1), 0)

    def surface_normals(self, point: np.ndarray, tol: float) -> np.ndarray:
        """[k, 3] outward normals of the faces within ``tol`` of a surface point [3] (k = 2 or 3 at
        edges and corners, whose friction cone spans their faces' cones)."""
        local = self.to_local(point[None])[0]
        near = np.abs(np.abs(local) - np.asarray(self.size) / 2) <= tol
        return (np.eye(3)[near] * np.sign(local[near])[:, None]) @ _yaw_matrix(self.yaw).T

    def sample(self, density: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Points and outward normals on the five faces above the table (not the bottom)."""
        sx, sy, sz = self.size
        faces = [  # (axis, sign, area)
            (0, 1, sy * sz),
            (0, -1, sy * sz),
            (1, 1, sx * sz),
            (1, -1, sx * sz),
            (2, 1, sx * sy),
        ]
        pts, nrm = [], []
        for axis, sign, area in faces:
            n = max(int(area * density), 1)
            local = (rng.uniform(-0.5, 0.5, (n, 3))) * np.asarray(self.size)
            local[:, axis] = sign * self.size[axis] / 2
            normal = np.zeros((n, 3))
            normal[:, axis] = sign
            pts.append(local)
            nrm.append(normal)
        rot = _yaw_matrix(self.yaw)
        return np.concatenate(pts) @ rot.T + self.centre, np.concatenate(nrm) @ rot.T


@dataclass(frozen=True)
class Cylinder:
    """Upright cylinder resting on the table: axis at (x, y), radius, height."""

    xy: tuple[float, float]
    radius: float
    height: float

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.xy[0], self.xy[1], self.height / 2])

    def sdf(self, p: np.ndarray) -> np.ndarray:
        d = p - self.centre
        q = np.stack([np.linalg.norm(d[:, :2], axis=1) - self.radius, np.abs(d[:, 2]) - self.height / 2], -1)
        return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(axis=-1), 0)

    def surface_normals(self, point: np.ndarray, tol: float) -> np.ndarray:
        """[k, 3] outward normals of the side and/or top within ``tol`` of a surface point [3]."""
        d = point - self.centre
        radial = np.linalg.norm(d[:2])
        normals = []
        if abs(radial - self.radius) <= tol:
            normals.append(np.array([d[0] / radial, d[1] / radial, 0.0]))
        if abs(abs(d[2]) - self.height / 2) <= tol:
            normals.append(np.array([0.0, 0.0, np.sign(d[2])]))
        return np.array(normals).reshape(-1, 3)

    def sample(self, density: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n_side = int(2 * np.pi * self.radius * self.height * density)
        n_top = int(np.pi * self.radius**2 * density)
        theta = rng.uniform(0, 2 * np.pi, n_side)
        ring = np.stack([np.cos(theta), np.sin(theta), np.zeros(n_side)], 1)
        side = ring * self.radius + np.stack(
            [np.zeros(n_side), np.zeros(n_side), rng.uniform(-self.height / 2, self.height / 2, n_side)], 1
        )
        r = self.radius * np.sqrt(rng.uniform(0, 1, n_top))
        phi = rng.uniform(0, 2 * np.pi, n_top)
        top = np.stack([r * np.cos(phi), r * np.sin(phi), np.full(n_top, self.height / 2)], 1)
        normals = np.concatenate([ring, np.tile([0.0, 0.0, 1.0], (n_top, 1))])
        return np.concatenate([side, top]) + self.centre, normals


@dataclass(frozen=True)
class Scene:
    """A sampled tabletop: per point position, outward normal, colour, relevancy, owner.

    owner: -1 for the table, else the index into ``objects``.
    """

    objects: tuple
    means: np.ndarray  # [N, 3] float32
    normals: np.ndarray  # [N, 3] float32
    colors: np.ndarray  # [N, 3] float32 in 0..1
    relevancy: np.ndarray  # [N] float32
    owner: np.ndarray  # [N] int


def make_scene(
    objects: tuple,
    target: int | None,
    density: float = 40000.0,
    table_density: float = 20000.0,
    table_size: tuple[float, float] = (1.0, 0.7),
    noise: float = 0.001,
    seed: int = 0,
) -> Scene:
    """Sample the table (z = 0, minus the objects' footprints) and every object's surface.

    density: points per square metre on objects. Relevancy: U(0.65, 0.9) on the target object,
    U(0.3, 0.5) on other objects, U(0.2, 0.45) on the table; no target -> everything below 0.5.
    """
    rng = np.random.default_rng(seed)
    n_table = int(table_size[0] * table_size[1] * table_density)
    table = np.stack(
        [
            rng.uniform(-table_size[0] / 2, table_size[0] / 2, n_table),
            rng.uniform(-table_size[1] / 2, table_size[1] / 2, n_table),
            np.zeros(n_table),
        ],
        1,
    )
    for obj in objects:
        table = table[obj.sdf(table + [0.0, 0.0, 1e-4]) > 0]
    parts = [(table, np.tile([0.0, 0.0, 1.0], (len(table), 1)), -1)]
    for i, obj in enumerate(objects):
        pts, nrm = obj.sample(density, rng)
        parts.append((pts, nrm, i))
    means = np.concatenate([p for p, _, _ in parts])
    normals = np.concatenate([n for _, n, _ in parts])
    owner = np.concatenate([np.full(len(p), o) for p, _, o in parts])
    means = means + rng.normal(0, noise, means.shape)
    relevancy = np.where(owner == -1, rng.uniform(0.2, 0.45, len(owner)), rng.uniform(0.3, 0.5, len(owner)))
    if target is not None:
        hit = owner == target
        relevancy[hit] = rng.uniform(0.65, 0.9, hit.sum())
    palette = rng.uniform(0, 1, (len(objects) + 1, 3))
    colors = palette[owner + 1]
    return Scene(
        objects=tuple(objects),
        means=means.astype(np.float32),
        normals=normals.astype(np.float32),
        colors=colors.astype(np.float32),
        relevancy=relevancy.astype(np.float32),
        owner=owner,
    )


def _box_grid(lo: np.ndarray, hi: np.ndarray, step: float = 0.002) -> np.ndarray:
    """[K, 3] grid points filling the axis-aligned box lo..hi (gripper frame)."""
    axes = [np.linspace(a, b, max(int(np.ceil((b - a) / step)) + 1, 2)) for a, b in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def gripper_volume(width: float, config) -> np.ndarray:
    """[K, 3] points filling both fingers and the palm (gripper frame, fingertips at z = 0), opened to
    ``width``, swept back along the approach by ``config.approach_distance``."""
    half_open = width / 2
    t, fd, pd = config.finger_thickness, config.finger_depth, config.palm_depth
    hy = config.finger_width / 2
    back = -(fd + pd + config.approach_distance)
    parts = [
        _box_grid(np.array([half_open, -hy, back]), np.array([half_open + t, hy, 0.0])),
        _box_grid(np.array([-half_open - t, -hy, back]), np.array([-half_open, hy, 0.0])),
        _box_grid(np.array([-half_open - t, -hy, back]), np.array([half_open + t, hy, -fd])),
    ]
    return np.concatenate(parts)


def grasp_violations(
    grasp,
    objects: tuple,
    target: int,
    config,
    surface_tol: float = 0.004,
    angle_tol_deg: float = 5.0,
    penetration_tol: float = 0.001,
) -> list[str]:
    """Analytic check of one grasp against the true geometry; returns the problems (empty = valid).

    Checks: a proper rotation; both contacts on the target's surface, the first on the -x side and the
    second on the +x side, inside the open fingers' pads (|y| <= finger_width / 2, z from -finger_depth
    to 0 behind the fingertips, |x| < width / 2); width within the gripper's opening; the closing axis
    inside both true friction cones; the fingers and palm (swept along the approach) clear of the table,
    the other objects and the target.
    """
    problems = []
    pose = grasp.pose
    rot = pose[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0.999:
        problems.append("pose rotation is not a proper rotation")
    obj = objects[target]
    c = np.asarray(grasp.contacts, dtype=np.float64)
    dist = np.abs(obj.sdf(c))
    if (dist > surface_tol).any():
        problems.append(f"contacts {dist} m from the target surface")
    if not 0 < grasp.width <= config.gripper_max_width + 1e-9:
        problems.append(f"width {grasp.width} is outside the gripper opening")
    local = (c - pose[:3, 3]) @ rot
    if not (local[0, 0] < 0 < local[1, 0]) or (np.abs(local[:, 0]) >= grasp.width / 2).any():
        problems.append(f"contacts are not between the open fingers, -x then +x: x = {local[:, 0]}")
    if (
        (np.abs(local[:, 1]) > config.finger_width / 2 + 1e-9).any()
        or (local[:, 2] > 1e-9).any()
        or (local[:, 2] < -config.finger_depth - 1e-9).any()
    ):
        problems.append(f"contacts are not on the finger pads: y = {local[:, 1]}, z = {local[:, 2]}")
    cone = np.degrees(np.arctan(config.friction_coefficient)) + angle_tol_deg
    for contact, push in ((c[0], rot[:, 0]), (c[1], -rot[:, 0])):  # direction each finger pushes
        normals = obj.surface_normals(contact, surface_tol)
        angles = np.degrees(np.arccos(np.clip(normals @ -push, -1, 1)))
        if len(angles) == 0 or angles.min() > cone:
            problems.append(f"closing line outside the friction cone at {contact}: {angles} deg")
    volume = gripper_volume(grasp.width, config) @ rot.T + pose[:3, 3]
    if (volume[:, 2] < -penetration_tol).any():
        problems.append("gripper hits the table")
    for i, other in enumerate(objects):
        if (other.sdf(volume) < -penetration_tol).any():
            problems.append(f"gripper hits object {i}" + (" (the target)" if i == target else ""))
    return problems
