"""Parallel-jaw grasps on synthetic tabletop objects, checked against their exact geometry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tabletop import Box, Cylinder, grasp_violations, make_scene

from langscene_core.config import GraspConfig
from langscene_core.query.grasp.planner import plan_grasps

UP = np.array([0.0, 0.0, 1.0])
CONFIG = GraspConfig()


def _plan(scene, target, with_normals, config=CONFIG):
    on = scene.owner == target
    return plan_grasps(
        scene.means[on],
        scene.relevancy[on],
        scene.means[~on],
        config,
        UP,
        object_normals=scene.normals[on] if with_normals else None,
    )


SCENES = {
    "yawed box": ((Box((0.0, 0.0), (0.05, 0.07, 0.06), yaw=0.4), Cylinder((0.15, 0.05), 0.03, 0.1)), 0),
    "cylinder": ((Box((0.0, 0.0), (0.05, 0.07, 0.06), yaw=0.4), Cylinder((0.15, 0.05), 0.025, 0.08)), 1),
    # a tall box 1.5 cm beside the target: fingers closing across the gap would hit it
    "box beside a wall": ((Box((0.0, 0.0), (0.04, 0.06, 0.05)), Box((0.045, 0.0), (0.02, 0.2, 0.15))), 0),
}


@pytest.mark.parametrize("with_normals", [True, False], ids=["given normals", "estimated normals"])
@pytest.mark.parametrize("name", list(SCENES))
def test_every_grasp_passes_the_analytic_check(name, with_normals):
    objects, target = SCENES[name]
    scene = make_scene(objects, target, density=60000.0, table_density=30000.0)
    grasps = _plan(scene, target, with_normals)
    assert len(grasps) >= 1, f"{name}: no grasp found on a graspable object"
    for grasp in grasps:
        assert grasp_violations(grasp, objects, target, CONFIG) == []
    scores = [g.score for g in grasps]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)


def test_box_beside_a_wall_is_grasped_across_its_free_axis():
    objects, target = SCENES["box beside a wall"]
    scene = make_scene(objects, target, density=60000.0, table_density=30000.0)
    grasps = _plan(scene, target, True)
    assert grasps
    # closing along x would put a finger into the 1.5 cm gap next to the wall (finger 1 cm + clearance)
    assert all(abs(g.pose[0, 0]) < 0.3 for g in grasps), [g.pose[:3, 0] for g in grasps]


def test_best_grasp_of_a_short_box_is_top_down():
    objects = (Box((0.0, 0.0), (0.05, 0.07, 0.04), yaw=0.3),)
    scene = make_scene(objects, 0, density=60000.0, table_density=30000.0)
    grasps = _plan(scene, 0, True)
    assert grasps and grasps[0].pose[:3, 2] @ -UP > np.cos(np.radians(10))


@pytest.mark.parametrize(
    "wide", [Box((0.0, 0.0), (0.11, 0.12, 0.05), yaw=0.2), Cylinder((0.0, 0.0), 0.06, 0.1)], ids=["box", "cylinder"]
)
def test_no_grasp_for_an_object_wider_than_the_gripper(wide):
    scene = make_scene((wide,), 0, density=60000.0, table_density=30000.0)
    assert _plan(scene, 0, True) == ()
    assert _plan(scene, 0, False) == ()
    # the same object fits a gripper that opens wide enough
    wide_gripper = dataclasses.replace(
        CONFIG, gripper_max_width=0.16, finger_depth=0.06, contact_depths=(0.04, 0.02, 0.005)
    )
    grasps = _plan(scene, 0, True, wide_gripper)
    assert grasps and all(grasp_violations(g, (wide,), 0, wide_gripper) == [] for g in grasps)


def test_flat_object_is_not_grasped_through_the_table():
    # 8 mm tall: contacts are at most 8 mm above the table, fingers (2 cm wide) would hit it from the
    # side and fingertips would reach into it from above. Its faces are all within one normal patch
    # of an edge, so the smoothness filter is off here: only the table may reject these contacts.
    flat = Box((0.0, 0.0), (0.04, 0.05, 0.008))
    config = dataclasses.replace(CONFIG, min_normal_consistency=0.0)
    scene = make_scene((flat,), 0, density=60000.0, table_density=30000.0)
    assert _plan(scene, 0, True, config) == ()
    on = scene.owner == 0
    assert plan_grasps(
        scene.means[on], scene.relevancy[on], np.zeros((0, 3)), config, UP, object_normals=scene.normals[on]
    )


@pytest.mark.parametrize("with_normals", [True, False], ids=["given normals", "estimated normals"])
@pytest.mark.parametrize("name", ["yawed box", "box beside a wall"])
def test_contacts_keep_off_edges_where_normals_blend(name, with_normals):
    objects, target = SCENES[name]
    scene = make_scene(objects, target, density=60000.0, table_density=30000.0)
    box = objects[target]
    grasps = _plan(scene, target, with_normals)
    assert grasps
    off_edges = []
    for grasp in grasps:
        local = np.abs(box.to_local(grasp.contacts)) - np.asarray(box.size) / 2
        gap_to_edge = -np.sort(local, axis=1)[:, 1]  # distance to the nearest edge of the contact's face
        # smooth samples' normal patch (smooth_radius) barely reaches over an edge: half a radius away
        off_edges.append(bool((gap_to_edge > CONFIG.smooth_radius / 2).all()))
    # A pad that meets a face at a slant (diagonal approaches) can touch its smooth part only near a
    # corner: the best grasp and most others keep off the edges
    assert off_edges[0] and np.mean(off_edges) >= 0.8, off_edges


def test_normal_signs_are_ignored_and_results_are_deterministic():
    objects, target = SCENES["yawed box"]
    scene = make_scene(objects, target, density=60000.0, table_density=30000.0)
    on = scene.owner == target
    flip = np.where(np.arange(on.sum()) % 2 == 0, 1.0, -1.0)[:, None]
    a = plan_grasps(scene.means[on], scene.relevancy[on], scene.means[~on], CONFIG, UP, scene.normals[on])
    b = plan_grasps(scene.means[on], scene.relevancy[on], scene.means[~on], CONFIG, UP, scene.normals[on] * flip)
    assert len(a) == len(b) > 0
    for ga, gb in zip(a, b):
        np.testing.assert_allclose(ga.pose, gb.pose, atol=1e-9)


def test_max_grasps_limits_the_count():
    objects, target = SCENES["yawed box"]
    scene = make_scene(objects, target, density=60000.0, table_density=30000.0)
    on = scene.owner == target
    grasps = plan_grasps(scene.means[on], scene.relevancy[on], scene.means[~on], CONFIG, UP, max_grasps=2)
    assert len(grasps) == 2


@pytest.mark.parametrize(
    "change, word",
    [
        ({"contact_depths": (0.03,)}, "contact_depths"),
        ({"gripper_max_width": 0.008}, "width_clearance"),
        ({"friction_coefficient": 0.0}, "grasp.friction_coefficient"),
        ({"palm_depth": 0.0}, "grasp.palm_depth"),
        ({"approach_distance": -0.01}, "grasp.approach_distance"),
        ({"max_approach_angle_deg": 120.0}, "max_approach_angle_deg"),
    ],
)
def test_bad_gripper_settings_are_named(change, word):
    with pytest.raises(ValueError, match=word):
        plan_grasps(np.zeros((3, 3)), np.zeros(3), np.zeros((0, 3)), dataclasses.replace(CONFIG, **change), UP)


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="object_relevancy"):
        plan_grasps(np.zeros((3, 3)), np.zeros(2), np.zeros((0, 3)), CONFIG, UP)
    with pytest.raises(ValueError, match="up"):
        plan_grasps(np.zeros((3, 3)), np.zeros(3), np.zeros((0, 3)), CONFIG, np.zeros(3))


def _frustum(
    tilt_deg: float, bottom_radius: float = 0.03, height: float = 0.06, density: float = 60000.0
) -> tuple[np.ndarray, np.ndarray]:
    """Side and top of a truncated cone standing on z = 0 whose side is tilted ``tilt_deg`` from vertical:
    (points [M, 3], outward unit normals [M, 3]), sampled uniformly."""
    rng = np.random.default_rng(0)
    tilt = np.radians(tilt_deg)
    top_radius = bottom_radius - height * np.tan(tilt)
    side_area = np.pi * (bottom_radius + top_radius) * height / np.cos(tilt)
    z = height * rng.uniform(0.0, 1.0, int(side_area * density))
    theta = rng.uniform(0.0, 2 * np.pi, len(z))
    radius = bottom_radius - z * np.tan(tilt)
    side = np.stack([radius * np.cos(theta), radius * np.sin(theta), z], axis=1)
    side_normals = np.stack(
        [np.cos(tilt) * np.cos(theta), np.cos(tilt) * np.sin(theta), np.full_like(z, np.sin(tilt))], 1
    )
    count = int(np.pi * top_radius**2 * density)
    r, phi = top_radius * np.sqrt(rng.uniform(0.0, 1.0, count)), rng.uniform(0.0, 2 * np.pi, count)
    top = np.stack([r * np.cos(phi), r * np.sin(phi), np.full(count, height)], axis=1)
    return np.concatenate([side, top]), np.concatenate([side_normals, np.tile(UP, (count, 1))])


def _table_around(radius: float, step: float = 0.006) -> np.ndarray:
    grid = np.arange(-radius, radius + step / 2, step)
    xs, ys = np.meshgrid(grid, grid)
    return np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)


@pytest.mark.parametrize("with_normals", [True, False], ids=["given normals", "estimated normals"])
def test_a_tapered_object_is_grasped_level_with_the_table(with_normals):
    """A frustum tilted 15 deg, with mu = 0.4 (a 21.8 deg friction cone): closing along a contact's normal
    meets the far side 30 deg off its normal, so only closing level with the table (15 deg off) grasps it."""
    points, normals = _frustum(15.0)
    grasps = plan_grasps(
        points,
        np.full(len(points), 0.8),
        _table_around(0.15),
        CONFIG,
        UP,
        object_normals=normals if with_normals else None,
    )
    assert grasps
    cone = np.arctan(CONFIG.friction_coefficient)
    for grasp in grasps:
        closing = grasp.pose[:3, 0]
        assert abs(closing @ UP) < np.sin(np.radians(5.0)), closing
        # both true contact normals (the side's, at the contacts' azimuths) inside the friction cone
        for contact, sign in zip(grasp.contacts, (1.0, -1.0)):
            azimuth = np.arctan2(contact[1], contact[0])
            normal = np.array(
                [
                    np.cos(np.radians(15.0)) * np.cos(azimuth),
                    np.cos(np.radians(15.0)) * np.sin(azimuth),
                    np.sin(np.radians(15.0)),
                ]
            )
            assert np.arccos(np.clip(normal @ (-sign * closing), -1, 1)) <= cone + np.radians(8.0)


def test_a_frustum_tilted_beyond_the_friction_cone_gets_no_grasp():
    points, normals = _frustum(30.0, bottom_radius=0.035, height=0.05)
    assert plan_grasps(points, np.full(len(points), 0.8), _table_around(0.15), CONFIG, UP, object_normals=normals) == ()
