"""Grasps on reconstruction-like Gaussians (test/reconstructed_world.py: points mm inside the true
surface, floaters, holes, noisy normals) of every world shape, checked by the world's grasp checker
against the true meshes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from reconstructed_world import reconstruct_like

from langscene_core.config import GraspConfig, QueryConfig
from langscene_core.eval.grasp_check import check_grasp
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.grasp.planner import Support, plan_grasps
from langscene_core.query.objects import query_object
from langscene_core.sim import build_world, parse_spec
from langscene_core.sim.spec import SHAPES

GRASP = GraspConfig()
# (name, shape, size m, position, yaw deg, graspable: True / False (wider than the gripper) / None
# (marginal: no expectation on the count, every grasp returned must still be valid))
OBJECTS = [
    ("box", "box", 0.06, (-0.30, -0.18), 15, True),
    ("ball", "ball", 0.06, (-0.12, -0.18), 0, True),
    ("cylinder", "cylinder", 0.08, (0.06, -0.18), 0, True),
    ("mug", "mug", 0.09, (0.26, -0.18), 30, True),
    # the cone's side slope (21.8 deg) equals the friction cone of mu = 0.4: marginal
    ("cone", "cone", 0.07, (-0.30, 0.12), 0, None),
    # a 5 cm ring lying flat: 7.5 mm tube, contacts only a few mm above the table
    ("torus", "torus", 0.05, (-0.10, 0.12), 0, None),
    ("bowl", "bowl", 0.16, (0.15, 0.12), 0, True),  # pinched over its rim (query/grasp/pinch.py)
    # 4 x 2.8 x 2.4 cm, about 90 samples: nearly all within a few mm of an edge, too few smooth contacts
    ("small box", "box", 0.04, (0.40, 0.15), 50, None),
]
SPEC = parse_spec(
    {
        "seed": 3,
        "objects": [
            {"name": n, "shape": s, "color": "red", "size": size, "position": list(p), "yaw": yaw}
            for n, s, size, p, yaw, _ in OBJECTS
        ],
    }
)


def test_the_scene_covers_every_shape():
    assert {shape for _, shape, *_ in OBJECTS} == set(SHAPES)


@pytest.fixture(scope="module")
def scene():
    world = build_world(SPEC)
    return world, reconstruct_like(world)


def _check(world, name, grasp):
    return check_grasp(world, name, grasp.pose, grasp.width, Gripper.from_config(GRASP))


@pytest.mark.parametrize("given_normals", [True, False], ids=["gaussian normals", "estimated normals"])
@pytest.mark.parametrize("name, graspable", [(o[0], o[5]) for o in OBJECTS])
def test_every_grasp_on_a_reconstruction_passes_the_world_checker(scene, name, graspable, given_normals, request):
    if name == "cone" and given_normals:
        # Graded with the planner's own friction cone (21.8 deg, + 5.6 deg for the mesh facets; the checker
        # used 30 deg before): one of the 4 grasps closes on the flank 28.0 deg off its true normal, the
        # reconstructed normals it planned with being ~6 deg off. Strict: a planner that keeps a margin for
        # normal noise makes this pass, and then the mark must go.
        request.applymarker(pytest.mark.xfail(strict=True, reason="a cone-flank grasp 28 deg off the true normal"))
    world, points = scene
    target = world.instance_id(name)
    rng = np.random.default_rng(target)
    on = points.owner == target
    relevancy = np.where(on, rng.uniform(0.65, 0.9, len(on)), rng.uniform(0.2, 0.5, len(on))).astype(np.float32)
    result = query_object(
        relevancy,
        points.means,
        np.full_like(points.means, 0.5),
        QueryConfig(),
        GRASP,
        points.normals if given_normals else None,
    )
    assert result.object_box is not None, result.message
    checks = [_check(world, name, g) for g in result.grasps]
    assert [c.reason for c in checks if not c.valid] == [], f"{name}: {len(checks)} grasps"
    if graspable is not None:
        assert (len(result.grasps) > 0) == graspable, result.message


def test_the_support_plane_stops_fingers_where_the_table_has_no_points(scene):
    """With the table's points left out, only the support half-space keeps the fingers off it."""
    world, points = scene
    target = world.instance_id("box")
    on = points.owner == target
    up = np.array([0.0, 0.0, 1.0])
    no_table = (points.owner != target) & (points.owner != 0)
    config = dataclasses.replace(GRASP, max_grasps=20)
    unsupported = plan_grasps(
        points.means[on], np.ones(on.sum()), points.means[no_table], config, up, points.normals[on]
    )
    assert unsupported and not all(_check(world, "box", g).valid for g in unsupported)
    supported = plan_grasps(
        points.means[on],
        np.ones(on.sum()),
        points.means[no_table],
        config,
        up,
        points.normals[on],
        support=Support(normal=up, offset=0.0),
    )
    assert supported and all(_check(world, "box", g).valid for g in supported)
