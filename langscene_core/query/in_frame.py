"""An answer moved from the scene frame into another frame (the request's target frame, or the
node's output frame), e.g. a planner's ``base_link``.

Take ``target_from_scene`` from a transform buffer: ``TransformBuffer.lookup(target_frame,
scene_frame, stamp)`` (langscene_core.geometry.transforms); an unknown target frame raises its
UnknownFrameError, which names the frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from langscene_core.geometry.transforms import split_transform, transform_points
from langscene_core.query.objects import ObjectBox, QueryResult


def result_in_frame(result: QueryResult, target_from_scene: np.ndarray) -> QueryResult:
    """The same answer with every position and orientation expressed in the target frame.

    target_from_scene: rigid [4, 4] float64 (InvalidTransformError otherwise). Moves the relevancy
    cloud's x, y, z (float32 as before), the object box pose (extents unchanged) and each grasp's
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
    return dataclasses.replace(result, cloud=cloud, object_box=box, grasps=grasps)
