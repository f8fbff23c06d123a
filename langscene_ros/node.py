"""The ``langscene`` node: camera streams in, keyframes, a background reconstruction, text queries out.

ROS boundary only: message conversion, parameters, threads and services. Every computation lives in
``langscene_core``. Interfaces are the contract of DESIGN.md section 3.
"""

from __future__ import annotations

import threading
import traceback
from collections import Counter
from dataclasses import dataclass

import numpy as np
import rclpy
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from langscene.msg import SceneStatus
from langscene.srv import QueryObject, SceneFile
from langscene_core.capture.frames import Frame, FrameSynchronizer
from langscene_core.capture.keyframes import KeyframeBuffer
from langscene_core.config import ConfigError, LangsceneConfig
from langscene_core.query.answer import CodeLevels, TextEmbeddingCache, answer_prompt, code_levels
from langscene_core.query.objects import Tabletop, pack_rgb, tabletop_of
from langscene_core.reconstruction.models import Models, load_models
from langscene_core.reconstruction.reconstruct import ReconstructionError, reconstruct
from langscene_core.reconstruction.scene import Scene, SceneFileError
from langscene_core.reconstruction.store import SceneStore
from langscene_ros import convert, params, viz
from langscene_ros.query_response import fill_query_response

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def _stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _publish_if_watched(publisher, make_message) -> None:
    """Publish ``make_message()`` only while someone subscribes to the (volatile) topic: unwatched, the
    message would be lost anyway, and building and serialising the RViz output of a query (a
    relevancy cloud of thousands of points, markers) costs milliseconds of every answer."""
    if publisher.get_subscription_count() > 0:
        publisher.publish(make_message())


