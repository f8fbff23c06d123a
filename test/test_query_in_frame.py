"""An answer moved into a planner's frame through the transform buffer."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from tabletop import Box, Cylinder, make_scene

from langscene_core.config import GraspConfig, QueryConfig
from langscene_core.geometry.transforms import (
    ExtrapolationError,
    InvalidTransformError,
    TransformBuffer,
    UnknownFrameError,
    make_transform,
)
from langscene_core.query.in_frame import answer_transform, result_in_frame
from langscene_core.query.objects import query_object

OBJECTS = (Box((0.02, -0.03), (0.05, 0.07, 0.06), yaw=0.4), Cylinder((0.18, 0.08), 0.03, 0.1))


def base_frame(points: np.ndarray) -> np.ndarray:
    """Closed form of map -> base_link for base_link at (1, 2, 0) in map, turned 90 degrees left:
    (x, y, z) -> (y - 2, 1 - x, z)."""
    return np.stack([points[..., 1] - 2.0, 1.0 - points[..., 0], points[..., 2]], axis=-1)


def turned(vectors: np.ndarray) -> np.ndarray:
    """The same rotation on direction vectors [..., 3]: (x, y, z) -> (y, -x, z)."""
    return np.stack([vectors[..., 1], -vectors[..., 0], vectors[..., 2]], axis=-1)


@pytest.fixture(scope="module")
def answer():
    scene = make_scene(OBJECTS, 0)
    result = query_object(scene.relevancy, scene.means, scene.colors, QueryConfig(), GraspConfig(), scene.normals)
    assert result.object_box is not None and result.grasps, result.message
    return result


def test_pose_cloud_and_grasps_move_into_base_link(answer):
    buffer = TransformBuffer()
    buffer.set_transform(
        "map", "base_link", 5.0, translation=[1.0, 2.0, 0.0], quaternion=[0, 0, np.sqrt(0.5), np.sqrt(0.5)]
    )
    moved = result_in_frame(answer, buffer.lookup("base_link", "map", 5.0))

    xyz = np.stack([answer.cloud[k] for k in "xyz"], axis=1).astype(np.float64)
    moved_xyz = np.stack([moved.cloud[k] for k in "xyz"], axis=1)
    assert moved.cloud.dtype == answer.cloud.dtype
    np.testing.assert_allclose(moved_xyz, base_frame(xyz), atol=1e-6)
    np.testing.assert_array_equal(moved.cloud["relevancy"], answer.cloud["relevancy"])
    np.testing.assert_array_equal(moved.cloud["rgb"].view(np.uint32), answer.cloud["rgb"].view(np.uint32))

    box, moved_box = answer.object_box, moved.object_box
    np.testing.assert_allclose(moved_box.pose[:3, 3], base_frame(box.pose[:3, 3]), atol=1e-12)
    np.testing.assert_allclose(moved_box.pose[:3, :3], turned(box.pose[:3, :3].T).T, atol=1e-12)
    np.testing.assert_array_equal(moved_box.extent, box.extent)

    assert len(moved.grasps) == len(answer.grasps)
    for grasp, moved_grasp in zip(answer.grasps, moved.grasps):
        np.testing.assert_allclose(moved_grasp.pose[:3, 3], base_frame(grasp.pose[:3, 3]), atol=1e-12)
        np.testing.assert_allclose(moved_grasp.pose[:3, :3], turned(grasp.pose[:3, :3].T).T, atol=1e-12)
        np.testing.assert_allclose(moved_grasp.contacts, base_frame(grasp.contacts), atol=1e-12)
        assert (moved_grasp.width, moved_grasp.score) == (grasp.width, grasp.score)
    np.testing.assert_array_equal(moved.object_indices, answer.object_indices)


def test_round_trip_and_bad_transforms(answer):
    buffer = TransformBuffer()
    buffer.set_transform(
        "map", "base_link", 0.0, translation=[0.3, -0.2, 0.8], quaternion=[0.1, 0.2, 0.3, 0.927], static=True
    )
    there = result_in_frame(answer, buffer.lookup("base_link", "map"))
    back = result_in_frame(there, buffer.lookup("map", "base_link"))
    np.testing.assert_allclose(back.object_box.pose, answer.object_box.pose, atol=1e-12)
    np.testing.assert_allclose(back.grasps[0].pose, answer.grasps[0].pose, atol=1e-12)
    with pytest.raises(UnknownFrameError, match="'panda_link0'"):
        buffer.lookup("panda_link0", "map")
    with pytest.raises(InvalidTransformError):
        result_in_frame(answer, np.diag([2.0, 2.0, 2.0, 1.0]))


def test_an_answer_in_base_link_transforms_back_in_a_planners_own_buffer(answer):
    """The robot's TF at 30 Hz for 12 s; the planner keeps its own 10 s buffer of the same stream."""

    def odom_in_map(t):
        return make_transform([0.01 * t, 0.0, 0.0], Rotation.from_rotvec([0, 0, 0.001 * t]).as_quat())

    def base_in_odom(t):
        return make_transform([0.3 * t, 0.1 * t, 0.0], Rotation.from_rotvec([0, 0, 0.2 * t]).as_quat())

    robot, planner = TransformBuffer(cache_s=10.0), TransformBuffer(cache_s=10.0)
    for t in np.arange(361) / 30.0:
        for buffer in (robot, planner):
            buffer.set_transform("map", "odom", t, odom_in_map(t))
            buffer.set_transform("odom", "base_link", t, base_in_odom(t))
    frame, stamp, base_from_map = answer_transform(robot, "map", requested="base_link", output_frame="odom")
    assert (frame, stamp) == ("base_link", 12.0)
    moved = result_in_frame(answer, base_from_map)
    truth = np.linalg.inv(odom_in_map(12.0) @ base_in_odom(12.0)) @ answer.object_box.pose
    np.testing.assert_allclose(moved.object_box.pose, truth, atol=1e-9)
    # the planner, given the pose in base_link stamped 12.0, brings it back into map
    back = planner.lookup("map", frame, stamp) @ moved.object_box.pose
    np.testing.assert_allclose(back, answer.object_box.pose, atol=1e-9)

    assert answer_transform(robot, "map", output_frame="odom")[:2] == ("odom", 12.0)
    scene_frame, latest, identity = answer_transform(robot, "map")
    assert (scene_frame, latest) == ("map", 0.0) and np.array_equal(identity, np.eye(4))
    # stamped 0 (tf2's "latest"), the map-frame answer goes into base_link with the planner's newest
    # transform; stamped with the node's clock a frame after the newest transform, it would not
    in_base = planner.lookup("base_link", "map", None) @ answer.object_box.pose
    np.testing.assert_allclose(in_base, moved.object_box.pose, atol=1e-9)
    with pytest.raises(ExtrapolationError):
        planner.lookup("base_link", "map", 12.0 + 1 / 30)
    with pytest.raises(UnknownFrameError, match="'panda_link0'"):
        answer_transform(robot, "map", requested="panda_link0")
