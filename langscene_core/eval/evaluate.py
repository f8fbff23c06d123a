"""Evaluation of a reconstructed scene against a world dataset (DESIGN.md sections 6 and 8).

2D (LERF-OVS protocol, as LangSplat evaluates it), per eval view and object name:

- the per-pixel relevancy map of the prompt is rendered at the eval camera (:func:`pixel_relevancy`);
- localization: the argmax pixel of ``0.5 * (box_filter(map) + map)`` lies inside any bbox of the
  category (:func:`localization_hit`);
- IoU: the map, min-max normalised, thresholded at 0.4, against the union of the category's polygons
  (:func:`normalized_iou`).

2D baseline (mode ``baseline_2d``, :func:`evaluate_baseline`): the same 2D metrics on the CLIP relevancy
map of the eval view's nearest keyframe, taken as is (no 3D, no LQC).

3D, per object name: ``QueryableScene.answer`` (relevancy, ``query_object``, the open-set check); the error of
the object box centre against the true mesh's bounding-box centre, and every returned grasp checked
against the true geometry (``world.grasp_check.check_grasp``).

Result layout (:func:`evaluate`)::

    {"loc_acc": float 0..1 | None, "miou": float 0..1 | None, "center_error_m": float | None,
     "grasp_valid_rate": float 0..1 | None, "views": int, "names": [str] (3D), "found": int (3D),
     "per_query": [{"kind": "2d", "view": "eval_0000", "name": str, "hit": bool, "iou": float,
                    "level": int, "argmax_xy": [x, y] (argmax pixel), "keyframe": int (baseline only)},
                   {"kind": "3d", "name": str, "found": bool, "center_error_m": float | None,
                    "grasps": int, "grasps_valid": int, "best_grasp_valid": bool | None,
                    "max_relevancy": float}]}

None where nothing was measured (no labelled views, no object found, no grasp returned).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from scipy.ndimage import uniform_filter

from langscene_core.capture.frames import Frame
from langscene_core.capture.keyframes import KeyframeBuffer
from langscene_core.config import GraspConfig, KeyframeConfig, LangsceneConfig
from langscene_core.engine import LangScene, QueryableScene
from langscene_core.eval.grasp_check import check_grasp
from langscene_core.field.render import render
from langscene_core.geometry.camera import Intrinsics
from langscene_core.language.features import MaskFeatures, mask_features
from langscene_core.query.answer import prompt_relevancy, scene_relevancy
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.reconstruction.models import Models
from langscene_core.reconstruction.scene import Scene
from langscene_core.sim import build_world
from langscene_core.sim.dataset import Dataset
from langscene_core.sim.labels import polygon_mask
from langscene_core.sim.scene import World

MODES = ("dense", "sparse", "sparse_trimap", "baseline_2d")
IOU_THRESHOLD = 0.4  # LangSplat: fraction of the normalised relevancy range
# LangSplat box-filters with a 30 px kernel on ~1000 px wide LERF images; the same fraction of the width.
FILTER_WIDTH_FRACTION = 0.03
# A pixel's rendered latent is alpha-weighted: below this coverage it is shrunk towards the origin and
# its nearest code is meaningless, so such pixels (and the background) get relevancy 0.
MIN_ALPHA = 0.5


def filter_size(width: int) -> int:
    """Odd box-filter side in pixels for an image ``width`` pixels wide (at least 3)."""
    size = max(3, int(round(FILTER_WIDTH_FRACTION * width)))
    return size if size % 2 else size + 1


def localization_score(relevancy_map: np.ndarray, size: int) -> np.ndarray:
    """[H, W] float64 mean of the ``size`` x ``size`` box-filtered map and the raw map [H, W]."""
    raw = np.asarray(relevancy_map, dtype=np.float64)
    return 0.5 * (uniform_filter(raw, size=size, mode="nearest") + raw)


def localization_hit(relevancy_map: np.ndarray, boxes: Sequence[Sequence[float]], size: int) -> tuple[bool, list[int]]:
    """Whether the argmax pixel of :func:`localization_score` lies in any box.

    relevancy_map: [H, W]. boxes: [[x1, y1, x2, y2], ...] continuous pixel coordinates (pixel (c, r)
    covers [c, c + 1] x [r, r + 1]; the labels' bbox convention). Returns (hit, [x, y] argmax pixel).
    """
    score = localization_score(relevancy_map, size)
    row, col = np.unravel_index(int(np.argmax(score)), score.shape)
    x, y = col + 0.5, row + 0.5
    hit = any(x1 <= x <= x2 and y1 <= y <= y2 for x1, y1, x2, y2 in boxes)
    return hit, [int(col), int(row)]


def normalized_iou(relevancy_map: np.ndarray, mask: np.ndarray, threshold: float = IOU_THRESHOLD) -> float:
    """IoU of ``(map - min) / (max - min) > threshold`` with ``mask``; relevancy_map: [H, W] float,
    mask: [H, W] bool. A constant map predicts nothing."""
    values = np.asarray(relevancy_map, dtype=np.float64)
    if values.shape != mask.shape:
        raise ValueError(f"relevancy map {values.shape} and mask {mask.shape} differ in shape")
    span = values.max() - values.min()
    predicted = (values - values.min()) / span > threshold if span > 0 else np.zeros(mask.shape, bool)
    union = np.logical_or(predicted, mask).sum()
    return float(np.logical_and(predicted, mask).sum() / union) if union else 0.0


def view_record(
    view: str, name: str, labels: dict[str, Any], relevancy_map: np.ndarray, level: int, size: int
) -> dict[str, Any]:
    """The 2D record of one (view, name): localization hit and IoU of ``relevancy_map`` [H, W] against
    the view's LERF-OVS ``labels``; ``size``: the box filter's side (:func:`filter_size`)."""
    hit, xy = localization_hit(relevancy_map, category_boxes(labels, name), size)
    return {
        "kind": "2d",
        "view": view,
        "name": name,
        "hit": hit,
        "level": level,
        "iou": normalized_iou(relevancy_map, category_mask(labels, name)),
        "argmax_xy": xy,
    }


def category_boxes(labels: dict[str, Any], category: str) -> list[list[float]]:
    """Bboxes [x1, y1, x2, y2] of every labelled part of ``category`` in a LERF-OVS label dict."""
    return [o["bbox"] for o in labels["objects"] if o["category"] == category]


def category_mask(labels: dict[str, Any], category: str) -> np.ndarray:
    """[H, W] bool union of the polygons of ``category`` in a LERF-OVS label dict."""
    h, w = labels["info"]["height"], labels["info"]["width"]
    mask = np.zeros((h, w), dtype=bool)
    for o in labels["objects"]:
        if o["category"] == category:
            mask |= polygon_mask(o["segmentation"], h, w)
    return mask


def pixel_codes(
    scene: Scene, models: Models, intrinsics: Intrinsics, cam_to_world: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """LQC code of every pixel's rendered latent at one camera.

    cam_to_world: [4, 4] OpenCV camera, scene frame. Returns (codes [H * W, L] int64, covered [H * W]
    bool: rendered alpha >= MIN_ALPHA).
    """
    with torch.no_grad():
        out = render(scene.gaussians, intrinsics, cam_to_world, rgb=False, normal=False, latents=True)
        latents = out.latents  # [L, H, W, 3]
        levels = latents.shape[0]
        flat = latents.permute(1, 2, 0, 3).reshape(-1, latents.shape[-1]).to(models.lqc.codebook.device)
        codes = models.lqc.code_of(flat).reshape(-1, levels).cpu().numpy().astype(np.int64)
    return codes, (out.alpha.reshape(-1) >= MIN_ALPHA).cpu().numpy()


def pixel_relevancy(
    codes: np.ndarray,
    covered: np.ndarray,
    shape: tuple[int, int],
    models: Models,
    prompt: str,
    negatives: Sequence[str],
) -> tuple[np.ndarray, int]:
    """[H, W] float32 relevancy map of ``prompt`` and the level that answered.

    codes: [H * W, L] int64 and covered: [H * W] bool from :func:`pixel_codes`. The covered pixels'
    codes go through ``scene_relevancy`` (the same code table, and LangSplat's level choice: the level
    with the highest maximum); uncovered pixels get 0.
    """
    values = np.zeros(covered.shape, dtype=np.float32)
    result = scene_relevancy(codes[covered], models, prompt, negatives)
    values[covered] = result.values
    return values.reshape(shape), result.level


def mask_relevancy(
    features: MaskFeatures, models: Models, prompt: str, negatives: Sequence[str]
) -> tuple[np.ndarray, int]:
    """[H, W] float32 CLIP relevancy map of ``prompt`` on one frame's own mask features (no 3D, no
    LQC) and the level that answered (highest maximum, as :func:`pixel_relevancy`); 0 where no mask."""
    table = prompt_relevancy(features.table, models, prompt, negatives)  # [M]
    ids = features.ids.numpy()  # [L, H, W]
    maps = np.where(ids >= 0, table[np.clip(ids, 0, None)], 0.0).astype(np.float32)
    level = int(np.argmax(maps.reshape(len(maps), -1).max(axis=1)))
    return maps[level], level


def nearest_camera(cam_to_world: np.ndarray, candidates: Sequence[np.ndarray]) -> int:
    """Index of the candidate [4, 4] pose whose camera centre is nearest to ``cam_to_world``'s."""
    centres = np.stack([np.asarray(c)[:3, 3] for c in candidates])
    return int(np.argmin(np.linalg.norm(centres - np.asarray(cam_to_world)[:3, 3], axis=1)))


