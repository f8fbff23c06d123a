"""Triangle meshes of the world: the table and one closed mesh per object shape.

World frame: z up, table top at z = 0. Every object mesh stands on the table (min z = 0), its largest
axis-aligned dimension equals ``ObjectSpec.size`` (measured before the yaw), its footprint bounding box
is centred on ``ObjectSpec.position`` and it is turned by ``yaw`` degrees about world z.

open3d builds box, ball, cylinder, cone and torus. Mug and bowl are surfaces of revolution with a wall
thickness; open3d has no lathe primitive, so :func:`_lathe` revolves a closed (r, z) profile itself.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from langscene_core.sim.spec import ObjectSpec, TableSpec

TABLE_THICKNESS = 0.03  # metres; the table is a box with its top face at z = 0

_RESOLUTION = 32  # segments around every round shape


def _lathe(profile_rz: np.ndarray, segments: int = _RESOLUTION) -> o3d.geometry.TriangleMesh:
    """Revolve a closed profile polygon about the z axis.

    profile_rz: [P, 2] (radius >= 0, height) vertices of a closed polygon traversed so that the solid
    lies on its left (counter-clockwise in the (r, z) half plane). Vertices with radius 0 sit on the
    axis and collapse to one point. Returns a closed mesh with outward-facing triangles.
    """
    angles = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    r, z = profile_rz[:, 0], profile_rz[:, 1]
    vertices = np.stack(
        [r[:, None] * np.cos(angles), r[:, None] * np.sin(angles), np.broadcast_to(z[:, None], (len(r), segments))],
        axis=-1,
    ).reshape(-1, 3)
    p = np.arange(len(r))[:, None]
    s = np.arange(segments)[None, :]
    a, b = p * segments + s, p * segments + (s + 1) % segments  # profile vertex p, angles s and s + 1
    c, d = ((p + 1) % len(r)) * segments + s, ((p + 1) % len(r)) * segments + (s + 1) % segments
    triangles = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(triangles.astype(np.int32))
    )
    mesh.merge_close_vertices(1e-9)
    mesh.remove_degenerate_triangles()
    mesh.remove_unreferenced_vertices()
    return _orient_outward(mesh)


def _orient_outward(mesh: o3d.geometry.TriangleMesh) -> o3d.geometry.TriangleMesh:
    """Flip every triangle when the signed volume is negative (winding consistent but inward)."""
    v = np.asarray(mesh.vertices)
    t = np.asarray(mesh.triangles)
    signed_volume = np.einsum("ij,ij->i", v[t[:, 0]], np.cross(v[t[:, 1]], v[t[:, 2]])).sum() / 6.0
    if signed_volume < 0:
        mesh.triangles = o3d.utility.Vector3iVector(t[:, ::-1].copy())
    return mesh


def _mug() -> o3d.geometry.TriangleMesh:
    """Cup of radius 0.4, height 1, wall 0.06, with a vertical ring handle on the +x side."""
    radius, height, wall = 0.4, 1.0, 0.06
    body = _lathe(
        np.array(
            [[0.0, 0.0], [radius, 0.0], [radius, height], [radius - wall, height], [radius - wall, wall], [0.0, wall]]
        )
    )
    handle = o3d.geometry.TriangleMesh.create_torus(
        torus_radius=0.2, tube_radius=0.04, radial_resolution=_RESOLUTION, tubular_resolution=12
    )
    handle.rotate(o3d.geometry.get_rotation_matrix_from_xyz((np.pi / 2, 0.0, 0.0)), center=(0, 0, 0))
    # the ring's inner side runs inside the wall (x in 0.345..0.425), so the mug is one piece
    handle.translate((radius + 0.185, 0.0, 0.5 * height))
    return body + handle


def _bowl() -> o3d.geometry.TriangleMesh:
    """Spherical-cap bowl: sphere radius 1, wall 0.08, flat foot, rim 80 degrees up the sphere."""
    outer, wall = 1.0, 0.08
    foot, rim = np.radians(20.0), np.radians(80.0)
    phi = np.linspace(foot, rim, 12)
    outer_arc = np.stack([outer * np.sin(phi), outer - outer * np.cos(phi)], -1)
    inner = outer - wall
    phi_in = np.linspace(rim, 0.0, 12)[:-1]
    inner_arc = np.stack([inner * np.sin(phi_in), outer - inner * np.cos(phi_in)], -1)
    profile = np.concatenate([[[0.0, 0.0], [outer * np.sin(foot), 0.0]], outer_arc, inner_arc, [[0.0, wall]]])
    return _lathe(profile)


def _unit_mesh(shape: str) -> o3d.geometry.TriangleMesh:
    """Shape at an arbitrary scale, standing upright; placement happens in :func:`object_mesh`."""
    create = o3d.geometry.TriangleMesh
    if shape == "box":
        return create.create_box(1.0, 0.7, 0.6)
    if shape == "ball":
        return create.create_sphere(radius=0.5, resolution=_RESOLUTION // 2)
    if shape == "cylinder":
        return create.create_cylinder(radius=0.3, height=1.0, resolution=_RESOLUTION)
    if shape == "cone":
        return create.create_cone(radius=0.4, height=1.0, resolution=_RESOLUTION)
    if shape == "torus":  # lying flat on the table
        return create.create_torus(
            torus_radius=0.35, tube_radius=0.15, radial_resolution=_RESOLUTION, tubular_resolution=12
        )
    if shape == "mug":
        return _mug()
    if shape == "bowl":
        return _bowl()
    raise ValueError(f"unknown shape {shape!r}")


def _yaw_matrix(yaw_deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def object_mesh(obj: ObjectSpec) -> o3d.geometry.TriangleMesh:
    """Closed triangle mesh of ``obj`` in the world frame (see the module docstring for placement)."""
    mesh = _unit_mesh(obj.shape)
    lo, hi = mesh.get_min_bound(), mesh.get_max_bound()
    mesh.translate(-np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]]))
    mesh.scale(obj.size / float(np.max(hi - lo)), center=(0.0, 0.0, 0.0))
    mesh.rotate(_yaw_matrix(obj.yaw), center=(0.0, 0.0, 0.0))
    mesh.translate((obj.position[0], obj.position[1], 0.0))
    mesh.compute_triangle_normals()
    return mesh


def table_mesh(table: TableSpec) -> o3d.geometry.TriangleMesh:
    """Table slab: ``table.size`` in x, y centred at the origin, top face at z = 0."""
    width, depth = table.size
    mesh = o3d.geometry.TriangleMesh.create_box(width, depth, TABLE_THICKNESS)
    mesh.translate((-width / 2, -depth / 2, -TABLE_THICKNESS))
    mesh.compute_triangle_normals()
    return mesh


def footprint_radius(obj: ObjectSpec) -> float:
    """Radius of the smallest circle around ``position`` that holds the object's footprint, metres."""
    xy = np.asarray(object_mesh(obj).vertices)[:, :2] - np.asarray(obj.position)
    return float(np.max(np.linalg.norm(xy, axis=1)))
