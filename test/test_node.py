"""Integration: `langscene run` in a subprocess, driven over ROS from this process."""

import numpy as np
import pytest
from conftest import wait_until
from geometry_msgs.msg import PoseStamped
from ros_io import RosPeer
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from langscene.srv import QueryObject, SceneFile
from langscene_core.geometry.camera import Intrinsics, look_at
from langscene_ros import convert
from langscene_ros import interface as api

pytestmark = pytest.mark.ros

K = Intrinsics.from_hfov(64, 48, 60.0)


def orbit_pose(i: int) -> np.ndarray:
    angle = np.radians(20.0 * i)
    return look_at(np.array([0.7 * np.cos(angle), 0.7 * np.sin(angle), 0.5]), np.zeros(3))


def textured(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 255, (K.height, K.width, 3), dtype=np.uint8)


@pytest.fixture
def peer():
    peer = RosPeer()
    yield peer
    peer.close()


def test_node_collects_keyframes_rejects_bad_input_and_answers_queries(node_process, peer):
    node = node_process()
    assert wait_until(peer.subscribers_ready, 90), "node did not subscribe to its inputs"
    assert wait_until(lambda: peer.statuses, 10), "no latched status"
    assert peer.statuses[-1].state == "idle"

    # bad input: an image before any camera_info (dropped once newer frames pass it by), a wrong
    # encoding, a size mismatch, a zero quaternion (rejected)
    peer.image.publish(convert.numpy_to_image(textured(0), "rgb8"))
    for i in range(4):
        peer.publish_frame(1.0 + i, textured(i), K, orbit_pose(i))
    assert wait_until(lambda: peer.statuses[-1].keyframes == 4, 20), peer.statuses[-1]
    assert peer.statuses[-1].state == "collecting"

    bad = convert.numpy_to_image(textured(9), "rgb8")
    bad.encoding = "yuv422"
    peer.image.publish(bad)
    wrong_size = convert.numpy_to_image(np.zeros((10, 10, 3), np.uint8), "rgb8")
    wrong_size.header.stamp.sec = 2  # pairs with the pose of frame 2, then fails the size check
    peer.image.publish(wrong_size)
    zero_rotation = PoseStamped(header=Header(frame_id="map"))
    zero_rotation.pose.orientation.w = 0.0  # the default quaternion is the identity
    peer.pose.publish(zero_rotation)
    assert wait_until(lambda: "rejected 3;" in peer.statuses[-1].message, 10), peer.statuses[-1].message
    message = peer.statuses[-1].message
    assert "no_camera_info 1" in message or "no_pose 1" in message, message  # the stray first image
    assert node.poll() is None, "the node died on bad input"

    answer = peer.call(QueryObject, api.QUERY_OBJECT, QueryObject.Request(prompt="red mug"))
    assert not answer.success and "not ready" in answer.message and "4 keyframes" in answer.message
    empty = peer.call(QueryObject, api.QUERY_OBJECT, QueryObject.Request(prompt="  "))
    assert not empty.success and "empty prompt" in empty.message

    missing = peer.call(SceneFile, api.LOAD_SCENE, SceneFile.Request(path="/nonexistent/scene"))
    assert not missing.success and missing.message

    reset = peer.call(Trigger, api.RESET, Trigger.Request())
    assert reset.success
    assert wait_until(lambda: peer.statuses[-1].keyframes == 0, 10)
    assert node.poll() is None
