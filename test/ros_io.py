"""A test-side ROS participant: publishes camera streams to the node and calls its services."""
from __future__ import annotations

import threading

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from langscene.msg import SceneStatus
from langscene_core.camera import Intrinsics
from langscene_ros import convert

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


class RosPeer:
    """Publishers for image / camera_info / depth / camera_pose and a subscriber to ~/status."""

    def __init__(self, node_name: str = "langscene_test_peer", target: str = "/langscene") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(node_name, context=self.context)
        self.target = target
        self.image = self.node.create_publisher(Image, "/image", RELIABLE)
        self.info = self.node.create_publisher(CameraInfo, "/camera_info", RELIABLE)
        self.depth = self.node.create_publisher(Image, "/depth", RELIABLE)
        self.pose = self.node.create_publisher(PoseStamped, "/camera_pose", RELIABLE)
        self.statuses: list[SceneStatus] = []
        self.node.create_subscription(SceneStatus, f"{target}/status", self.statuses.append, LATCHED)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def subscribers_ready(self) -> bool:
        return all(pub.get_subscription_count() > 0 for pub in (self.image, self.info, self.pose))

    def publish_frame(self, stamp_s: float, rgb: np.ndarray, intrinsics: Intrinsics, cam_to_world: np.ndarray,
                      depth: np.ndarray | None = None, frame_id: str = "map") -> None:
        stamp = Time(sec=int(stamp_s), nanosec=int(round((stamp_s % 1) * 1e9)))
        self.info.publish(convert.intrinsics_to_camera_info(intrinsics, Header(stamp=stamp, frame_id="camera")))
        self.pose.publish(PoseStamped(header=Header(stamp=stamp, frame_id=frame_id), pose=convert.matrix_to_pose(cam_to_world)))
        if depth is not None:
            self.depth.publish(convert.depth_to_image(depth, Header(stamp=stamp, frame_id="camera")))
        self.image.publish(convert.numpy_to_image(rgb, "rgb8", Header(stamp=stamp, frame_id="camera")))

    def call(self, srv_type, name: str, request, timeout_s: float = 30.0):
        client = self.node.create_client(srv_type, f"{self.target}/{name}")
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f"{name} not available"
            event = threading.Event()
            future = client.call_async(request)
            future.add_done_callback(lambda _: event.set())
            assert event.wait(timeout_s), f"{name} did not answer"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
