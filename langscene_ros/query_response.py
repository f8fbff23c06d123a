"""Pack a :class:`~langscene_core.query.objects.QueryResult` into the ``QueryObject`` service response."""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped, Vector3
from std_msgs.msg import Header

from langscene.msg import GraspCandidate
from langscene.srv import QueryObject
from langscene_core.query.objects import QueryResult
from langscene_ros.convert import matrices_to_poses, matrix_to_pose, numpy_to_pointcloud2


def fill_query_response(response: QueryObject.Response, result: QueryResult, header: Header) -> QueryObject.Response:
    """Fill ``response`` from an answered query (success: the query ran, whatever it found).

    With no object, ``object_pose`` keeps the identity pose and ``object_extent`` stays zero; the
    message says why. Every stamped field carries ``header`` (scene frame).
    """
    response.success = True
    response.message = result.message
    response.max_relevancy = float(result.max_relevancy)
    response.relevancy_cloud = numpy_to_pointcloud2(result.cloud, header)
    response.object_pose = PoseStamped(header=header)
    if result.object_box is not None:
        response.object_pose.pose = matrix_to_pose(result.object_box.pose)
        x, y, z = (float(v) for v in result.object_box.extent)
        response.object_extent = Vector3(x=x, y=y, z=z)
    poses = matrices_to_poses([g.pose for g in result.grasps])
    response.grasps = [
        GraspCandidate(pose=PoseStamped(header=header, pose=pose), score=float(g.score), width=float(g.width))
        for g, pose in zip(result.grasps, poses)
    ]
    return response
