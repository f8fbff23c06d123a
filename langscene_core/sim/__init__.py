"""Synthetic tabletop world (DESIGN.md section 5): scene specs, meshes, ray-cast renderer, datasets.

Typical use::

    spec = load_spec("scene.json")            # or random_spec(seed=3, count=5)
    world = build_world(spec)                 # meshes + cached open3d RaycastingScene
    dataset = render_dataset(world)           # capture + eval frames, LERF-OVS labels
    write_dataset(dataset, "out/", with_contact_sheet=True);  load_dataset("out/")
    frames = render(world, intrinsics, poses) # any poses [V, 4, 4]

Instance ids: -1 background, 0 table, k = spec.objects[k - 1]. World frame: z up, table top z = 0.
"""

from langscene_core.sim.dataset import Dataset, load_dataset, render_dataset, write_dataset
from langscene_core.sim.generate import random_spec
from langscene_core.sim.render import RenderedFrame, intrinsics_of, render
from langscene_core.sim.scene import BACKGROUND_ID, TABLE_ID, World, build_world
from langscene_core.sim.spec import (
    COLORS,
    SHAPES,
    TRAJECTORIES,
    CameraSpec,
    ObjectSpec,
    SpecError,
    TableSpec,
    WorldSpec,
    load_spec,
    parse_spec,
    spec_to_dict,
)
from langscene_core.sim.trajectory import capture_poses, eval_poses

__all__ = [
    "BACKGROUND_ID",
    "COLORS",
    "CameraSpec",
    "Dataset",
    "ObjectSpec",
    "RenderedFrame",
    "SHAPES",
    "SpecError",
    "TABLE_ID",
    "TRAJECTORIES",
    "TableSpec",
    "World",
    "WorldSpec",
    "build_world",
    "capture_poses",
    "eval_poses",
    "intrinsics_of",
    "load_dataset",
    "load_spec",
    "parse_spec",
    "random_spec",
    "render",
    "render_dataset",
    "spec_to_dict",
    "write_dataset",
]
