"""TFMessages published over rclpy reach the core transform buffer through TfListener."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rclpy
from conftest import wait_until
from rclpy.executors import SingleThreadedExecutor
from scipy.spatial.transform import Rotation
from tf2_msgs.msg import TFMessage

from langscene_core.geometry.camera import look_at
from langscene_core.geometry.transforms import TransformBuffer, make_transform
from langscene_ros import convert
from langscene_ros.tf_listener import TF, TF_QOS, TF_STATIC, TF_STATIC_QOS, TfListener

CAMERA_IN_BASE = look_at(np.array([0.1, 0.0, 0.5]), np.array([1.0, 0.0, 0.0]))  # the camera mount


def base_in_map(t: float) -> np.ndarray:
    """Driving at constant velocity, turning at a constant rate: exact under lerp + slerp."""
    return make_transform([0.5 * t, 0.1 * t, 0.0], Rotation.from_rotvec([0.0, 0.0, 0.4 * t]).as_quat())


class Participant:
    """An rclpy node in its own context, spun in a background thread."""

    def __init__(self, name: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(timeout=5)


@pytest.fixture
def participants():
    made: list[Participant] = []
    yield lambda name: made.append(Participant(name)) or made[-1]
    for participant in reversed(made):
        participant.close()


def transform(matrix: np.ndarray, parent: str, child: str, t: float):
    return convert.matrix_to_transform_stamped(matrix, parent, child, convert.seconds_to_stamp(t))


def test_published_tf_answers_a_chain_lookup_and_bad_transforms_are_counted(participants):
    robot = participants("tf_publisher")
    static_pub = robot.node.create_publisher(TFMessage, TF_STATIC, TF_STATIC_QOS)
    tf_pub = robot.node.create_publisher(TFMessage, TF, TF_QOS)
    # the static mount is published before anyone listens: transient local delivers it late
    static_pub.publish(TFMessage(transforms=[transform(CAMERA_IN_BASE, "base_link", "camera_optical", 0.0)]))

    langscene = participants("tf_listener")
    buffer = TransformBuffer(cache_s=10.0)
    updates = threading.Event()
    listener = TfListener(langscene.node, buffer, on_update=updates.set)
    assert wait_until(lambda: tf_pub.get_subscription_count() > 0, 20), "listener did not subscribe to /tf"
    assert wait_until(lambda: "camera_optical" in buffer.frames(), 20), "static transform not received"

    stamps = 100.0 + np.arange(31) / 30.0  # one second at 30 Hz
    for t in stamps:
        tf_pub.publish(TFMessage(transforms=[transform(base_in_map(t), "map", "base_link", t)]))
    nan = transform(np.eye(4), "map", "broken", 100.5)
    nan.transform.translation.x = float("nan")
    unnormalised = transform(np.eye(4), "map", "scaled", 100.5)
    unnormalised.transform.rotation.w = 1.5
    loop = transform(np.eye(4), "camera_optical", "map", 100.5)
    tf_pub.publish(TFMessage(transforms=[nan, unnormalised, loop]))
    assert wait_until(lambda: sum(listener.rejected().values()) == 3, 20), listener.rejected()
    assert listener.rejected() == {"invalid": 2, "loop": 1} and updates.is_set()

    for t in (100.0, 100.25, 100.51, 101.0):  # sample stamps and between them
        np.testing.assert_allclose(
            buffer.lookup("map", "camera_optical", t), base_in_map(t) @ CAMERA_IN_BASE, atol=1e-9
        )
    np.testing.assert_allclose(buffer.lookup("map", "camera_optical"), base_in_map(101.0) @ CAMERA_IN_BASE, atol=1e-9)
