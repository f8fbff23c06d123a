"""A test-side ROS participant: publishes camera streams to the node and calls its services."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from langscene_core.geometry.camera import Intrinsics
from langscene_ros import convert
from langscene_ros import interface as api
from langscene_ros.client import NodeClient

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class RosPeer(NodeClient):
    """A NodeClient with raw publishers on the node's inputs (to send well-formed and broken messages)."""

    def __init__(self) -> None:
        super().__init__("langscene_test_peer")
        self.image = self.node.create_publisher(Image, f"/{api.IMAGE}", RELIABLE)
        self.info = self.node.create_publisher(CameraInfo, f"/{api.CAMERA_INFO}", RELIABLE)
        self.depth = self.node.create_publisher(Image, f"/{api.DEPTH}", RELIABLE)
        self.pose = self.node.create_publisher(PoseStamped, f"/{api.CAMERA_POSE}", RELIABLE)

    def subscribers_ready(self) -> bool:
        return all(pub.get_subscription_count() > 0 for pub in (self.image, self.info, self.pose))

    def publish_frame(self, stamp_s: float, rgb: np.ndarray, intrinsics: Intrinsics, cam_to_world: np.ndarray) -> None:
        """camera_info, camera_pose (cam_to_world [4, 4]: the optical frame in map) and an rgb8 image at
        ``stamp_s`` seconds, for a node with ``node.pose_source: topic`` (a tf node reads no camera_pose)."""
        stamp = Time(sec=int(stamp_s), nanosec=int(round((stamp_s % 1) * 1e9)))
        self.info.publish(convert.intrinsics_to_camera_info(intrinsics, Header(stamp=stamp, frame_id="camera")))
        self.pose.publish(
            PoseStamped(header=Header(stamp=stamp, frame_id="map"), pose=convert.matrix_to_pose(cam_to_world))
        )
        self.image.publish(convert.numpy_to_image(rgb, "rgb8", Header(stamp=stamp, frame_id="camera")))
