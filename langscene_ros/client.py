"""Client side of the node's services, for the CLI, the demo and the tests."""
from __future__ import annotations

import numpy as np
import rclpy
from rclpy.node import Node

from langscene.srv import QueryObject
from langscene_ros import convert


class ServiceUnavailable(RuntimeError):
    """The node's service did not appear or did not answer in time."""


def call_service(node: Node, srv_type, name: str, request, timeout_s: float = 30.0):
    """Call ``name`` and wait for the answer, spinning ``node``. Raises ServiceUnavailable."""
    client = node.create_client(srv_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise ServiceUnavailable(f"service {name} is not available (is `langscene run` running?)")
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_s)
        if not future.done() or future.result() is None:
            raise ServiceUnavailable(f"service {name} did not answer within {timeout_s:.0f} s")
        return future.result()
    finally:
        node.destroy_client(client)


def query_request(prompt: str, negatives=(), relevancy_threshold: float = 0.0, max_points: int = 0,
                  max_grasps: int = 0) -> QueryObject.Request:
    return QueryObject.Request(prompt=prompt, negatives=list(negatives), relevancy_threshold=float(relevancy_threshold),
                               max_points=int(max_points), max_grasps=int(max_grasps))


def query_response_to_dict(response: QueryObject.Response) -> dict:
    """A JSON-ready summary of a QueryObject answer (poses as position + quaternion xyzw)."""
    def pose_dict(pose) -> dict:
        return {"position": [pose.position.x, pose.position.y, pose.position.z],
                "orientation_xyzw": [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]}

    cloud = convert.pointcloud2_to_numpy(response.relevancy_cloud) if response.relevancy_cloud.fields else np.zeros(0)
    answer = {"success": bool(response.success), "message": response.message,
              "max_relevancy": float(response.max_relevancy), "points": int(cloud.shape[0]),
              "grasps": [{"pose": pose_dict(g.pose.pose), "score": float(g.score), "width": float(g.width)}
                         for g in response.grasps]}
    if response.success and response.object_pose.header.frame_id:
        answer["object"] = {"frame": response.object_pose.header.frame_id, **pose_dict(response.object_pose.pose),
                            "extent": [response.object_extent.x, response.object_extent.y, response.object_extent.z]}
    return answer
