"""The ``langscene`` node: camera streams in, keyframes, a background reconstruction, text queries out.

ROS boundary only: message conversion, parameters, threads and services. Every computation lives in
``langscene_core``. Interfaces are the contract of DESIGN.md section 3.
"""
from __future__ import annotations

import threading
import traceback
from collections import Counter
from dataclasses import dataclass

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)
from geometry_msgs.msg import PoseArray, PoseStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from langscene.msg import SceneStatus
from langscene.srv import QueryObject, SceneFile
from langscene_core.config import ConfigError, LangsceneConfig, flatten, from_dict, to_dict, unflatten
from langscene_core.frames import Frame, FrameSynchronizer
from langscene_core.keyframes import KeyframeBuffer
from langscene_ros import convert

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass
class BadInputCounter:
    """Counts rejected messages per reason; the node logs each reason (throttled) and reports totals."""

    counts: dict[str, int]

    def add(self, reason: str) -> int:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        return self.counts[reason]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class LangsceneNode(Node):
    """Node ``langscene``; see the module docstring and README for topics, services and parameters."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("langscene", **node_kwargs)
        self.config = self._declare_and_read_parameters()
        self._lock = threading.Lock()  # guards keyframes, sync, state
        self._keyframes = KeyframeBuffer(self.config.keyframe)
        self._sync = FrameSynchronizer()
        self._bad = BadInputCounter(counts={})
        self._state = "idle"
        self._message = "waiting for camera frames"
        self._progress = 0.0
        self._scene = None  # immutable snapshot swapped in when a reconstruction finishes

        # One exclusive group per input: each stream is handled in arrival (= stamp) order, which the
        # synchronizer relies on, while the streams and the services run in parallel.
        services = MutuallyExclusiveCallbackGroup()
        camera_qos = qos_profile_sensor_data if self.config.node.camera_qos == "sensor_data" else RELIABLE
        for msg_type, topic, callback in ((Image, "image", self._on_image), (CameraInfo, "camera_info", self._on_camera_info),
                                          (Image, "depth", self._on_depth), (PoseStamped, "camera_pose", self._on_pose)):
            self.create_subscription(msg_type, topic, callback, camera_qos, callback_group=MutuallyExclusiveCallbackGroup())

        self._status_pub = self.create_publisher(SceneStatus, "~/status", LATCHED)
        self._scene_cloud_pub = self.create_publisher(PointCloud2, "~/scene_cloud", LATCHED)
        self._relevancy_pub = self.create_publisher(PointCloud2, "~/relevancy_cloud", RELIABLE)
        self._grasps_pub = self.create_publisher(PoseArray, "~/grasps", RELIABLE)
        self._markers_pub = self.create_publisher(MarkerArray, "~/markers", RELIABLE)

        self.create_service(QueryObject, "~/query_object", self._on_query, callback_group=services)
        self.create_service(Trigger, "~/reconstruct", self._on_reconstruct, callback_group=services)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)
        self.create_service(SceneFile, "~/save_scene", self._on_save_scene, callback_group=services)
        self.create_service(SceneFile, "~/load_scene", self._on_load_scene, callback_group=services)

        self.create_timer(self.config.node.status_period_s, self._publish_status, callback_group=services)
        self._publish_status()
        self.get_logger().info("langscene ready: waiting for image, camera_info, camera_pose (depth optional)")

    # ----------------------------------------------------------------------------------- parameters
    def _declare_and_read_parameters(self) -> LangsceneConfig:
        """Declare one parameter per config leaf (defaults from the dataclasses); read them back typed."""
        defaults = flatten(to_dict(LangsceneConfig()))
        for name, value in defaults.items():
            self.declare_parameter(name, value)
        values = {name: self.get_parameter(name).value for name in defaults}
        try:
            return from_dict(LangsceneConfig, unflatten(values))
        except ConfigError as exc:
            raise ConfigError(f"bad parameter: {exc}") from exc

    # ----------------------------------------------------------------------------------- inputs
    def _reject(self, reason: str) -> None:
        with self._lock:
            count = self._bad.add(reason)
        self.get_logger().warning(f"rejected message ({reason}); {count} so far", throttle_duration_sec=5.0)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            intrinsics = convert.camera_info_to_intrinsics(msg)
        except convert.ConversionError as exc:
            self._reject(f"camera_info: {exc}")
            return
        with self._lock:
            frames = self._sync.set_intrinsics(intrinsics)
        self._take_frames(frames)

    def _on_pose(self, msg: PoseStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.config.node.scene_frame:
            self._reject(f"camera_pose in frame '{msg.header.frame_id}', expected '{self.config.node.scene_frame}'")
            return
        try:
            matrix = convert.pose_to_matrix(msg.pose)
        except convert.ConversionError as exc:
            self._reject(f"camera_pose: {exc}")
            return
        with self._lock:
            frames = self._sync.add_pose(_stamp_seconds(msg.header.stamp), matrix)
        self._take_frames(frames)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = convert.image_to_depth(msg)
        except convert.ConversionError as exc:
            self._reject(f"depth: {exc}")
            return
        with self._lock:
            frames = self._sync.add_depth(_stamp_seconds(msg.header.stamp), depth)
        self._take_frames(frames)

    def _on_image(self, msg: Image) -> None:
        try:
            rgb = convert.image_to_rgb(msg)
        except convert.ConversionError as exc:
            self._reject(f"image: {exc}")
            return
        with self._lock:
            frames = self._sync.add_image(_stamp_seconds(msg.header.stamp), rgb)
        self._take_frames(frames)

    def _take_frames(self, frames: list[Frame]) -> None:
        """Offer paired frames to the keyframe buffer, rejecting those whose sizes disagree."""
        for frame in frames:
            size = (frame.intrinsics.height, frame.intrinsics.width)
            if frame.rgb.shape[:2] != size:
                self._reject(f"image: size {frame.rgb.shape[1]}x{frame.rgb.shape[0]} does not match "
                             f"camera_info {size[1]}x{size[0]}")
                continue
            if frame.depth is not None and frame.depth.shape != size:
                self._reject("depth: size does not match the image")
                continue
            with self._lock:
                verdict = self._keyframes.offer(frame)
                if verdict == "accepted" and self._state in ("idle", "collecting"):
                    self._state = "collecting"
                    self._message = f"{len(self._keyframes.keyframes)} keyframes"

    # ----------------------------------------------------------------------------------- status
    def _publish_status(self) -> None:
        with self._lock:
            dropped = Counter(self._sync.dropped, keyframe_buffer_full=self._keyframes.counts["full"])
            dropped_text = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()) if n) or "none"
            msg = SceneStatus(state=self._state, keyframes=len(self._keyframes.keyframes),
                              gaussians=0 if self._scene is None else int(self._scene.num_gaussians),
                              progress=float(self._progress),
                              message=f"{self._message}; rejected {self._bad.total}; dropped: {dropped_text}")
        msg.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    # ----------------------------------------------------------------------------------- services
    def _on_query(self, request: QueryObject.Request, response: QueryObject.Response) -> QueryObject.Response:
        if not request.prompt.strip():
            response.success, response.message = False, "empty prompt"
            return response
        scene = self._scene
        if scene is None:
            with self._lock:
                count = len(self._keyframes.keyframes)
            response.success = False
            response.message = (f"scene not ready ({self._state}, {count} keyframes): "
                                "collect keyframes and call ~/reconstruct, or ~/load_scene")
            return response
        response.success, response.message = False, "querying a scene is not implemented yet"
        return response

    def _on_reconstruct(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            count = len(self._keyframes.keyframes)
        response.success = False
        response.message = f"the reconstruction pipeline is not available yet ({count} keyframes collected)"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._keyframes.clear()
            self._sync.clear()
            self._state, self._message, self._progress = "idle", "reset: waiting for camera frames", 0.0
        self._publish_status()
        response.success, response.message = True, "keyframes cleared (the current scene, if any, is kept)"
        return response

    def _on_save_scene(self, request: SceneFile.Request, response: SceneFile.Response) -> SceneFile.Response:
        response.success, response.message = False, "no scene to save: reconstruct or load one first"
        return response

    def _on_load_scene(self, request: SceneFile.Request, response: SceneFile.Response) -> SceneFile.Response:
        response.success, response.message = False, "loading scenes is not implemented yet"
        return response


def spin_node(ros_args: list[str]) -> int:
    """Run the node until shutdown. ``ros_args``: the arguments after ``--ros-args`` (params, remaps)."""
    rclpy.init(args=["langscene", "--ros-args", *ros_args] if ros_args else None)
    try:
        try:
            node = LangsceneNode()
        except ConfigError as exc:
            print(f"langscene run: {exc}")
            return 2
        executor = rclpy.executors.MultiThreadedExecutor(num_threads=6)
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
            pass
        finally:
            node.destroy_node()
        return 0
    except Exception:  # the node must say why it stopped
        traceback.print_exc()
        return 1
    finally:
        if rclpy.ok():
            rclpy.shutdown()
