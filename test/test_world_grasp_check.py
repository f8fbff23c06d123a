"""Grasp checker against the true geometry: accepts a hand-built good grasp, rejects bad ones, with the
planner's gripper model and its friction cone."""

import dataclasses
import math

import numpy as np
import pytest

from langscene_core.config import GraspConfig
from langscene_core.eval.grasp_check import _segments_hit_box, check_grasp
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.sim import build_world, parse_spec

SPEC = parse_spec(
    {
        "objects": [
            # box 0.10 (x) x 0.07 (y) x 0.06 (z), top at z = 0.06
            {"name": "orange box", "shape": "box", "color": "orange", "size": 0.10, "position": [0.10, -0.05]},
            {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.06, "position": [-0.15, 0.10]},
            {"name": "red mug", "shape": "mug", "color": "red", "size": 0.10, "position": [-0.15, -0.12]},
            # cone radius 0.04, tip at z = 0.10
            {"name": "purple cone", "shape": "cone", "color": "purple", "size": 0.10, "position": [0.15, 0.15]},
        ]
    }
)
DOWN, UP = np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
X, Y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
GRIPPER = Gripper.from_config(GraspConfig())  # 8 cm opening, 3 cm fingers, mu 0.4


def gripper_pose(origin, approach, closing):
    """Gripper-to-world [4, 4]: z = approach, x = closing, origin between the fingertips."""
    z = np.asarray(approach, float) / np.linalg.norm(approach)
    x = np.asarray(closing, float) / np.linalg.norm(closing)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, origin
    return pose


@pytest.fixture(scope="module")
def world():
    return build_world(SPEC)


TOP_DOWN_BOX = gripper_pose([0.10, -0.05, 0.035], DOWN, Y)  # fingers on the 0.07 m wide faces


def test_accepts_good_top_down_grasps(world):
    good = check_grasp(world, "orange box", TOP_DOWN_BOX, 0.08, GRIPPER)
    assert good.valid and good.reason == "ok", good.reason
    # ball radius 0.03, fingers 0.03 deep: fingertips 4 mm above the equator keep the palm off its top
    ball = check_grasp(world, "blue ball", gripper_pose([-0.15, 0.10, 0.034], DOWN, X), 0.07, GRIPPER)
    assert ball.valid, ball.reason
    # from the side: approach along +x towards the box's -x face, closing across its 0.07 m width
    side = check_grasp(world, "orange box", gripper_pose([0.07, -0.05, 0.03], X, Y), 0.08, GRIPPER)
    assert side.valid, side.reason


def test_accepts_a_spec_as_well_as_a_world():
    assert check_grasp(SPEC, "orange box", TOP_DOWN_BOX, 0.08, GRIPPER).valid


def test_rejects_the_wrong_object(world):
    result = check_grasp(world, "blue ball", TOP_DOWN_BOX, 0.08, GRIPPER)
    assert not result.valid and "wrong object" in result.reason and "orange box" in result.reason


def test_rejects_too_wide_and_too_narrow(world):
    too_wide = check_grasp(world, "orange box", TOP_DOWN_BOX, 0.09, GRIPPER)
    assert not too_wide.valid and "range" in too_wide.reason
    assert check_grasp(world, "orange box", TOP_DOWN_BOX, 0.09, dataclasses.replace(GRIPPER, max_width=0.10)).valid
    narrow = check_grasp(world, "orange box", TOP_DOWN_BOX, 0.06, GRIPPER)  # box is 0.07 wide: fingers push into it
    assert not narrow.valid and "collision" in narrow.reason and "orange box" in narrow.reason


def test_rejects_collisions_with_table_palm_and_neighbours(world):
    into_table = check_grasp(world, "orange box", gripper_pose([0.10, -0.05, 0.03], X, UP), 0.08, GRIPPER)
    assert not into_table.valid and "collision" in into_table.reason and "'table'" in into_table.reason
    too_deep = check_grasp(world, "orange box", gripper_pose([0.10, -0.05, 0.01], DOWN, Y), 0.08, GRIPPER)
    assert not too_deep.valid and "palm" in too_deep.reason  # the box top meets the palm
    # the ball approached sideways along +y, coming from behind the mug 0.22 m away: a short approach is
    # free, a 0.30 m approach sweeps the gripper through the mug
    side = gripper_pose([-0.15, 0.096, 0.03], Y, X)
    assert check_grasp(world, "blue ball", side, 0.07, GRIPPER).valid
    long_approach = check_grasp(world, "blue ball", side, 0.07, dataclasses.replace(GRIPPER, approach_distance=0.30))
    assert not long_approach.valid and "red mug" in long_approach.reason


