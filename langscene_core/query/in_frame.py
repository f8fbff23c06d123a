"""An answer moved from the scene frame into another frame (the request's target frame, or the
node's output frame), e.g. a planner's ``base_link``.

:func:`answer_transform` picks the frame (the request's, else the output frame, else the scene
frame) and looks up ``target_from_scene`` and its stamp in a transform buffer
(langscene_core.geometry.transforms); :func:`result_in_frame` moves the answer with it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from langscene_core.geometry.transforms import TransformBuffer, split_transform, transform_points
from langscene_core.query.objects import ObjectBox, QueryResult


def result_in_frame(result: QueryResult, target_from_scene: np.ndarray) -> QueryResult:
    """The same answer with every position and orientation expressed in the target frame.

    target_from_scene: rigid [4, 4] float64 (InvalidTransformError otherwise). Moves the relevancy
    cloud's x, y, z (float32 as before), the object box pose (extents unchanged), the alternatives'
    box poses and each grasp's
    pose and contacts; pre-grasp poses, derived from the grasp poses, follow. Relevancies, scores,
    widths and indices are unchanged.
    """
    split_transform(target_from_scene)  # rigid, or InvalidTransformError
    matrix = np.asarray(target_from_scene, dtype=np.float64)
    cloud = result.cloud.copy()
    if len(cloud):
        xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)
        moved = transform_points(matrix, xyz).astype(np.float32)
        cloud["x"], cloud["y"], cloud["z"] = moved[:, 0], moved[:, 1], moved[:, 2]
    box = result.object_box
    if box is not None:
        box = ObjectBox(pose=matrix @ box.pose, extent=box.extent.copy())
    grasps = tuple(
        dataclasses.replace(grasp, pose=matrix @ grasp.pose, contacts=transform_points(matrix, grasp.contacts))
        for grasp in result.grasps
    )
    alternatives = tuple(
        dataclasses.replace(c, box=ObjectBox(pose=matrix @ c.box.pose, extent=c.box.extent.copy()))
        for c in result.alternatives
    )
    return dataclasses.replace(result, cloud=cloud, object_box=box, grasps=grasps, alternatives=alternatives)


def answer_transform(
    transforms: TransformBuffer, scene_frame: str, requested: str = "", output_frame: str = ""
) -> tuple[str, float, np.ndarray]:
    """Where an answer goes: (frame, stamp, target_from_scene [4, 4]).

    frame: ``requested`` (the query's target_frame), else ``output_frame``, else ``scene_frame``.
    stamp: for another frame, the time of the transform used, the latest at which its whole chain has
    data (0.0 for a static chain): stamped with it, the answer transforms back exactly in a planner's
    own buffer; 0.0 for the scene frame itself (no transform used; tf2 reads time 0 as "the latest", so
    a planner transforming the answer into its own frames uses its newest transform, where the
    answer's wall-clock time would ask its buffer for the future and fail). Raises UnknownFrameError naming
    an unknown frame, or another TransformError (e.g. the frames are in different trees).
    """
    frame = requested or output_frame or scene_frame
    if frame == scene_frame:
        return frame, 0.0, np.eye(4)
    stamp = transforms.latest_stamp(frame, scene_frame)
    return frame, stamp, transforms.lookup(frame, scene_frame, stamp)
