"""RViz markers, grasp PoseArray and the QueryObject response built from a real query answer."""

from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header
from tabletop import Box, Cylinder, make_scene
from visualization_msgs.msg import Marker

from langscene_core.config import GraspConfig, QueryConfig
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.objects import query_object
from langscene_ros.convert import pointcloud2_to_numpy, pose_to_matrix
from langscene_ros.viz import grasp_pose_array, gripper_outline, query_markers

GRASP = GraspConfig()
HEADER = Header(frame_id="map")
OBJECTS = (Box((0.0, 0.0), (0.05, 0.07, 0.05), yaw=0.3), Cylinder((0.15, 0.05), 0.03, 0.1))


@pytest.fixture(scope="module")
def answer():
    scene = make_scene(OBJECTS, 0)
    return query_object(scene.relevancy, scene.means, scene.colors, QueryConfig(), GRASP, scene.normals)


def _by_ns(array, ns):
    return [m for m in array.markers if m.ns == ns and m.action == Marker.ADD]


def test_markers_show_the_box_label_and_every_grasp(answer):
    assert answer.object_box is not None and len(answer.grasps) >= 2
    array = query_markers(answer, "red box", HEADER, GRASP)
    assert array.markers[0].action == Marker.DELETEALL
    (cube,) = _by_ns(array, "object")
    assert cube.type == Marker.CUBE and cube.header.frame_id == "map"
    np.testing.assert_allclose(pose_to_matrix(cube.pose), answer.object_box.pose, atol=1e-9)
    np.testing.assert_allclose([cube.scale.x, cube.scale.y, cube.scale.z], answer.object_box.extent)
    (label,) = _by_ns(array, "label")
    assert label.type == Marker.TEXT_VIEW_FACING and "red box" in label.text
    assert label.pose.position.z > answer.object_box.pose[2, 3] + answer.object_box.extent[2] / 2
    grippers, arrows = _by_ns(array, "grasp"), _by_ns(array, "approach")
    assert len(grippers) == len(arrows) == len(answer.grasps)
    for rank, (gripper, arrow, grasp) in enumerate(zip(grippers, arrows, answer.grasps)):
        assert gripper.id == arrow.id == rank and gripper.type == Marker.LINE_LIST and arrow.type == Marker.ARROW
        # fingertips drawn in the scene frame: either side of the origin along the closing axis
        pose = pose_to_matrix(gripper.pose)
        tips = np.array([[p.x, p.y, p.z, 1.0] for p in gripper.points[0:3:2]]) @ pose.T
        half = grasp.width / 2
        np.testing.assert_allclose(
            tips[:, :3], grasp.pose[:3, 3] + np.outer([-half, half], grasp.pose[:3, 0]), atol=1e-6
        )
        # the arrow points along the approach and ends at the palm
        start, end = (np.array([p.x, p.y, p.z]) for p in arrow.points)
        np.testing.assert_allclose((end - start) / np.linalg.norm(end - start), grasp.pose[:3, 2], atol=1e-6)
    assert grippers[0].color.g == 1.0 and grippers[-1].color.g <= grippers[0].color.g


def test_pose_array_matches_the_grasps(answer):
    array = grasp_pose_array(answer.grasps, HEADER)
    assert array.header.frame_id == "map" and len(array.poses) == len(answer.grasps)
    for pose, grasp in zip(array.poses, answer.grasps):
        np.testing.assert_allclose(pose_to_matrix(pose), grasp.pose, atol=1e-9)


def test_nothing_found_clears_the_display():
    scene = make_scene(OBJECTS, None)
    result = query_object(scene.relevancy, scene.means, scene.colors, QueryConfig(), GRASP)
    array = query_markers(result, "unicorn", HEADER, GRASP)
    assert [m.action for m in array.markers] == [Marker.DELETEALL]
    assert grasp_pose_array(result.grasps, HEADER).poses == []


def test_gripper_outline_spans_the_opening():
    outline = gripper_outline(0.04, GRASP)
    assert outline.shape == (8, 3)
    np.testing.assert_allclose(np.ptp(outline[:, 0]), 0.04)
    np.testing.assert_allclose(outline[:, 2].min(), -GRASP.finger_depth - GRASP.palm_depth)


def test_query_response_carries_cloud_box_and_grasps(answer):
    pytest.importorskip("langscene.srv", reason="langscene interfaces not built")
    from langscene.srv import QueryObject
    from langscene_ros.query_response import fill_query_response

    gripper = Gripper.from_config(GRASP)
    response = fill_query_response(QueryObject.Response(), answer, HEADER, gripper)
    assert response.success and response.message == answer.message
    assert response.status == QueryObject.Response.FOUND and response.object_score == pytest.approx(answer.object_score)
    for candidate, grasp in zip(response.grasps, answer.grasps):
        pregrasp = pose_to_matrix(candidate.pregrasp_pose.pose)
        np.testing.assert_allclose(pregrasp[:3, :3], grasp.pose[:3, :3], atol=1e-9)
        backed_off = grasp.pose[:3, 3] - GRASP.approach_distance * grasp.pose[:3, 2]
        np.testing.assert_allclose(pregrasp[:3, 3], backed_off, atol=1e-9)
        assert candidate.pregrasp_pose.header.frame_id == "map"
    slim = fill_query_response(QueryObject.Response(), answer, HEADER, gripper, skip_cloud=True)
    assert slim.relevancy_cloud.width == 0 and len(slim.grasps) == len(response.grasps)
    cloud = pointcloud2_to_numpy(response.relevancy_cloud)
    assert cloud.dtype.names == ("x", "y", "z", "relevancy", "rgb") and len(cloud) == len(answer.cloud)
    np.testing.assert_array_equal(cloud["relevancy"], answer.cloud["relevancy"])
    np.testing.assert_allclose(pose_to_matrix(response.object_pose.pose), answer.object_box.pose, atol=1e-9)
    assert response.object_pose.header.frame_id == "map"
    np.testing.assert_allclose(
        [response.object_extent.x, response.object_extent.y, response.object_extent.z],
        answer.object_box.extent,
        rtol=1e-6,
    )
    assert [g.width for g in response.grasps] == pytest.approx([g.width for g in answer.grasps])
    assert [g.score for g in response.grasps] == pytest.approx([g.score for g in answer.grasps])