@dataclass(frozen=True)
class InstalledScene:
    """The scene queries run on, with what every query on it uses, computed once when it is installed:
    its tabletop (the support plane and every Gaussian's height above it) and its codes per level."""

    scene: Scene
    tabletop: Tabletop
    codes: CodeLevels


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
        # immutable snapshot, swapped whole when a new one is ready
        self._installed: InstalledScene | None = None
        self._models: Models | None = None  # loaded on first use (reconstruct, load, query)
        self._text_embeddings: TextEmbeddingCache | None = None  # of self._models' CLIP; queries only
        self._models_lock = threading.Lock()
        self._worker: threading.Thread | None = None

        # One exclusive group per input: each stream is handled in arrival (= stamp) order, which the
        # synchronizer relies on, while the streams and the services run in parallel.
        services = MutuallyExclusiveCallbackGroup()
        camera_qos = qos_profile_sensor_data if self.config.node.camera_qos == "sensor_data" else RELIABLE
        for msg_type, topic, callback in (
            (Image, "image", self._on_image),
            (CameraInfo, "camera_info", self._on_camera_info),
            (Image, "depth", self._on_depth),
            (PoseStamped, "camera_pose", self._on_pose),
        ):
            self.create_subscription(
                msg_type, topic, callback, camera_qos, callback_group=MutuallyExclusiveCallbackGroup()
            )

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
        """Declare one parameter per config leaf with its descriptor (langscene_ros.params); read them back typed."""
        return params.declare_and_read(self)

    # ----------------------------------------------------------------------------------- inputs
    def _reject(self, reason: str) -> None:
        with self._lock:
            count = self._bad.add(reason)
        self.get_logger().warning(f"rejected message ({reason}); {count} so far", throttle_duration_sec=5.0)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._ingest("camera_info", lambda: convert.camera_info_to_intrinsics(msg), self._sync.set_intrinsics)

    def _ingest(self, label: str, to_numpy, add_to_sync) -> None:
        """Convert one input message (``to_numpy()``), reject it with a reason if that fails, else hand
        the value to the synchronizer (``add_to_sync(value)``) and offer the frames it completes."""
        try:
            value = to_numpy()
        except convert.ConversionError as exc:
            self._reject(f"{label}: {exc}")
            return
        with self._lock:
            frames = add_to_sync(value)
        self._take_frames(frames)

    def _on_pose(self, msg: PoseStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.config.node.scene_frame:
            self._reject(f"camera_pose in frame '{msg.header.frame_id}', expected '{self.config.node.scene_frame}'")
            return
        stamp = _stamp_seconds(msg.header.stamp)
        self._ingest("camera_pose", lambda: convert.pose_to_matrix(msg.pose), lambda m: self._sync.add_pose(stamp, m))

    def _on_depth(self, msg: Image) -> None:
        stamp = _stamp_seconds(msg.header.stamp)
        self._ingest("depth", lambda: convert.image_to_depth(msg), lambda d: self._sync.add_depth(stamp, d))

    def _on_image(self, msg: Image) -> None:
        stamp = _stamp_seconds(msg.header.stamp)
        self._ingest("image", lambda: convert.image_to_rgb(msg), lambda rgb: self._sync.add_image(stamp, rgb))

    def _take_frames(self, frames: list[Frame]) -> None:
        """Offer paired frames to the keyframe buffer, rejecting those whose sizes disagree."""
        for frame in frames:
            size = (frame.intrinsics.height, frame.intrinsics.width)
            if frame.rgb.shape[:2] != size:
                self._reject(
                    f"image: size {frame.rgb.shape[1]}x{frame.rgb.shape[0]} does not match "
                    f"camera_info {size[1]}x{size[0]}"
                )
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
            msg = SceneStatus(
                state=self._state,
                keyframes=len(self._keyframes.keyframes),
                gaussians=0 if self._scene is None else int(self._scene.num_gaussians),
                progress=float(self._progress),
                message=f"{self._message}; rejected {self._bad.total}; dropped: {dropped_text}",
            )
        msg.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    # ----------------------------------------------------------------------------------- services
    def _set_state(self, state: str, message: str, progress: float | None = None) -> None:
        with self._lock:
            self._state, self._message = state, message
            if progress is not None:
                self._progress = progress
        self._publish_status()

    def _ensure_models(self) -> Models:
        """Load the models once (FileNotFoundError / ValueError name the missing one)."""
        with self._models_lock:
            if self._models is None:
                self.get_logger().info("loading models")
                self._models = load_models(self.config.models, self.config.densify)
                self._text_embeddings = TextEmbeddingCache(self._models.clip)
            return self._models

    def _header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=self.config.node.scene_frame)

    @property
    def _scene(self) -> Scene | None:
        installed = self._installed
        return None if installed is None else installed.scene

    def _install_scene(self, scene: Scene, message: str) -> None:
        """Swap in a new snapshot and publish its cloud (Gaussian centres with rgb)."""
        self._installed = InstalledScene(scene, tabletop_of(scene.means, self.config.query), code_levels(scene.codes))
        cloud = np.zeros(scene.num_gaussians, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
        cloud["x"], cloud["y"], cloud["z"] = scene.means.T
        cloud["rgb"] = pack_rgb(scene.colors)
        self._scene_cloud_pub.publish(convert.numpy_to_pointcloud2(cloud, self._header()))
        self._set_state("ready", message, 1.0)

    def _on_query(self, request: QueryObject.Request, response: QueryObject.Response) -> QueryObject.Response:
        installed = self._installed  # one snapshot for the whole request
        if not request.prompt.strip():
            response.success, response.message = False, "empty prompt"
            return response
        if installed is None:
            with self._lock:
                count, state = len(self._keyframes.keyframes), self._state
            response.success = False
            response.message = (
                f"scene not ready ({state}, {count} keyframes): "
                "collect keyframes and call ~/reconstruct, or ~/load_scene"
            )
            return response
        if not (np.isfinite(request.relevancy_threshold) and 0.0 <= request.relevancy_threshold < 1.0):
            response.success, response.message = (
                False,
                f"relevancy_threshold {request.relevancy_threshold} is not in [0, 1)",
            )
            return response
        try:
            models = self._ensure_models()
            scene = installed.scene
            result = answer_prompt(
                installed.codes,
                scene.means,
                scene.colors,
                scene.normals,
                models,
                request.prompt,
                self.config.query,
                self.config.grasp,
                extra_negatives=list(request.negatives),
                cache=self._text_embeddings,
                tabletop=installed.tabletop,
                threshold=request.relevancy_threshold or None,
                max_points=request.max_points or None,
                max_grasps=request.max_grasps or None,
            )
        except (ValueError, FileNotFoundError) as exc:
            response.success, response.message = False, f"query failed: {exc}"
            return response
        header = self._header()
        fill_query_response(response, result, header)
        _publish_if_watched(self._relevancy_pub, lambda: response.relevancy_cloud)
        _publish_if_watched(self._grasps_pub, lambda: viz.grasp_pose_array(result.grasps, header))
        _publish_if_watched(
            self._markers_pub, lambda: viz.query_markers(result, request.prompt, header, self.config.grasp)
        )
        return response

    def _on_reconstruct(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            busy = self._worker is not None and self._worker.is_alive()
            keyframes = list(self._keyframes.keyframes)
        if busy:
            response.success, response.message = False, "a reconstruction is already running"
            return response
        if len(keyframes) < 2:
            response.success, response.message = False, f"need at least 2 keyframes, have {len(keyframes)}"
            return response
        self._set_state("reconstructing", f"reconstructing from {len(keyframes)} keyframes", 0.0)
        self._worker = threading.Thread(target=self._reconstruct_in_background, args=(keyframes,), daemon=True)
        self._worker.start()
        response.success = True
        response.message = f"reconstruction started from {len(keyframes)} keyframes; follow ~/status"
        return response

    def _reconstruct_in_background(self, keyframes: list[Frame]) -> None:
        """Worker thread: the current scene stays queryable until the new one replaces it."""

        def progress(fraction: float, message: str) -> None:
            with self._lock:
                self._progress, self._message = float(fraction), message

        try:
            scene = reconstruct(keyframes, self._ensure_models(), self.config, progress)
        except (ReconstructionError, ValueError, FileNotFoundError) as exc:
            self.get_logger().error(f"reconstruction failed: {exc}")
            self._set_state("ready" if self._scene is not None else "error", f"reconstruction failed: {exc}")
            return
        except Exception as exc:  # a bug must not kill the node silently: report it in status
            self.get_logger().error(f"reconstruction crashed: {traceback.format_exc()}")
            self._set_state("ready" if self._scene is not None else "error", f"reconstruction crashed: {exc!r}")
            return
        notes = "; ".join(scene.info.get("notes", []))
        self._install_scene(
            scene, f"{scene.num_gaussians} Gaussians from {len(keyframes)} keyframes" + (f" ({notes})" if notes else "")
        )

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self._keyframes.clear()
            self._sync.clear()
            if self._scene is None:
                self._state, self._message, self._progress = "idle", "reset: waiting for camera frames", 0.0
            else:
                self._message = "keyframes cleared; the current scene is kept"
        self._publish_status()
        response.success, response.message = True, "keyframes cleared (the current scene, if any, is kept)"
        return response

    def _on_save_scene(self, request: SceneFile.Request, response: SceneFile.Response) -> SceneFile.Response:
        scene = self._scene
        if scene is None:
            response.success, response.message = False, "no scene to save: reconstruct or load one first"
            return response
        try:
            store = SceneStore(self.config.node.scene_dir, int(self.config.limits.scene_min_free_mb * 2**20))
            path = store.save(scene, request.path)
        except (SceneFileError, OSError) as exc:
            response.success, response.message = False, f"cannot save to {request.path!r}: {exc}"
            return response
        response.success, response.message = True, f"saved {scene.num_gaussians} Gaussians to {path}"
        return response

    def _on_load_scene(self, request: SceneFile.Request, response: SceneFile.Response) -> SceneFile.Response:
        try:
            store = SceneStore(self.config.node.scene_dir, int(self.config.limits.scene_min_free_mb * 2**20))
            scene, path = store.load(request.path, self._ensure_models().lqc, self.config.models.lqc.checkpoint)
        except (SceneFileError, OSError, ValueError) as exc:
            response.success, response.message = False, f"cannot load {request.path!r}: {exc}"
            return response
        if scene.frame_id != self.config.node.scene_frame:
            response.success = False
            response.message = (
                f"scene is in frame '{scene.frame_id}', the node's scene_frame is '{self.config.node.scene_frame}'"
            )
            return response
        self._install_scene(scene, f"loaded {scene.num_gaussians} Gaussians from {path}")
        response.success, response.message = True, f"loaded {scene.num_gaussians} Gaussians from {path}"
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
