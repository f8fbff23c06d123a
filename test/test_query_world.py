"""Query + grasps on Gaussians sampled from the synthetic world's meshes, grasps checked by the world's
own checker (langscene_core.eval.grasp_check) against the true meshes."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from langscene_core.config import GraspConfig, QueryConfig
from langscene_core.eval.grasp_check import check_grasp
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.objects import query_object
from langscene_core.sim import build_world, parse_spec

SPEC = parse_spec(
    {
        "objects": [
            {"name": "orange box", "shape": "box", "color": "orange", "size": 0.07, "position": [0.10, -0.05]},
            {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.05, "position": [-0.12, 0.10]},
            {"name": "green cylinder", "shape": "cylinder", "color": "green", "size": 0.08, "position": [0.12, 0.14]},
            {"name": "red mug", "shape": "mug", "color": "red", "size": 0.09, "position": [-0.15, -0.12], "yaw": 40},
            {"name": "purple cone", "shape": "cone", "color": "purple", "size": 0.07, "position": [0.30, -0.05]},
            {"name": "white bowl", "shape": "bowl", "color": "white", "size": 0.16, "position": [-0.32, 0.05]},
        ]
    }
)
GRASP = GraspConfig()
DENSITY = 60000.0  # surface points per square metre


@pytest.fixture(scope="module")
def world_points():
    """(world, means [N, 3], normals [N, 3], instance id [N]) sampled on every visible surface."""
    world = build_world(SPEC)
    o3d.utility.random.seed(0)
    means, normals, owner = [], [], []
    for instance, mesh in enumerate(world.meshes):
        cloud = mesh.sample_points_uniformly(int(mesh.get_surface_area() * DENSITY), use_triangle_normal=True)
        points = np.asarray(cloud.points)
        # table points under an object are hidden (inside it); so is each object's bottom face
        if instance == 0:
            lifted = o3d.core.Tensor((points + [0.0, 0.0, 0.002]).astype(np.float32))
            visible = (world.raycaster.compute_occupancy(lifted).numpy() < 0.5) & (points[:, 2] > -0.001)
        else:
            visible = points[:, 2] > 0.001
        means.append(points[visible])
        normals.append(np.asarray(cloud.normals)[visible])
        owner.append(np.full(visible.sum(), instance))
    rng = np.random.default_rng(0)
    means = np.concatenate(means) + rng.normal(0.0, 0.001, (sum(len(m) for m in means), 3))
    return world, means.astype(np.float32), np.concatenate(normals).astype(np.float32), np.concatenate(owner)


@pytest.mark.parametrize(
    "name, graspable",
    [
        ("orange box", True),
        ("blue ball", True),
        ("green cylinder", True),
        ("red mug", True),
        # the cone's 21.8 deg side slope equals the friction cone (mu = 0.4): marginal, no expectation
        ("purple cone", None),
        ("white bowl", True),  # 16 cm across: pinched over its rim (query/grasp/pinch.py)
    ],
)
@pytest.mark.parametrize("given_normals", [True, False], ids=["mesh normals", "estimated normals"])
def test_grasps_pass_the_world_checker(world_points, name, graspable, given_normals):
    world, means, normals, owner = world_points
    target = world.instance_id(name)
    rng = np.random.default_rng(target)
    relevancy = np.where(owner == target, rng.uniform(0.65, 0.9, len(owner)), rng.uniform(0.2, 0.5, len(owner)))
    result = query_object(
        relevancy.astype(np.float32),
        means,
        np.full_like(means, 0.5),
        QueryConfig(),
        GRASP,
        normals if given_normals else None,
    )
    mesh = world.meshes[target]
    true_centre = (mesh.get_min_bound() + mesh.get_max_bound()) / 2
    if world.spec.objects[target - 1].yaw == 0:
        assert np.linalg.norm(result.object_box.pose[:3, 3] - true_centre) < 0.01
    if graspable is not None:
        assert (len(result.grasps) > 0) == graspable, result.message
    for grasp in result.grasps:
        check = check_grasp(world, name, grasp.pose, grasp.width, Gripper.from_config(GRASP))
        assert check.valid, check.reason
