"""Publish a world dataset on the node's camera input topics, like a bag player.

Per frame, all with the same header stamp (the player's clock at publish time): ``camera_info``,
``camera_pose`` (geometry_msgs/PoseStamped, pose of the camera optical frame in ``scene_frame``),
``depth`` (32FC1 metres, 0 = no surface) and ``image`` (rgb8). Topic names are relative, so
``--ros-args -r __ns:=/robot`` or remaps apply. Publishers are reliable (they also match the node's
best-effort sensor-data subscriptions).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from langscene_core.sim import RenderedFrame
from langscene_ros import convert
from langscene_ros import interface as api

CAMERA_FRAME = "camera_optical"  # frame_id of image, depth and camera_info


def frame_messages(frame: RenderedFrame, stamp: Time, scene_frame: str) -> list[tuple[str, object]]:
    """(topic, message) pairs of one frame in publishing order; camera_info first, image last."""
    camera = Header(stamp=stamp, frame_id=CAMERA_FRAME)
    return [
        (api.CAMERA_INFO, convert.intrinsics_to_camera_info(frame.intrinsics, camera)),
        (
            api.CAMERA_POSE,
            PoseStamped(
                header=Header(stamp=stamp, frame_id=scene_frame), pose=convert.matrix_to_pose(frame.cam_to_world)
            ),
        ),
        (api.DEPTH, convert.depth_to_image(frame.depth, camera)),
        (api.IMAGE, convert.numpy_to_image(frame.rgb, "rgb8", camera)),
    ]


class Player:
    """Publishers of the four topics on ``node``; :meth:`play` sends frames at a fixed rate."""

    TYPES = {api.CAMERA_INFO: CameraInfo, api.CAMERA_POSE: PoseStamped, api.DEPTH: Image, api.IMAGE: Image}

    def __init__(self, node: Node, scene_frame: str = "map") -> None:
        self.node = node
        self.scene_frame = scene_frame
        self.publishers = {
            topic: node.create_publisher(kind, topic, api.RELIABLE) for topic, kind in self.TYPES.items()
        }

    def wait_for_subscribers(self, timeout_s: float, settle_s: float = 2.0) -> bool:
        """True once every topic has a subscriber (the node subscribes to all four), then ``settle_s``
        more seconds: the publisher sees a subscription before the subscriber has matched the publisher,
        and a best-effort subscriber loses what arrives in between; discovery between two processes took
        up to 1.7 s here (1 s lost a first frame now and then in the test suite under load). False after
        ``timeout_s`` without."""
        deadline = time.monotonic() + timeout_s
        while any(p.get_subscription_count() == 0 for p in self.publishers.values()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        time.sleep(settle_s)
        return True

    def play(self, frames: Iterator[RenderedFrame], rate_hz: float, ack_timeout_s: float = 5.0) -> int:
        """Publish each frame, one every 1 / rate_hz seconds (steady schedule); returns how many.

        Then waits up to ``ack_timeout_s`` until reliable subscribers have acknowledged everything: a
        process that exits right after publishing loses what is still in flight (a frame in 3 of 7
        runs of the world-play test). Best-effort subscribers (the node's default
        ``camera_qos``) acknowledge nothing, so for them nothing waits and nothing is guaranteed."""
        period = 1.0 / rate_hz
        next_time = time.monotonic()
        count = 0
        for frame in frames:
            delay = next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = self.node.get_clock().now().to_msg()
            for topic, message in frame_messages(frame, stamp, self.scene_frame):
                self.publishers[topic].publish(message)
            count += 1
            next_time += period
        for publisher in self.publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=ack_timeout_s))
        return count
