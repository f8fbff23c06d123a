"""Answers as Foxglove MCAP (``foxglove-sdk``), for a viewer without ROS: open the file in Foxglove.

Topics (all in the scene frame, protobuf ``foxglove.*`` schemas):

- ``/scene_cloud`` ``foxglove.PointCloud``: the scene's Gaussian centres, float32 x, y, z and uint8
  red, green, blue (one message);
- ``/relevancy_cloud`` ``foxglove.PointCloud``: per answer, its relevant Gaussians, float32 x, y, z,
  relevancy and uint8 red, green, blue;
- ``/answers`` ``foxglove.SceneUpdate``: per answer one ``SceneEntity`` (id = the prompt) holding the
  object's box (one ``CubePrimitive``, none when nothing was found), one arrow per grasp (from the
  pre-grasp to the grasp, along the approach) and the prompt as text;
- ``/grasps`` ``foxglove.PosesInFrame``: per answer its grasp poses, best first (gripper frame:
  z = approach, x = closing direction).

Answer i is logged at ``i`` seconds after :data:`EXPORT_START_NS` so a player steps through them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from langscene_core.query.grasp.gripper import Gripper
from langscene_core.query.objects import QueryResult, unpack_rgb

EXPORT_START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
TOPICS = {
    "/scene_cloud": "foxglove.PointCloud",
    "/relevancy_cloud": "foxglove.PointCloud",
    "/answers": "foxglove.SceneUpdate",
    "/grasps": "foxglove.PosesInFrame",
}


def _pose(matrix: np.ndarray):
    from foxglove.messages import Pose, Quaternion, Vector3
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.asarray(matrix)[:3, :3]).as_quat()
    t = np.asarray(matrix)[:3, 3]
    return Pose(
        position=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
        orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def _cloud(points: np.ndarray, rgb: np.ndarray, frame: str, stamp, extra: dict[str, np.ndarray] | None = None):
    """points [N, 3], rgb [N, 3] uint8, extra float32 [N] fields -> foxglove.PointCloud."""
    from foxglove.messages import PackedElementField, PackedElementFieldNumericType, PointCloud

    extra = extra or {}
    dtype = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
        + [(name, "<f4") for name in extra]
        + [("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
    )
    packed = np.zeros(len(points), dtype=dtype)
    packed["x"], packed["y"], packed["z"] = np.asarray(points, dtype=np.float32).T
    for name, values in extra.items():
        packed[name] = values
    packed["red"], packed["green"], packed["blue"] = np.asarray(rgb, dtype=np.uint8).T
    packed["alpha"] = 255
    kinds = {"<f4": PackedElementFieldNumericType.Float32, "|u1": PackedElementFieldNumericType.Uint8}
    fields = [
        PackedElementField(name=name, offset=dtype.fields[name][1], type=kinds[dtype.fields[name][0].str])
        for name in dtype.names
    ]
    return PointCloud(
        timestamp=stamp,
        frame_id=frame,
        pose=_pose(np.eye(4)),
        point_stride=dtype.itemsize,
        fields=fields,
        data=packed.tobytes(),
    )


def write_answers_mcap(
    path: str | Path,
    means: np.ndarray,
    colors: np.ndarray,
    answers: Sequence[tuple[str, QueryResult]],
    frame: str,
    gripper: Gripper,
) -> dict[str, int]:
    """Write the scene (means [N, 3] metres, colors [N, 3] float 0..1) and ``answers`` ((prompt,
    result) pairs, scene frame) to a new MCAP file at ``path``; returns the messages per topic.
    gripper: gives each grasp's pre-grasp (:meth:`Gripper.pregrasp_pose`), where its arrow starts.
    FileExistsError when ``path`` exists."""
    import foxglove
    from foxglove.channels import PointCloudChannel, PosesInFrameChannel, SceneUpdateChannel
    from foxglove.messages import (
        ArrowPrimitive,
        Color,
        CubePrimitive,
        PosesInFrame,
        SceneEntity,
        SceneUpdate,
        TextPrimitive,
        Timestamp,
        Vector3,
    )

    counts = dict.fromkeys(TOPICS, 0)
    writer = foxglove.open_mcap(Path(path))
    try:
        channels = {
            "/scene_cloud": PointCloudChannel("/scene_cloud"),
            "/relevancy_cloud": PointCloudChannel("/relevancy_cloud"),
            "/answers": SceneUpdateChannel("/answers"),
            "/grasps": PosesInFrameChannel("/grasps"),
        }

        def log(topic: str, message, log_ns: int) -> None:
            channels[topic].log(message, log_time=log_ns)
            counts[topic] += 1

        start = Timestamp(sec=EXPORT_START_NS // 10**9, nsec=0)
        rgb = np.clip(np.asarray(colors) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        log("/scene_cloud", _cloud(means, rgb, frame, start), EXPORT_START_NS)
        for i, (prompt, result) in enumerate(answers):
            log_ns = EXPORT_START_NS + i * 10**9
            stamp = Timestamp(sec=log_ns // 10**9, nsec=0)
            cloud = result.cloud
            points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1) if len(cloud) else np.zeros((0, 3))
            colours = unpack_rgb(cloud["rgb"]) if len(cloud) else np.zeros((0, 3), np.uint8)
            log(
                "/relevancy_cloud",
                _cloud(points, colours, frame, stamp, {"relevancy": cloud["relevancy"] if len(cloud) else np.zeros(0)}),
                log_ns,
            )
            cubes, texts = [], []
            if result.object_box is not None:
                box = result.object_box
                cubes.append(
                    CubePrimitive(
                        pose=_pose(box.pose),
                        size=Vector3(x=float(box.extent[0]), y=float(box.extent[1]), z=float(box.extent[2])),
                        color=Color(r=0.1, g=0.9, b=0.2, a=0.4),
                    )
                )
                top = box.pose.copy()
                top[2, 3] += float(box.extent[2]) / 2 + 0.03
                texts.append(TextPrimitive(pose=_pose(top), billboard=True, font_size=14.0, text=prompt))
            arrows = []
            length = max(gripper.approach_distance, 0.02)
            for grasp in result.grasps:
                pregrasp = gripper.pregrasp_pose(grasp.pose)
                # foxglove arrows point along their pose's +x: turn x onto the approach direction z
                along = pregrasp @ np.array([[0, 0, -1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
                arrows.append(
                    ArrowPrimitive(
                        pose=_pose(along),
                        shaft_length=length * 0.8,
                        shaft_diameter=0.004,
                        head_length=length * 0.2,
                        head_diameter=0.01,
                        color=Color(r=0.9, g=0.2, b=0.9, a=1.0),
                    )
                )
            entity = SceneEntity(timestamp=stamp, frame_id=frame, id=prompt, cubes=cubes, arrows=arrows, texts=texts)
            log("/answers", SceneUpdate(entities=[entity]), log_ns)
            log(
                "/grasps",
                PosesInFrame(timestamp=stamp, frame_id=frame, poses=[_pose(g.pose) for g in result.grasps]),
                log_ns,
            )
    finally:
        writer.close()
    return counts