def evaluate_baseline(
    dataset: Dataset, keyframes: Sequence[Frame], models: Models, config: LangsceneConfig
) -> list[dict[str, Any]]:
    """2D baseline records: each eval view is scored with the relevancy map of its nearest keyframe
    (camera centre) taken as is, no 3D (DESIGN.md 6); the record adds ``"keyframe": index``.
    Keyframes must have the eval views' image size."""
    if any(f.rgb.shape[:2] != (dataset.intrinsics.height, dataset.intrinsics.width) for f in keyframes):
        raise ValueError("the 2D baseline needs keyframes of the eval views' image size")
    features = [
        mask_features(models.clip, f.rgb, models.masks(f.rgb), batch_size=models.config.clip.batch_size)
        for f in keyframes
    ]
    size = filter_size(dataset.intrinsics.width)
    records = []
    for frame in dataset.eval:
        labels = dataset.labels[frame.name]
        nearest = nearest_camera(frame.cam_to_world, [f.cam_to_world for f in keyframes])
        for name in dict.fromkeys(o["category"] for o in labels["objects"]):
            relevancy_map, level = mask_relevancy(features[nearest], models, name, config.query.negatives)
            records.append({**view_record(frame.name, name, labels, relevancy_map, level, size), "keyframe": nearest})
    return records


