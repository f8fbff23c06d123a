"""Pack a :class:`~langscene_core.query.objects.QueryResult` into the ``QueryObject`` service response."""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped, Vector3
from std_msgs.msg import Header

from langscene.msg import GraspCandidate, ObjectCandidate
from langscene.srv import QueryObject
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.objects import ObjectBox, QueryResult
from langscene_ros.convert import matrices_to_poses, matrix_to_pose, numpy_to_pointcloud2


def _extent(box: ObjectBox) -> Vector3:
    x, y, z = (float(v) for v in box.extent)
    return Vector3(x=x, y=y, z=z)


def fill_query_response(
    response: QueryObject.Response,
    result: QueryResult,
    header: Header,
    gripper: Gripper,
    skip_cloud: bool = False,
) -> QueryObject.Response:
    """Fill ``response`` from an answered query: status FOUND with an object, else NO_OBJECT (success
    either way: the query ran).

    With no object, ``object_pose`` keeps the identity pose and ``object_extent`` stays zero; the
    message says why. Every stamped field carries ``header`` (the answer's frame). Each grasp's
    ``pregrasp_pose`` is ``gripper.pregrasp_pose`` of it. ``skip_cloud``: the relevancy cloud is left
    empty (the header still set).
    """
    response.success = True
    response.status = QueryObject.Response.FOUND if result.object_box is not None else QueryObject.Response.NO_OBJECT
    response.message = result.message
    response.max_relevancy = float(result.max_relevancy)
    response.relevancy_cloud = numpy_to_pointcloud2(result.cloud[:0] if skip_cloud else result.cloud, header)
    response.object_pose = PoseStamped(header=header)
    response.object_score = float(result.object_score)
    if result.object_box is not None:
        response.object_pose.pose = matrix_to_pose(result.object_box.pose)
        response.object_extent = _extent(result.object_box)
    poses = matrices_to_poses([g.pose for g in result.grasps] + [gripper.pregrasp_pose(g.pose) for g in result.grasps])
    count = len(result.grasps)
    response.grasps = [
        GraspCandidate(
            pose=PoseStamped(header=header, pose=pose),
            pregrasp_pose=PoseStamped(header=header, pose=pregrasp),
            score=float(g.score),
            width=float(g.width),
        )
        for g, pose, pregrasp in zip(result.grasps, poses[:count], poses[count:])
    ]
    alternative_poses = matrices_to_poses([c.box.pose for c in result.alternatives])
    response.alternatives = [
        ObjectCandidate(
            pose=PoseStamped(header=header, pose=pose),
            extent=_extent(c.box),
            score=float(c.score),
            points=len(c.indices),
        )
        for c, pose in zip(result.alternatives, alternative_poses)
    ]
    return response