def test_a_cone_tip_poking_into_the_palm_is_a_collision(world):
    """No palm edge touches the thin tip; only the mesh-edge-versus-box test sees it."""
    assert check_grasp(world, "purple cone", gripper_pose([0.15, 0.15, 0.075], DOWN, X), 0.04, GRIPPER).valid
    poked = check_grasp(world, "purple cone", gripper_pose([0.15, 0.15, 0.065], DOWN, X), 0.04, GRIPPER)
    assert not poked.valid and "palm" in poked.reason and "purple cone" in poked.reason


def test_segment_box_test_matches_dense_sampling():
    rng = np.random.default_rng(0)
    box = np.array([[-0.1, -0.2, -0.05], [0.1, 0.2, 0.05]])
    p0, p1 = rng.uniform(-0.4, 0.4, (2, 2000, 3))
    p1[:200, 1] = p0[:200, 1]  # some segments parallel to a slab
    t = np.linspace(0.0, 1.0, 2001)[None, :, None]
    samples = p0[:, None] + t * (p1 - p0)[:, None]
    sampled = np.all((samples >= box[0]) & (samples <= box[1]), axis=-1).any(axis=1)
    exact = _segments_hit_box(p0, p1, box)
    assert sampled.sum() > 100 and np.all(exact[sampled])
    assert np.mean(exact != sampled) < 0.01  # sampling misses only grazing segments


def test_rejects_empty_air_and_non_antipodal_contacts(world):
    air = check_grasp(world, "orange box", gripper_pose([0.30, 0.20, 0.05], DOWN, Y), 0.08, GRIPPER)
    assert not air.valid and "no contact" in air.reason
    turned = np.radians(40.0)  # closing 40 deg off the box faces: contacts land on corners/faces at 40-50 deg
    small = parse_spec(
        {"objects": [{"name": "box", "shape": "box", "color": "red", "size": 0.05, "position": [0.0, 0.0]}]}
    )
    slanted = check_grasp(
        small, "box", gripper_pose([0.0, 0.0, 0.02], DOWN, [np.cos(turned), np.sin(turned), 0]), 0.075, GRIPPER
    )
    assert not slanted.valid and "antipodal" in slanted.reason
    aligned = check_grasp(small, "box", gripper_pose([0.0, 0.0, 0.02], DOWN, X), 0.075, GRIPPER)
    assert aligned.valid, aligned.reason


def test_the_friction_cone_is_the_grippers():
    """Closing 20 degrees off a box's faces: both contact normals are 20 degrees off the closing axis, inside
    a cone of atan(mu) > 20 degrees and outside a narrower one; the tolerance widens the cone."""
    small = parse_spec(
        {"objects": [{"name": "box", "shape": "box", "color": "red", "size": 0.05, "position": [0.0, 0.0]}]}
    )
    turned = np.radians(20.0)
    pose = gripper_pose([0.0, 0.0, 0.02], DOWN, [np.cos(turned), np.sin(turned), 0])

    def check(degrees, tolerance):
        gripper = dataclasses.replace(GRIPPER, friction_coefficient=math.tan(math.radians(degrees)))
        return check_grasp(small, "box", pose, 0.075, gripper, cone_tolerance_deg=tolerance)

    assert check(21.0, 0.0).valid and check(20.5, 0.0).valid
    narrow = check(19.5, 0.0)
    assert not narrow.valid and "20.0 deg off" in narrow.reason and "friction cone 19.5" in narrow.reason
    assert check(19.5, 1.0).valid and not check(15.0, 4.0).valid
    assert check_grasp(small, "box", pose, 0.075, GRIPPER).valid  # mu 0.4: 21.8 degrees


def test_bad_arguments_raise(world):
    with pytest.raises(ValueError, match="no object named 'green cup'"):
        check_grasp(world, "green cup", TOP_DOWN_BOX, 0.05, GRIPPER)
    with pytest.raises(ValueError, match="grasp_pose"):
        check_grasp(world, "orange box", np.eye(4) * 2, 0.05, GRIPPER)