def object_centre(world: World, name: str) -> np.ndarray:
    """[3] centre of the object's axis-aligned bounding box, world frame."""
    return np.asarray(world.meshes[world.instance_id(name)].get_axis_aligned_bounding_box().get_center())


def grade_object(
    world: World, name: str, centre: np.ndarray, grasps: Sequence[tuple[np.ndarray, float]], grasp: GraspConfig
) -> dict[str, Any]:
    """An answer locating object ``name``, graded: {"center_error_m": metres, "grasps_valid": how many
    grasps are valid, "best_grasp_valid": whether the first (best) one is, None without grasps}.

    centre: [3] the answered object centre, world frame; grasps: (pose [4, 4] gripper-to-world, opening
    width m) each, best first, checked against the true geometry with the gripper of ``grasp``."""
    error = float(np.linalg.norm(np.asarray(centre, dtype=np.float64) - object_centre(world, name)))
    gripper = Gripper.from_config(grasp)
    valid = [check_grasp(world, name, pose, width, gripper).valid for pose, width in grasps]
    return {"center_error_m": error, "grasps_valid": sum(valid), "best_grasp_valid": valid[0] if valid else None}


def evaluate_views(dataset: Dataset, scene: Scene, models: Models, config: LangsceneConfig) -> list[dict[str, Any]]:
    """2D records (layout in the module docstring), one per (eval view, object name) labelled in it."""
    records = []
    k = dataset.intrinsics
    size = filter_size(k.width)
    for frame in dataset.eval:
        labels = dataset.labels[frame.name]
        names = list(dict.fromkeys(o["category"] for o in labels["objects"]))
        if not names:
            continue
        codes, covered = pixel_codes(scene, models, k, frame.cam_to_world)
        for name in names:
            relevancy_map, level = pixel_relevancy(
                codes, covered, (k.height, k.width), models, name, config.query.negatives
            )
            records.append(view_record(frame.name, name, labels, relevancy_map, level, size))
    return records


