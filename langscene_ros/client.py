"""Client side of the node's interface, for the CLI, the demo and the tests."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from langscene.msg import SceneStatus
from langscene.srv import QueryObject
from langscene_ros import convert
from langscene_ros import interface as api


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Stop a node process started by the demo, a bench or a test: SIGTERM (the node shuts down
    cleanly), then SIGKILL if it has not exited within ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ServiceUnavailable(RuntimeError):
    """The node's service did not appear or did not answer in time."""


class NodeClient:
    """An rclpy participant in its own context, spun in a background thread.

    Follows the node's ``~/status`` (``statuses``, newest last) and calls its services. ``target`` is
    the node's fully qualified name, e.g. ``/langscene`` or ``/robot/langscene``.
    """

    def __init__(self, name: str = "langscene_client", target: str = f"/{api.NODE_NAME}") -> None:
        self.target = target.rstrip("/")
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.statuses: list[SceneStatus] = []
        self._clients: dict = {}
        self.node.create_subscription(
            SceneStatus, api.node_path(api.STATUS, self.target), self.statuses.append, api.LATCHED
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def call(self, srv_type, service: str, request, timeout_s: float = 30.0, resend_after_s: float | None = None):
        """Call ``<target>/<service>`` and return the response. Raises ServiceUnavailable.

        Clients are kept per service, so repeated calls skip service discovery. ``resend_after_s``
        (idempotent requests only, such as queries): send the request again whenever no answer came
        for that many seconds, and return the first answer to any copy. A reply can be lost by the
        middleware while the node has not yet matched a new client's response reader (the first calls
        of a fresh planner process in bench/query_concurrency.py: answered by the node, never received)."""
        name = service if service.startswith("/") else api.node_path(service, self.target)
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise ServiceUnavailable(f"service {name} is not available (is `langscene run` running?)")
        done = threading.Event()
        futures = []
        deadline = time.monotonic() + timeout_s
        while True:
            futures.append(client.call_async(request))
            futures[-1].add_done_callback(lambda _: done.set())
            left = deadline - time.monotonic()
            resend = resend_after_s is not None and left > resend_after_s
            if done.wait(resend_after_s if resend else max(left, 0.0)) or not resend:
                break
        answered = [f.result() for f in futures if f.done() and f.result() is not None]
        for future in futures:
            if not future.done():
                client.remove_pending_request(future)
        if not answered:
            raise ServiceUnavailable(f"service {name} did not answer within {timeout_s:.0f} s")
        return answered[0]

    def close(self) -> None:
        """Stop spinning, then destroy the node and the context. The spin thread is joined first: a
        process that exits while it still runs in rclpy aborts ('terminate called without an active
        exception', exit code 134)."""
        self.executor.shutdown()
        self._thread.join(timeout=10.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def query_request(
    prompt: str,
    negatives=(),
    relevancy_threshold: float = 0.0,
    max_points: int = 0,
    max_grasps: int = 0,
    max_objects: int = 0,
    skip_cloud: bool = False,
    target_frame: str = "",
) -> QueryObject.Request:
    """A QueryObject request; 0 / '' take the node's defaults (srv/QueryObject.srv)."""
    return QueryObject.Request(
        prompt=prompt,
        negatives=list(negatives),
        relevancy_threshold=float(relevancy_threshold),
        max_points=int(max_points),
        max_grasps=int(max_grasps),
        max_objects=int(max_objects),
        skip_cloud=bool(skip_cloud),
        target_frame=target_frame,
    )


def query_response_to_dict(response: QueryObject.Response) -> dict:
    """A JSON-ready summary of a QueryObject answer (poses as position + quaternion xyzw)."""

    def pose_dict(pose) -> dict:
        return {
            "position": [pose.position.x, pose.position.y, pose.position.z],
            "orientation_xyzw": [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w],
        }

    cloud = convert.pointcloud2_to_numpy(response.relevancy_cloud) if response.relevancy_cloud.fields else np.zeros(0)
    answer = {
        "success": bool(response.success),
        "message": response.message,
        "max_relevancy": float(response.max_relevancy),
        "points": int(cloud.shape[0]),
        "grasps": [
            {"pose": pose_dict(g.pose.pose), "score": float(g.score), "width": float(g.width)} for g in response.grasps
        ],
    }
    extent = response.object_extent
    if response.success and min(extent.x, extent.y, extent.z) > 0.0:  # a zero extent: no object found
        answer["object"] = {
            "frame": response.object_pose.header.frame_id,
            **pose_dict(response.object_pose.pose),
            "extent": [response.object_extent.x, response.object_extent.y, response.object_extent.z],
        }
    return answer
