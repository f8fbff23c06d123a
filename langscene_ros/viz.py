"""RViz output of a query: MarkerArray (object box, gripper outlines and approach arrows, label) and
PoseArray of the grasps. All in the header's frame (the scene frame).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, PoseArray, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from langscene_core.config import GraspConfig
from langscene_core.query.grasp.planner import Grasp
from langscene_core.query.objects import ObjectBox, QueryResult
from langscene_ros.convert import matrices_to_poses, matrix_to_pose

NAMESPACE_BOX, NAMESPACE_LABEL, NAMESPACE_GRIPPER, NAMESPACE_APPROACH = "object", "label", "grasp", "approach"
_BOX_COLOR = ColorRGBA(r=0.1, g=0.6, b=1.0, a=0.35)
_LABEL_COLOR = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
_LINE_WIDTH = 0.003  # metres


def _point(p: np.ndarray) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _score_color(score: float, best: float) -> ColorRGBA:
    """Green for the best grasp fading to red for a score of zero."""
    t = 0.0 if best <= 0 else float(np.clip(score / best, 0.0, 1.0))
    return ColorRGBA(r=1.0 - t, g=t, b=0.0, a=0.9)


def box_marker(box: ObjectBox, header: Header) -> Marker:
    """Translucent CUBE at the box pose, scaled to its full extent."""
    return Marker(
        header=header,
        ns=NAMESPACE_BOX,
        id=0,
        type=Marker.CUBE,
        action=Marker.ADD,
        pose=matrix_to_pose(box.pose),
        scale=Vector3(x=float(box.extent[0]), y=float(box.extent[1]), z=float(box.extent[2])),
        color=_BOX_COLOR,
    )


def label_marker(text: str, position: np.ndarray, header: Header) -> Marker:
    """View-facing text centred at ``position`` [3] (scene frame)."""
    marker = Marker(
        header=header,
        ns=NAMESPACE_LABEL,
        id=0,
        type=Marker.TEXT_VIEW_FACING,
        action=Marker.ADD,
        scale=Vector3(z=0.03),
        color=_LABEL_COLOR,
        text=text,
    )
    marker.pose.position = _point(position)
    return marker


def gripper_outline(width: float, config: GraspConfig) -> np.ndarray:
    """[8, 3] LINE_LIST segment ends of the gripper opened to ``width`` in its own frame: two fingers (tips at z = 0),
    the palm across them and a stem behind it."""
    h = width / 2
    fd, pd = config.finger_depth, config.palm_depth
    return np.array(
        [[-h, 0, 0], [-h, 0, -fd], [h, 0, 0], [h, 0, -fd], [-h, 0, -fd], [h, 0, -fd], [0, 0, -fd], [0, 0, -fd - pd]]
    )


def grasp_markers(grasps: tuple[Grasp, ...], header: Header, config: GraspConfig) -> list[Marker]:
    """Per grasp: a gripper outline (LINE_LIST at the grasp pose) and an ARROW along the approach
    ending at the palm, coloured by score (green = best). Marker ids are the grasp ranks."""
    markers = []
    best = grasps[0].score if grasps else 0.0
    for rank, (grasp, pose) in enumerate(zip(grasps, matrices_to_poses([g.pose for g in grasps]))):
        color = _score_color(grasp.score, best)
        markers.append(
            Marker(
                header=header,
                ns=NAMESPACE_GRIPPER,
                id=rank,
                type=Marker.LINE_LIST,
                action=Marker.ADD,
                pose=pose,
                scale=Vector3(x=_LINE_WIDTH),
                color=color,
                points=[_point(p) for p in gripper_outline(grasp.width, config)],
            )
        )
        approach = grasp.pose[:3, 2]
        palm = grasp.pose[:3, 3] - (config.finger_depth + config.palm_depth) * approach
        start = palm - config.approach_distance * approach
        markers.append(
            Marker(
                header=header,
                ns=NAMESPACE_APPROACH,
                id=rank,
                type=Marker.ARROW,
                action=Marker.ADD,
                scale=Vector3(x=_LINE_WIDTH, y=2 * _LINE_WIDTH, z=3 * _LINE_WIDTH),
                color=color,
                points=[_point(start), _point(palm)],
            )
        )
    return markers


def query_markers(result: QueryResult, prompt: str, header: Header, config: GraspConfig) -> MarkerArray:
    """Everything RViz shows for one answer, replacing the previous one (a DELETEALL comes first).

    The label names the prompt, the peak relevancy and the number of grasps; it sits above the box,
    or at the cloud's centroid when no object was found, and is left out when the cloud is empty.
    """
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    text = f"{prompt}: relevancy {result.max_relevancy:.2f}, {len(result.grasps)} grasps"
    if result.object_box is not None:
        markers.append(box_marker(result.object_box, header))
        top = result.object_box.pose[:3, 3] + np.array([0.0, 0.0, np.max(result.object_box.extent) / 2 + 0.03])
        markers.append(label_marker(text, top, header))
    elif len(result.cloud):
        centroid = np.array([result.cloud[axis].mean() for axis in ("x", "y", "z")])
        markers.append(label_marker(f"{prompt}: no object ({len(result.cloud)} relevant points)", centroid, header))
    markers.extend(grasp_markers(result.grasps, header, config))
    return MarkerArray(markers=markers)


def grasp_pose_array(grasps: tuple[Grasp, ...], header: Header) -> PoseArray:
    """Grasp poses, best first (GraspCandidate frame: z approach, x closing, origin between fingertips)."""
    return PoseArray(header=header, poses=matrices_to_poses([g.pose for g in grasps]))
