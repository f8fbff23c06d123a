"""The ``langscene`` node: a ROS shell over the engine (:class:`langscene_core.engine.LangScene`).

Message conversion, parameters, callback groups and services only; every computation, the state
machine and the scene snapshots live in the engine. Interfaces: DESIGN.md section 3 and
:mod:`langscene_ros.interface`.

Threads: each camera input has its own exclusive callback group (one stream is handled in arrival =
stamp order, which the synchronizer relies on; the streams run in parallel); queries have theirs, the
other services (reconstruct, reset, save, load) another, and the status timer its own, so a slow load
or query never delays the status and a query never waits for a load. The reconstruction itself runs
in the engine's background thread.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import traceback

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from langscene.action import Reconstruct
from langscene.msg import SceneStatus
from langscene.srv import QueryObject, SceneFile
from langscene_core.config import ConfigError, LangsceneConfig
from langscene_core.engine import LangScene, QueryableScene, QueryOptions, State, Status
from langscene_core.errors import LangsceneError, NotReadyError, RequestError
from langscene_core.geometry.transforms import ConnectivityError, UnknownFrameError
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.in_frame import answer_transform, result_in_frame
from langscene_core.query.objects import pack_rgb
from langscene_ros import convert, params, viz
from langscene_ros import interface as api
from langscene_ros.diagnostics import InputMonitor
from langscene_ros.inputs import Inputs, camera_inputs
from langscene_ros.query_response import fill_query_response
from langscene_ros.tf_listener import TfListener

# what a service reports as a plain failure message (the project's exception family, and the operating
# system's word on a file); anything else is a bug: logged with its traceback and counted
EXPECTED_ERRORS = (LangsceneError, OSError)
RCLError = rclpy_implementation.RCLError  # what rcl's C calls raise
# QueryObject statuses of the errors a query may meet (QueryObject.srv); anything else is FAILED
_QUERY_STATUS = (
    (RequestError, QueryObject.Response.BAD_REQUEST),
    (NotReadyError, QueryObject.Response.NOT_READY),
    (UnknownFrameError, QueryObject.Response.BAD_REQUEST),  # a target_frame no transform names
    (ConnectivityError, QueryObject.Response.BAD_REQUEST),  # in another TF tree than the scene
)


def _publish_if_watched(publisher, make_message) -> None:
    """Publish ``make_message()`` only while someone subscribes to the (volatile) topic: unwatched, the
    message would be lost anyway, and building and serialising the RViz output of a query (a
    relevancy cloud of thousands of points, markers) costs milliseconds of every answer."""
    if publisher.get_subscription_count() > 0:
        publisher.publish(make_message())


class LangsceneNode(Node):
    """Node ``langscene``; see the module docstring and README for topics, services and parameters.

    The models are loaded here, at start (a missing model fails the start, not the first request)."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__(api.NODE_NAME, **node_kwargs)
        self.config = self._declare_and_read_parameters()
        self._gripper = Gripper.from_config(self.config.grasp)
        self._internal_errors = 0  # exceptions outside EXPECTED_ERRORS caught at a callback's boundary
        self._status_pub = self.create_publisher(SceneStatus, api.private(api.STATUS), api.LATCHED)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, api.DIAGNOSTICS, api.RELIABLE)
        node = self.config.node
        self._monitor = InputMonitor(
            self.get_fully_qualified_name(),
            required=(api.IMAGE, api.CAMERA_INFO) + ((api.CAMERA_POSE,) if node.pose_source == "topic" else ()),
            optional=(api.DEPTH,),
            silent_s=node.silent_input_s,
        )
        # node.qos: by default the scene cloud and the last answer's grasps and markers stay for an RViz
        # opened later (transient local, depth 1); the relevancy cloud is sent once
        qos = node.qos
        self._scene_cloud_pub = self.create_publisher(
            PointCloud2, api.private(api.SCENE_CLOUD), api.output_qos(qos.scene_cloud)
        )
        self._relevancy_pub = self.create_publisher(
            PointCloud2, api.private(api.RELEVANCY_CLOUD), api.output_qos(qos.relevancy_cloud)
        )
        self._grasps_pub = self.create_publisher(PoseArray, api.private(api.GRASPS), api.output_qos(qos.markers))
        self._markers_pub = self.create_publisher(MarkerArray, api.private(api.MARKERS), api.output_qos(qos.markers))
        self._drawing_lock = threading.Lock()
        self._undrawn_answer = None  # (result, prompt, header, cloud or None) of the newest answer not yet drawn
        self._draw_guard = self.create_guard_condition(
            self._draw_last_answer, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.engine = LangScene(
            self.config,
            on_status=self._publish_status,
            on_scene=self._publish_scene_cloud,
            clock=lambda: self.get_clock().now().nanoseconds * 1e-9,
        )
        self.get_logger().info("loading models")
        self.engine.load_models()  # publishes "loading models", then "models loaded in X s"
        self.get_logger().info(self.engine.status().message)
        if self.config.node.initial_scene:
            try:
                self.engine.load(self.config.node.initial_scene)
            except (LangsceneError, OSError) as exc:  # the operator named a scene: a start without it is wrong
                raise ConfigError(f"node.initial_scene {self.config.node.initial_scene!r}: {exc}") from exc
            self.get_logger().info(self.engine.status().message)
        self._subscribe_to_inputs()
        self._advertise_services()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(
            self.config.node.status_period_s, self._on_status_timer, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.get_logger().info(
            f"langscene ready: waiting for image, camera_info and poses from {self.config.node.pose_source} (depth optional)"
        )

    # ----------------------------------------------------------------------------------- parameters
    def _declare_and_read_parameters(self) -> LangsceneConfig:
        """Declare one parameter per config leaf with its descriptor (langscene_ros.params); read them back typed."""
        return params.declare_and_read(self)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """``ros2 param set``: query.* and grasp.* apply to the next query; a bad value or any other
        section is refused with the reason (the others are also declared read-only)."""
        try:
            config = params.with_parameters(self.config, parameters)
            self.engine.update_config(config.query, config.grasp)
        except Exception as exc:  # noqa: BLE001 - a refused set, never the node's end
            return SetParametersResult(successful=False, reason=self._failure("parameters not set", exc))
        self.config, self._gripper = config, Gripper.from_config(config.grasp)
        self.get_logger().info("set " + ", ".join(f"{p.name} = {p.value!r}" for p in parameters))
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------------- anatomy
    def _subscribe_to_inputs(self) -> None:
        qos = self.config.node.qos
        self._inputs = Inputs(self.engine, self.config.node, self._reject, self._internal_error, self._monitor.seen)
        tf_poses = self.config.node.pose_source == "tf"
        # the engine's transform buffer, fed from /tf and /tf_static: the camera poses with pose_source tf
        # (images waiting for theirs are retried on each update), and the answers' target frames always
        self._tf = TfListener(
            self,
            self.engine.transforms,
            on_update=self.engine.transforms_updated if tf_poses else None,
            callback_group=MutuallyExclusiveCallbackGroup(),
            reject=self.engine.reject,  # counted in ~/status and /diagnostics like any refused input
            internal_error=self._internal_error,
        )
        # one exclusive group per input: a compressed stream decodes on its own thread, never delaying
        # the other inputs
        for camera_input in camera_inputs(self.config.node):
            self.create_subscription(
                camera_input.type,
                camera_input.topic(self.resolve_topic_name),
                getattr(self._inputs, camera_input.handler),
                api.input_qos(qos.pose if camera_input.label == api.CAMERA_POSE else qos.camera),
                callback_group=MutuallyExclusiveCallbackGroup(),
            )

    def _advertise_services(self) -> None:
        control = MutuallyExclusiveCallbackGroup()
        for srv_type, name, callback, group in (
            (QueryObject, api.QUERY_OBJECT, self._on_query, MutuallyExclusiveCallbackGroup()),
            (Trigger, api.RECONSTRUCT, self._on_reconstruct, control),
            (Trigger, api.RESET, self._on_reset, control),
            (Trigger, api.CLEAR_SCENE, self._on_clear_scene, control),
            (SceneFile, api.SAVE_SCENE, self._on_save_scene, control),
            (SceneFile, api.LOAD_SCENE, self._on_load_scene, control),
        ):
            self.create_service(
                srv_type,
                api.private(name),
                callback,
                qos_profile=api.service_qos(self.config.node.service_queue_depth),
                callback_group=group,
            )
        # reentrant: a cancel request is taken while the goal's execute callback waits for the engine
        self._reconstruct_action = ActionServer(
            self,
            Reconstruct,
            api.private(api.RECONSTRUCT_SCENE),
            execute_callback=self._execute_reconstruction,
            goal_callback=self._on_reconstruction_goal,
            cancel_callback=lambda goal: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )

    # ----------------------------------------------------------------------------------- inputs
    def _reject(self, reason: str, detail: str, count: int) -> None:
        self.get_logger().warning(
            f"rejected message ({reason}{detail and ': ' + detail}); {count} so far", throttle_duration_sec=5.0
        )

    def _internal_error(self, what: str) -> str:
        """Log the exception being handled with its traceback, count it; returns its one-line repr."""
        self._internal_errors += 1
        self.get_logger().error(f"{what}: {traceback.format_exc()}")
        return repr(sys.exc_info()[1])

    # ----------------------------------------------------------------------------------- outputs
    def _header(self, frame: str = "", stamp: float | None = None) -> Header:
        """A header in ``frame`` ('' : the scene frame) at ``stamp`` seconds (None: now)."""
        when = self.get_clock().now().to_msg() if stamp is None else convert.seconds_to_stamp(stamp)
        return Header(stamp=when, frame_id=frame or self.config.node.scene_frame)

    def _publish_status(self, status: Status) -> None:
        errors = f"; internal errors {self._internal_errors}" if self._internal_errors else ""
        msg = SceneStatus(
            state=status.state.value,
            keyframes=status.keyframes,
            gaussians=status.gaussians,
            progress=status.progress,
            message=status.summary() + errors,
        )
        msg.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def _publish_scene_cloud(self, snapshot: QueryableScene | None) -> None:
        """The new scene's Gaussian centres with rgb (latched); an empty cloud once the scene is cleared."""
        count = 0 if snapshot is None else snapshot.scene.num_gaussians
        cloud = np.zeros(count, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4")])
        if snapshot is not None:
            cloud["x"], cloud["y"], cloud["z"] = snapshot.scene.means.T
            cloud["rgb"] = pack_rgb(snapshot.scene.colors)
        self._scene_cloud_pub.publish(convert.numpy_to_pointcloud2(cloud, self._header()))

    def _on_status_timer(self) -> None:
        try:
            status = self.engine.status()
            self._publish_status(status)
            self._diagnostics_pub.publish(self._monitor.report(status, self._internal_errors))
        except Exception:  # noqa: BLE001 - a status that cannot be sent now is sent at the next tick
            self._internal_error("status")

    # ----------------------------------------------------------------------------------- services
    def _failure(self, what: str, exc: Exception) -> str:
        """The message of a failed request; an unexpected exception is a bug: its traceback is logged and
        counted (``internal errors`` in the status), and the node carries on with its scene."""
        if isinstance(exc, EXPECTED_ERRORS):
            return f"{what}: {exc}"
        return f"{what}: internal error {self._internal_error(what)}"

    def _on_query(self, request: QueryObject.Request, response: QueryObject.Response) -> QueryObject.Response:
        """QueryObject v2 (DESIGN section 3): FOUND / NO_OBJECT answers in the requested frame, else the
        status of what went wrong (_QUERY_STATUS; anything else FAILED) with a message."""
        node = self.config.node
        start = time.perf_counter()
        try:
            options = QueryOptions(
                negatives=tuple(request.negatives),
                relevancy_threshold=request.relevancy_threshold or None,
                max_points=request.max_points or None,
                max_grasps=request.max_grasps or None,
                max_objects=request.max_objects or None,
            )
            frame, stamp, target_from_scene = answer_transform(
                self.engine.transforms, node.scene_frame, request.target_frame, node.output_frame
            )
            result = self.engine.query(request.prompt, options)
            if frame != node.scene_frame:
                result = result_in_frame(result, target_from_scene)
        except Exception as exc:  # noqa: BLE001 - the service answers; the node stays up
            status = next((code for kind, code in _QUERY_STATUS if isinstance(exc, kind)), None)
            response.success = False
            response.status = QueryObject.Response.FAILED if status is None else status
            response.message = self._failure("query failed", exc)
            return response
        header = self._header(frame, stamp)
        fill_query_response(response, result, header, self._gripper, skip_cloud=request.skip_cloud)
        with self._drawing_lock:  # drawn by _draw_last_answer, off the query path
            cloud = None if request.skip_cloud else response.relevancy_cloud
            self._undrawn_answer = (result, request.prompt, header, cloud)
        self._draw_guard.trigger()
        self._monitor.queried(time.perf_counter() - start)
        return response

    def _draw_last_answer(self) -> None:
        """RViz output of the newest answer: relevancy cloud (while watched), grasps and markers. Runs
        in its own callback group, so building and sending it is not part of any query's round trip;
        answers that arrive while it runs are drawn as one, the newest (RViz shows the last answer).
        Of a burst of 20 planners' queries most answers are never drawn."""
        with self._drawing_lock:
            answer, self._undrawn_answer = self._undrawn_answer, None
        if answer is None:
            return
        result, prompt, header, cloud = answer
        try:
            if cloud is not None:
                _publish_if_watched(self._relevancy_pub, lambda: cloud)
            self._grasps_pub.publish(viz.grasp_pose_array(result.grasps, header))
            self._markers_pub.publish(viz.query_markers(result, prompt, header, self.config.grasp))
        except Exception:  # noqa: BLE001 - the answer was given; the next one is drawn
            self._internal_error("drawing an answer")

    def _on_reconstruct(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            message = self.engine.start_reconstruction()
        except Exception as exc:  # noqa: BLE001
            response.success, response.message = False, self._failure("cannot reconstruct", exc)
            return response
        response.success, response.message = True, f"{message}; follow {api.private(api.STATUS)}"
        return response

    def _on_reconstruction_goal(self, goal: Reconstruct.Goal) -> GoalResponse:
        """A second goal while a reconstruction runs is rejected (the running one goes on); so is any
        goal when the check itself fails (rclpy calls this outside any boundary of its own)."""
        try:
            return GoalResponse.REJECT if self.engine.busy else GoalResponse.ACCEPT
        except Exception:  # noqa: BLE001
            self._internal_error("reconstruction goal")
            return GoalResponse.REJECT

    def _execute_reconstruction(self, goal_handle) -> Reconstruct.Result:
        """Run the engine's reconstruction for one goal: feedback (stage, progress, never decreasing)
        while it runs; cancel stops it at its next step and leaves the previous scene answering."""
        result = Reconstruct.Result()
        before = self.engine.scene
        try:
            self.engine.start_reconstruction(goal_handle.request.mode)
        except Exception as exc:  # noqa: BLE001 - busy (a goal raced past the goal check), no keyframes...
            goal_handle.abort()
            result.message = self._failure("cannot reconstruct", exc)
            return result
        progress = 0.0
        cancelled = False
        while not self.engine.wait(0.2):
            if goal_handle.is_cancel_requested and not cancelled:
                cancelled = self.engine.cancel()
            status = self.engine.status()
            if status.progress > progress:
                progress = status.progress
                goal_handle.publish_feedback(Reconstruct.Feedback(stage=status.message, progress=progress))
        status = self.engine.status()
        scene = self.engine.scene
        result.message = status.message
        if status.state is State.READY and scene is not None and scene is not before:
            goal_handle.succeed()
            result.success, result.gaussians = True, scene.num_gaussians
        elif goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            response.success, response.message = True, self.engine.reset()
        except Exception as exc:  # noqa: BLE001
            response.success, response.message = False, self._failure("cannot reset", exc)
        return response

    def _on_clear_scene(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            response.success, response.message = True, self.engine.clear_scene()
            self._publish_scene_cloud(None)
        except Exception as exc:  # noqa: BLE001
            response.success, response.message = False, self._failure("cannot clear the scene", exc)
        return response

    def _on_save_scene(self, request: SceneFile.Request, response: SceneFile.Response) -> SceneFile.Response:
        try:
            path, count = self.engine.save(request.path)
        except Exception as exc:  # noqa: BLE001
            response.success, response.message = False, self._failure(f"cannot save to {request.path!r}", exc)
            return response
        response.success, response.message = True, f"saved {count} Gaussians to {path}"
        return response

    def _on_load_scene(self, request: SceneFile.Request, response: SceneFile.Response) -> SceneFile.Response:
        try:
            snapshot = self.engine.load(request.path)
            path = self.engine.store.resolve(request.path)
        except Exception as exc:  # noqa: BLE001
            response.success, response.message = False, self._failure(f"cannot load {request.path!r}", exc)
            return response
        response.success, response.message = True, f"loaded {snapshot.num_gaussians} Gaussians from {path}"
        return response


def spin_node(ros_args: list[str]) -> int:
    """Run the node until shutdown. ``ros_args``: the arguments after ``--ros-args`` (params, remaps)."""
    rclpy.init(args=["langscene", "--ros-args", *ros_args] if ros_args else None)
    try:
        try:
            node = LangsceneNode()
        except (ConfigError, FileNotFoundError, ValueError) as exc:  # a bad parameter, a missing model
            print(f"langscene run: {exc}")
            return 2
        # Modules and models stay for the process's life: frozen, later collections no longer walk
        # them (a full collection over torch's objects is a pause inside some answer). The collector
        # is off during the start-up when `langscene run` starts the node (see there). The start-up's
        # own garbage (~10k unreachable objects) is frozen with it rather than collected: collecting
        # first took 0.6 s before the node could serve.
        gc.freeze()
        gc.enable()
        # a thread per callback group: /tf, 4 inputs, queries, other services, the action (2: a goal and
        # its cancel), status, drawing answers
        executor = rclpy.executors.MultiThreadedExecutor(num_threads=11)
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
            pass
        except RCLError:
            # rclpy's SIGTERM handler can shut the context down between the executor's check of it and
            # its next wait set, which then raises this instead of ExternalShutdownException (CI,
            # test_bag_play's teardown: "failed to initialize wait set: the given context is not
            # valid", exit 1): a shutdown like the others. With the context still valid it is an error.
            if rclpy.ok():
                raise
        finally:
            # A reconstruction still running would be a daemon thread inside torch when the interpreter
            # exits, and that aborts the process ("terminate called without an active exception", exit
            # -6, seen on SIGTERM during a rebuild): stop it at its next step first.
            wait_s = node.config.node.shutdown_wait_s
            stopped = not node.engine.cancel() or node.engine.wait(wait_s)
            node.destroy_node()
        if not stopped:
            # Its step is longer than the wait (a slow CPU under load): end the process without the
            # interpreter's exit, which would abort. Nothing is lost: the half-built scene is discarded
            # on any shutdown, and scene files are written crash-safely by the services.
            print(f"langscene: the reconstruction did not stop within {wait_s:g} s; exiting", flush=True)
            if rclpy.ok():  # on SIGTERM / SIGINT rclpy's own handler has already shut the context down
                rclpy.shutdown()
            sys.stderr.flush()
            os._exit(0)
        return 0
    except Exception:  # the node must say why it stopped
        traceback.print_exc()
        return 1
    finally:
        if rclpy.ok():
            rclpy.shutdown()
