"""Integration: `langscene run` in a subprocess, driven over ROS from this process."""

import re

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from conftest import wait_until
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from ros_io import RosPeer
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from langscene.srv import QueryObject, SceneFile
from langscene_core.geometry.camera import Intrinsics, look_at
from langscene_ros import convert
from langscene_ros import interface as api
from langscene_ros.tf_listener import refusal_reason

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
    """Poses on the camera_pose topic (node.pose_source topic), and bad camera input on every stream."""
    node = node_process("--ros-args", "-p", "node.pose_source:=topic")
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
    peer.publish_frame(5.0, np.zeros((10, 10, 3), np.uint8), K, orbit_pose(5))  # pairs, then fails the size check
    late = convert.numpy_to_image(textured(8), "rgb8")
    late.header.stamp.sec = 2  # older than the last image: dropped as out of order
    peer.image.publish(late)
    zero_rotation = PoseStamped(header=Header(frame_id="map"))
    zero_rotation.pose.orientation.w = 0.0  # the default quaternion is the identity
    peer.pose.publish(zero_rotation)
    assert wait_until(lambda: "rejected 3;" in peer.statuses[-1].message, 10), peer.statuses[-1].message
    message = peer.statuses[-1].message
    assert "no_camera_info 1" in message or "no_pose 1" in message, message  # the stray first image
    assert wait_until(lambda: "image_out_of_order 1" in peer.statuses[-1].message, 10), peer.statuses[-1].message
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


def test_node_takes_camera_poses_from_tf_and_counts_bad_transforms_and_frames(node_process, peer, tmp_path):
    """The default node.pose_source tf: the node takes no camera_pose topic; each image's pose is looked
    up in /tf (map -> base_link, 10 Hz) and /tf_static (base_link -> the image's frame), interpolated at
    its stamp. Then bad input, each counted by reason in the status with the node alive: transforms
    with NaN, a non-unit quaternion, one closing a loop, one older than node.tf_cache_s, an image older
    than the previous one and an image in a frame the tree does not have."""
    from tf2_msgs.msg import TFMessage

    from langscene_ros.tf_listener import TF, TF_QOS, TF_STATIC, TF_STATIC_QOS

    params = tmp_path / "params.yaml"
    # reliable camera QoS: a best-effort reader may miss what is sent while discovery completes
    params.write_text(
        "langscene:\n  ros__parameters:\n    node:\n      qos:\n        camera:\n          reliability: reliable\n"
    )
    node = node_process("--params-file", str(params))
    diagnostics: list[DiagnosticArray] = []
    peer.node.create_subscription(DiagnosticArray, api.DIAGNOSTICS, diagnostics.append, 10)
    static_pub = peer.node.create_publisher(TFMessage, TF_STATIC, TF_STATIC_QOS)
    tf_pub = peer.node.create_publisher(TFMessage, TF, TF_QOS)
    publishers = (tf_pub, static_pub, peer.image, peer.info)
    assert wait_until(lambda: all(pub.get_subscription_count() > 0 for pub in publishers), 90)
    assert peer.pose.get_subscription_count() == 0, "camera_pose is subscribed with pose_source tf"

    mount = np.eye(4)  # base_link -> camera: the camera is the base here, so map -> camera = the orbit
    static_pub.publish(
        TFMessage(transforms=[convert.matrix_to_transform_stamped(mount, "base_link", "camera", Time())])
    )
    start = 20.0  # seconds; data older than the default 10 s cache can be sent below
    base_stamps = start + np.arange(0, 4.01, 0.1)
    base = [look_at(np.array([0.7 * np.cos(t), 0.7 * np.sin(t), 0.5]), np.zeros(3)) for t in base_stamps]

    def base_in_map(matrix: np.ndarray, t: float):
        return convert.matrix_to_transform_stamped(matrix, "map", "base_link", convert.seconds_to_stamp(t))

    odometry = TFMessage(transforms=[base_in_map(m, t) for m, t in zip(base, base_stamps)])

    def publish_image(t: float, i: int, frame_id: str = "camera") -> None:
        stamp = convert.seconds_to_stamp(t)
        peer.info.publish(convert.intrinsics_to_camera_info(K, Header(stamp=stamp, frame_id=frame_id)))
        peer.image.publish(convert.numpy_to_image(textured(i), "rgb8", Header(stamp=stamp, frame_id=frame_id)))

    for i in range(4):  # 0.35 rad apart: keyframes; stamps between the 10 Hz transforms
        publish_image(start + 0.05 + 0.35 * i, i)

    def keyframes_after_tf() -> bool:
        # /tf is volatile: a robot streams it, so a message sent before the node's reader matched is
        # followed by others; the images wait for their pose meanwhile.
        tf_pub.publish(odometry)
        return bool(peer.statuses) and peer.statuses[-1].keyframes == 4

    assert wait_until(keyframes_after_tf, 30, period_s=0.5), peer.statuses[-1:]
    assert re.search(r"; rejected 0; dropped: none$", peer.statuses[-1].message), peer.statuses[-1].message

    nan = base_in_map(np.eye(4), start + 2.0)
    nan.child_frame_id, nan.transform.translation.x = "broken", float("nan")
    unnormalised = base_in_map(np.eye(4), start + 2.0)
    unnormalised.child_frame_id, unnormalised.transform.rotation.w = "scaled", 1.5
    loop = convert.matrix_to_transform_stamped(np.eye(4), "camera", "map", convert.seconds_to_stamp(start + 2.0))
    old = base_in_map(base[0], start - 15.0)  # 19 s before the newest map -> base_link: past the cache
    tf_pub.publish(TFMessage(transforms=[nan, unnormalised, loop, old]))
    publish_image(start + 1.0, 5)  # older than the last image (start + 1.1)
    publish_image(start + 3.0, 6, frame_id="nowhere")  # waits for a frame that never comes ...
    publish_image(start + 8.5, 7)  # ... until the image stream is max_wait_s past it

    assert wait_until(lambda: "rejected 4;" in peer.statuses[-1].message, 20), peer.statuses[-1].message
    assert wait_until(lambda: "pose_unknown_frame 1" in peer.statuses[-1].message, 20), peer.statuses[-1].message
    assert "image_out_of_order 1" in peer.statuses[-1].message, peer.statuses[-1].message
    assert peer.statuses[-1].keyframes == 4

    def rejected_in_diagnostics() -> dict[str, str]:
        values = [kv for status in diagnostics[-1].status for kv in status.values] if diagnostics else []
        return {kv.key: kv.value for kv in values if kv.key.startswith("rejected: /tf")}

    expected = {
        f"rejected: {refusal_reason(TF, 'invalid')}": "2",
        f"rejected: {refusal_reason(TF, 'loop')}": "1",
        f"rejected: {refusal_reason(TF, 'old_data')}": "1",
    }
    assert wait_until(lambda: rejected_in_diagnostics() == expected, 20), rejected_in_diagnostics()
    assert node.poll() is None, "the node died on bad input"