def evaluate_objects(world: World, scene: Scene, models: Models, config: LangsceneConfig) -> list[dict[str, Any]]:
    """3D records (layout in the module docstring), one per object of the world."""
    records = []
    queryable = QueryableScene.build(scene, models, config.query, config.grasp)
    for obj in world.spec.objects:
        result = queryable.answer(obj.name)
        record = {
            "kind": "3d",
            "name": obj.name,
            "found": result.object_box is not None,
            "center_error_m": None,
            "grasps": len(result.grasps),
            "grasps_valid": 0,
            "best_grasp_valid": None,
            "max_relevancy": float(result.max_relevancy),
        }
        if result.object_box is not None:
            record.update(
                grade_object(
                    world,
                    obj.name,
                    result.object_box.pose[:3, 3],
                    [(g.pose, g.width) for g in result.grasps],
                    config.grasp,
                )
            )
        records.append(record)
    return records


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract's aggregate keys from 2D and 3D records (None where nothing was measured)."""
    views = [r for r in records if r["kind"] == "2d"]
    objects = [r for r in records if r["kind"] == "3d"]
    errors = [r["center_error_m"] for r in objects if r["center_error_m"] is not None]
    grasps = sum(r["grasps"] for r in objects)
    return {
        "loc_acc": float(np.mean([r["hit"] for r in views])) if views else None,
        "miou": float(np.mean([r["iou"] for r in views])) if views else None,
        "center_error_m": float(np.mean(errors)) if errors else None,
        "grasp_valid_rate": sum(r["grasps_valid"] for r in objects) / grasps if grasps else None,
        "found": len(errors),
        "names": [r["name"] for r in objects],
        "views": len({r["view"] for r in views}),
        "per_query": records,
    }


def evaluate(
    dataset: Dataset, scene: Scene, models: Models, config: LangsceneConfig, world: World | None = None
) -> dict[str, Any]:
    """Evaluate ``scene`` (reconstructed from ``dataset``'s capture, scene frame = world frame) on the
    dataset's labelled eval views and its objects; layout in the module docstring. world: the built
    world of ``dataset.spec`` (None: built here)."""
    world = build_world(dataset.spec) if world is None else world
    return summarize(evaluate_views(dataset, scene, models, config) + evaluate_objects(world, scene, models, config))


def farthest_view(cam_to_worlds: Sequence[np.ndarray]) -> int:
    """Index of the camera whose viewing direction (its z axis) is farthest in angle from the first's.

    cam_to_worlds: at least 2 [4, 4] OpenCV poses, world frame."""
    if len(cam_to_worlds) < 2:
        raise ValueError(f"need at least 2 cameras to pick a second view, have {len(cam_to_worlds)}")
    axes = np.stack([np.asarray(p, dtype=np.float64)[:3, 2] for p in cam_to_worlds])
    return 1 + int(np.argmin(axes[1:] @ axes[0]))


def mode_keyframes(dataset: Dataset, mode: str, keyframe: KeyframeConfig) -> list[Frame]:
    """Keyframes of an evaluation mode: ``dense`` every capture frame offered to a KeyframeBuffer;
    ``sparse``, ``sparse_trimap`` and ``baseline_2d`` the first capture frame and the one farthest from
    it in viewing direction (:func:`farthest_view`)."""
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {', '.join(MODES)}")
    frames = [view.to_camera_frame(float(index)) for index, view in enumerate(dataset.capture)]
    if mode == "dense":
        buffer = KeyframeBuffer(keyframe)
        for frame in frames:
            buffer.offer(frame)
        return list(buffer.keyframes)
    return [frames[0], frames[farthest_view([f.cam_to_world for f in dataset.capture])]]


def evaluate_mode(dataset: Dataset, mode: str, models: Models, config: LangsceneConfig) -> dict[str, Any]:
    """Reconstruct ``dataset``'s capture in ``mode`` and evaluate it (the 2D baseline: no reconstruction).

    config: already :func:`mode_config` of ``mode``, and ``models`` loaded with it. Returns
    :func:`evaluate`'s dict plus ``mode``, ``keyframes`` (count), ``notes`` (the reconstruction's notes,
    e.g. TriMap frames dropped) and ``reconstruct_s``."""
    keyframes = mode_keyframes(dataset, mode, config.keyframe)
    if mode == "baseline_2d":
        return {
            "mode": mode,
            **summarize(evaluate_baseline(dataset, keyframes, models, config)),
            "keyframes": len(keyframes),
            "notes": [],
            "reconstruct_s": 0.0,
        }
    start = time.perf_counter()
    scene = LangScene(config, models).reconstruct(keyframes).scene
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        **evaluate(dataset, scene, models, config),
        "keyframes": len(keyframes),
        "notes": list(scene.info.get("notes", [])),
        "reconstruct_s": round(seconds, 1),
    }


def mode_config(config: LangsceneConfig, mode: str) -> LangsceneConfig:
    """``config`` with the densification of ``mode``: TriMap for ``sparse_trimap``, off otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {', '.join(MODES)}")
    densify = replace(config.densify, mode="trimap" if mode == "sparse_trimap" else "off")
    return replace(config, densify=densify)
