"""A built world: the spec, its meshes and one cached open3d ``RaycastingScene``.

Instance ids (used by the renderer, the dataset and the grasp checker):
``-1`` background (no surface), ``0`` the table, ``k`` (1..N) the object ``spec.objects[k - 1]``.
The raycasting scene's geometry ids equal these instance ids (table added first, then the objects).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from langscene_core.sim.meshes import footprint_radius, object_mesh, table_mesh
from langscene_core.sim.spec import ObjectSpec, WorldSpec

BACKGROUND_ID = -1
TABLE_ID = 0
MIN_GAP = 0.01  # metres between two objects' footprint circles


@dataclass(frozen=True, eq=False)
class World:
    """spec; meshes[i] is the legacy mesh of instance id i (table first); raycaster holds them all."""

    spec: WorldSpec
    meshes: tuple[o3d.geometry.TriangleMesh, ...]
    raycaster: o3d.t.geometry.RaycastingScene

    def instance_id(self, name: str) -> int:
        """Instance id of the object called ``name`` (ValueError listing the names if absent)."""
        return self.spec.object_index(name) + 1

    def instance_name(self, instance_id: int) -> str:
        """'table', 'background' or the object's name."""
        if instance_id == TABLE_ID:
            return "table"
        if instance_id == BACKGROUND_ID:
            return "background"
        return self.spec.objects[instance_id - 1].name


def overlapping_pair(
    objects: tuple[ObjectSpec, ...] | list[ObjectSpec], gap: float = MIN_GAP
) -> tuple[int, int] | None:
    """First pair (i, j), i < j, whose footprint circles are closer than ``gap``; None if none."""
    radii = [footprint_radius(o) for o in objects]
    for j in range(len(objects)):
        for i in range(j):
            distance = np.hypot(*(np.subtract(objects[i].position, objects[j].position)))
            if distance < radii[i] + radii[j] + gap:
                return i, j
    return None


def build_world(spec: WorldSpec) -> World:
    """Meshes and the raycasting scene of ``spec``; ValueError naming two objects that overlap."""
    pair = overlapping_pair(spec.objects)
    if pair is not None:
        i, j = pair
        raise ValueError(
            f"objects[{j}] ({spec.objects[j].name!r}) overlaps objects[{i}] ({spec.objects[i].name!r}); move them apart"
        )
    meshes = (table_mesh(spec.table),) + tuple(object_mesh(o) for o in spec.objects)
    raycaster = o3d.t.geometry.RaycastingScene()
    for expected_id, mesh in enumerate(meshes):
        geometry_id = raycaster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
        assert geometry_id == expected_id, "RaycastingScene ids are assigned in insertion order"
    return World(spec=spec, meshes=meshes, raycaster=raycaster)
