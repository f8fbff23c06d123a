"""Evaluation of a reconstructed scene against a world dataset (DESIGN.md sections 6 and 8).

2D (LERF-OVS protocol exactly as LangSplat's ``eval/evaluate_iou_loc.py`` computes it:
:mod:`langscene_core.eval.metrics`), per eval view and object name: the prompt's relevancy per mask
level at every pixel of the eval camera (:func:`level_relevancy`; every pixel carries its rendered
latent's value, covered or not), then ``metrics.localize`` (hit) and ``metrics.segment`` (IoU) with a
``box_filter_px`` box filter (``metrics.filter_px`` of the image width).

2D baseline (mode ``baseline_2d``, :func:`evaluate_baseline`): the same 2D metrics on the CLIP relevancy
maps of the eval view's nearest keyframe, taken as is (no 3D, no LQC).

3D, per object name: ``QueryableScene.answer`` (relevancy, ``query_object``, the open-set check); the
error of the object box centre against the true mesh's bounding-box centre (located: within
``LOCATED_M``), and every returned grasp checked against the true geometry (``eval.grasp_check.check_grasp``).

Result layout (:func:`evaluate`)::

    {"loc_acc": float 0..1 | None, "miou": float 0..1 | None, "center_error_m": float | None,
     "located_rate": float 0..1 | None (objects located within LOCATED_M, of all queried),
     "grasp_valid_rate": float 0..1 | None, "best_grasp_valid_rate": float 0..1 | None,
     "located_grasp_valid_rate": float 0..1 | None (grasps valid of the answers located within
     LOCATED_M: the planner's own figure; grasps on an answer that is another object are the language's
     miss, every one of them invalid),
     "oracle_graspable": int (objects the oracle grasps), "best_valid_of_graspable": float 0..1 | None
     (of those, the ones whose answer's best grasp is valid),
     "per_shape": {shape: {"objects", "oracle_graspable", "best_valid_of_graspable", "grasps",
                           "grasps_valid", "grasp_valid_rate", "located_grasp_valid_rate"}},
     "absent_answered_rate": float 0..1 | None (absent prompts answered with an object),
     "views": int, "names": [str] (3D), "found": int (3D),
     "box_filter_px": int | None, "located_m": LOCATED_M,
     "per_query": [{"kind": "2d", "view": "eval_0000", "name": str, "hit": bool, "iou": float,
                    "loc_level": int, "iou_level": int, "peak_xy": [x, y] (first pixel at the filtered
                    maximum), "peak_pixels": int (pixels at it), "keyframe": int (baseline only)},
                   {"kind": "3d", "name": str, "shape": str, "oracle_graspable": bool (the planner on
                    the true mesh's samples finds a grasp the checker accepts: eval.oracle),
                    "oracle_reason": "ok" or why not (too wide, too flat, ...), "found": bool,
                    "center_error_m": float | None, "located": bool, "grasps": int, "grasps_valid": int,
                    "best_grasp_valid": bool | None, "max_relevancy": float},
                   {"kind": "absent", "name": prompt, "answered": bool}]}

None where nothing was measured (no labelled views, no object found, no grasp returned).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langscene_core.capture.frames import Frame
from langscene_core.capture.keyframes import KeyframeBuffer
from langscene_core.config import GraspConfig, KeyframeConfig, LangsceneConfig
from langscene_core.engine import LangScene, QueryableScene
from langscene_core.eval.grasp_check import check_grasp
from langscene_core.eval.lerf_ovs import LerfOvsScene
from langscene_core.eval.metrics import filter_px, localize, segment
from langscene_core.eval.oracle import oracle_grasp
from langscene_core.field.render import render
from langscene_core.geometry.camera import Intrinsics
from langscene_core.language.features import MaskFeatures, mask_features
from langscene_core.query.answer import prompt_relevancy
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.reconstruction.models import Models
from langscene_core.reconstruction.reconstruct import reconstruct
from langscene_core.reconstruction.scene import Scene, load_scene, save_scene
from langscene_core.sim import build_world
from langscene_core.sim.dataset import Dataset
from langscene_core.sim.labels import polygon_mask
from langscene_core.sim.scene import World

MODES = ("dense", "sparse", "sparse_trimap", "baseline_2d")
LOCATED_M = 0.02  # an object counts as located when its answered centre is within 2 cm of the truth
SPARSE_ARC_DEG = 45.0  # sparse modes: the second keyframe's viewing direction this far from the first's


def view_record(view: str, name: str, labels: dict[str, Any], maps: np.ndarray, size: int) -> dict[str, Any]:
    """The 2D record of one (view, name): LangSplat's localization and IoU of ``maps`` [L, H, W] (the
    name's relevancy per level) against the view's LERF-OVS ``labels``; ``size``: box filter side."""
    loc = localize(maps, category_boxes(labels, name), size)
    seg = segment(maps, category_mask(labels, name), size)
    return {
        "kind": "2d",
        "view": view,
        "name": name,
        "hit": loc.hit,
        "iou": seg.iou,
        "loc_level": loc.level,
        "iou_level": seg.level,
        "peak_xy": [int(v) for v in loc.pixels[0]],
        "peak_pixels": len(loc.pixels),
    }


def save_maps(maps_dir: Path | None, view: str, name: str, maps: np.ndarray) -> None:
    """Write ``maps`` [L, H, W] as float32 ``maps_dir/<view stem>/<name, spaces as _>.npy`` (None: nothing)."""
    if maps_dir is None:
        return
    folder = Path(maps_dir) / Path(view).stem
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name.replace(' ', '_')}.npy", np.asarray(maps, dtype=np.float32))


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


def pixel_codes(scene: Scene, models: Models, intrinsics: Intrinsics, cam_to_world: np.ndarray) -> np.ndarray:
    """[H * W, L] int64 LQC code of every pixel's rendered latent at one camera (every pixel, whatever
    its alpha: LangSplat decodes every rendered feature). cam_to_world: [4, 4] OpenCV camera, scene frame."""
    with torch.no_grad():
        out = render(scene.gaussians, intrinsics, cam_to_world, rgb=False, normal=False, latents=True)
        latents = out.latents  # [L, H, W, 3]
        levels = latents.shape[0]
        flat = latents.permute(1, 2, 0, 3).reshape(-1, latents.shape[-1]).to(models.lqc.codebook.device)
        return models.lqc.code_of(flat).reshape(-1, levels).cpu().numpy().astype(np.int64)


def level_relevancy(
    codes: np.ndarray, shape: tuple[int, int], models: Models, prompt: str, negatives: Sequence[str]
) -> np.ndarray:
    """[L, H, W] float32 relevancy of ``prompt`` per mask level at every pixel (LangSplat's
    ``get_max_across``), through the code table. codes: [H * W, L] int64 from :func:`pixel_codes`."""
    table = prompt_relevancy(models.code_features, models, prompt, negatives, unit_features=True)  # [K]
    return table[np.asarray(codes).T].reshape(-1, *shape).astype(np.float32)


def mask_relevancy(features: MaskFeatures, models: Models, prompt: str, negatives: Sequence[str]) -> np.ndarray:
    """[L, H, W] float32 CLIP relevancy of ``prompt`` per level on one frame's own mask features (no 3D,
    no LQC). A pixel in no mask of a level has no feature: it takes that level's lowest masked value
    (so it moves neither the maximum nor the normalisation's minimum); a level without masks is 0."""
    table = prompt_relevancy(features.table, models, prompt, negatives)  # [M]
    ids = features.ids.numpy()  # [L, H, W]
    maps = table[np.clip(ids, 0, None)].astype(np.float32)
    for level, ids_level in zip(maps, ids):
        masked = ids_level >= 0
        level[~masked] = level[masked].min() if masked.any() else 0.0
    return maps


def nearest_camera(cam_to_world: np.ndarray, candidates: Sequence[np.ndarray]) -> int:
    """Index of the candidate [4, 4] pose whose camera centre is nearest to ``cam_to_world``'s."""
    centres = np.stack([np.asarray(c)[:3, 3] for c in candidates])
    return int(np.argmin(np.linalg.norm(centres - np.asarray(cam_to_world)[:3, 3], axis=1)))


def evaluate_baseline(
    dataset: Dataset,
    keyframes: Sequence[Frame],
    models: Models,
    config: LangsceneConfig,
    maps_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """2D baseline records: each eval view is scored with the relevancy maps of its nearest keyframe
    (camera centre) taken as is, no 3D (DESIGN.md 6); the record adds ``"keyframe": index``.
    Keyframes must have the eval views' image size. maps_dir: where to save the maps (:func:`save_maps`)."""
    if any(f.rgb.shape[:2] != (dataset.intrinsics.height, dataset.intrinsics.width) for f in keyframes):
        raise ValueError("the 2D baseline needs keyframes of the eval views' image size")
    features = [
        mask_features(
            models.clip, f.rgb, models.masks(f.rgb, f.depth, f.intrinsics), batch_size=models.config.clip.batch_size
        )
        for f in keyframes
    ]
    size = filter_px(dataset.intrinsics.width)
    records = []
    for frame in dataset.eval:
        labels = dataset.labels[frame.name]
        nearest = nearest_camera(frame.cam_to_world, [f.cam_to_world for f in keyframes])
        for name in dict.fromkeys(o["category"] for o in labels["objects"]):
            maps = mask_relevancy(features[nearest], models, name, config.query.negatives)
            save_maps(maps_dir, frame.name, name, maps)
            records.append({**view_record(frame.name, name, labels, maps, size), "keyframe": nearest})
    return records


def object_centre(world: World, name: str) -> np.ndarray:
    """[3] centre of the object's axis-aligned bounding box, world frame."""
    return np.asarray(world.meshes[world.instance_id(name)].get_axis_aligned_bounding_box().get_center())


def grade_object(
    world: World, name: str, centre: np.ndarray, grasps: Sequence[tuple[np.ndarray, float]], grasp: GraspConfig
) -> dict[str, Any]:
    """An answer locating object ``name``, graded: {"center_error_m": metres, "located": within
    ``LOCATED_M``, "grasps_valid": how many grasps are valid, "best_grasp_valid": whether the first
    (best) one is, None without grasps}.

    centre: [3] the answered object centre, world frame; grasps: (pose [4, 4] gripper-to-world, opening
    width m) each, best first, checked against the true geometry with the gripper of ``grasp``."""
    error = float(np.linalg.norm(np.asarray(centre, dtype=np.float64) - object_centre(world, name)))
    gripper = Gripper.from_config(grasp)
    valid = [check_grasp(world, name, pose, width, gripper).valid for pose, width in grasps]
    return {
        "center_error_m": error,
        "located": error <= LOCATED_M,
        "grasps_valid": sum(valid),
        "best_grasp_valid": valid[0] if valid else None,
    }


def evaluate_views(
    dataset: Dataset | LerfOvsScene, scene: Scene, models: Models, config: LangsceneConfig, maps_dir: Path | None = None
) -> list[dict[str, Any]]:
    """2D records (layout in the module docstring), one per (eval view, object name) labelled in it.
    maps_dir: where to save the relevancy maps the metric used (:func:`save_maps`; None: not saved)."""
    records = []
    k = dataset.intrinsics
    size = filter_px(k.width)
    for frame in dataset.eval:
        labels = dataset.labels[frame.name]
        names = list(dict.fromkeys(o["category"] for o in labels["objects"]))
        if not names:
            continue
        codes = pixel_codes(scene, models, k, frame.cam_to_world)
        for name in names:
            maps = level_relevancy(codes, (k.height, k.width), models, name, config.query.negatives)
            save_maps(maps_dir, frame.name, name, maps)
            records.append(view_record(frame.name, name, labels, maps, size))
    return records


def evaluate_absent(
    scene: Scene, models: Models, config: LangsceneConfig, prompts: Sequence[str]
) -> list[dict[str, Any]]:
    """One record per prompt naming nothing in the scene: {"kind": "absent", "name": prompt,
    "answered": an object was returned all the same}."""
    queryable = QueryableScene.build(scene, models, config.query, config.grasp)
    return [{"kind": "absent", "name": p, "answered": queryable.answer(p).object_box is not None} for p in prompts]


def evaluate_objects(world: World, scene: Scene, models: Models, config: LangsceneConfig) -> list[dict[str, Any]]:
    """3D records (layout in the module docstring), one per object of the world."""
    records = []
    queryable = QueryableScene.build(scene, models, config.query, config.grasp)
    for obj in world.spec.objects:
        result = queryable.answer(obj.name)
        oracle = oracle_grasp(world, obj.name, config.grasp)
        record = {
            "kind": "3d",
            "name": obj.name,
            "shape": obj.shape,
            "oracle_graspable": oracle.graspable,
            "oracle_reason": oracle.reason,
            "found": result.object_box is not None,
            "center_error_m": None,
            "located": False,
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


def _best_valid_of_graspable(graspable: list[dict[str, Any]]) -> float | None:
    """Of the oracle-graspable objects' records, the fraction whose answer's best grasp is valid (an
    object not found or with no grasp counts as not valid); None without any."""
    return float(np.mean([r.get("best_grasp_valid") is True for r in graspable])) if graspable else None


def _grasp_valid_rate(objects: list[dict[str, Any]]) -> float | None:
    """Grasps valid of all grasps returned for the 3D records ``objects``; None without grasps."""
    grasps = sum(r["grasps"] for r in objects)
    return sum(r["grasps_valid"] for r in objects) / grasps if grasps else None


def _shape_summary(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """One shape's 3D records pooled: objects, oracle_graspable, best_valid_of_graspable, grasps,
    grasps_valid, grasp_valid_rate and located_grasp_valid_rate (None without grasps)."""
    graspable = [r for r in objects if r.get("oracle_graspable")]
    return {
        "objects": len(objects),
        "oracle_graspable": len(graspable),
        "best_valid_of_graspable": _best_valid_of_graspable(graspable),
        "grasps": sum(r["grasps"] for r in objects),
        "grasps_valid": sum(r["grasps_valid"] for r in objects),
        "grasp_valid_rate": _grasp_valid_rate(objects),
        "located_grasp_valid_rate": _grasp_valid_rate([r for r in objects if r["located"]]),
    }


def summarize(records: list[dict[str, Any]], box_filter_px: int | None = None) -> dict[str, Any]:
    """The contract's aggregate keys from 2D and 3D records (None where nothing was measured);
    box_filter_px: the 2D metric's box filter side, reported as is."""
    views = [r for r in records if r["kind"] == "2d"]
    objects = [r for r in records if r["kind"] == "3d"]
    absent = [r["answered"] for r in records if r["kind"] == "absent"]
    best = [r["best_grasp_valid"] for r in objects if r.get("best_grasp_valid") is not None]
    errors = [r["center_error_m"] for r in objects if r["center_error_m"] is not None]
    graspable = [r for r in objects if r.get("oracle_graspable")]
    return {
        "loc_acc": float(np.mean([r["hit"] for r in views])) if views else None,
        "miou": float(np.mean([r["iou"] for r in views])) if views else None,
        "center_error_m": float(np.mean(errors)) if errors else None,
        "located_rate": float(np.mean([r["located"] for r in objects])) if objects else None,
        "located_m": LOCATED_M,
        "box_filter_px": box_filter_px,
        "grasp_valid_rate": _grasp_valid_rate(objects),
        "located_grasp_valid_rate": _grasp_valid_rate([r for r in objects if r["located"]]),
        "best_grasp_valid_rate": float(np.mean(best)) if best else None,
        "oracle_graspable": len(graspable),
        "best_valid_of_graspable": _best_valid_of_graspable(graspable),
        "per_shape": {
            shape: _shape_summary([r for r in objects if r.get("shape") == shape])
            for shape in sorted({r["shape"] for r in objects if "shape" in r})
        },
        "absent_answered_rate": float(np.mean(absent)) if absent else None,
        "found": len(errors),
        "names": [r["name"] for r in objects],
        "views": len({r["view"] for r in views}),
        "per_query": records,
    }


def evaluate(
    dataset: Dataset,
    scene: Scene,
    models: Models,
    config: LangsceneConfig,
    world: World | None = None,
    maps_dir: Path | None = None,
    absent: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate ``scene`` (reconstructed from ``dataset``'s capture, scene frame = world frame) on the
    dataset's labelled eval views and its objects; layout in the module docstring. world: the built
    world of ``dataset.spec`` (None: built here); maps_dir: see :func:`evaluate_views`; absent: prompts
    naming nothing in the world (:func:`evaluate_absent`)."""
    world = build_world(dataset.spec) if world is None else world
    records = (
        evaluate_views(dataset, scene, models, config, maps_dir)
        + evaluate_objects(world, scene, models, config)
        + evaluate_absent(scene, models, config, absent)
    )
    return summarize(records, filter_px(dataset.intrinsics.width))


def view_at_angle(cam_to_worlds: Sequence[np.ndarray], degrees: float) -> int:
    """Index (not 0) of the camera whose viewing direction (its z axis) is nearest ``degrees`` in angle
    from the first camera's (the first such camera on a tie).

    cam_to_worlds: at least 2 [4, 4] OpenCV poses, world frame."""
    if len(cam_to_worlds) < 2:
        raise ValueError(f"need at least 2 cameras to pick a second view, have {len(cam_to_worlds)}")
    axes = np.stack([np.asarray(p, dtype=np.float64)[:3, 2] for p in cam_to_worlds])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip(axes[1:] @ axes[0], -1.0, 1.0)))
    return 1 + int(np.argmin(np.abs(angles - degrees)))


def mode_keyframes(dataset: Dataset, mode: str, keyframe: KeyframeConfig) -> list[Frame]:
    """Keyframes of an evaluation mode: ``dense`` every capture frame offered to a KeyframeBuffer;
    ``sparse``, ``sparse_trimap`` and ``baseline_2d`` the first capture frame and the one whose viewing
    direction is nearest ``SPARSE_ARC_DEG`` from it (:func:`view_at_angle`): a pair inside the 15-60 degree
    arcs the bundled TriMap model was trained on."""
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {', '.join(MODES)}")
    frames = [view.to_camera_frame(float(index)) for index, view in enumerate(dataset.capture)]
    if mode == "dense":
        buffer = KeyframeBuffer(keyframe)
        for frame in frames:
            buffer.offer(frame)
        return list(buffer.keyframes)
    return [frames[0], frames[view_at_angle([f.cam_to_world for f in dataset.capture], SPARSE_ARC_DEG)]]


def evaluate_mode(
    dataset: Dataset,
    mode: str,
    models: Models,
    config: LangsceneConfig,
    maps_dir: Path | None = None,
    absent: Sequence[str] = (),
    scene_cache: Path | None = None,
) -> dict[str, Any]:
    """Reconstruct ``dataset``'s capture in ``mode`` and evaluate it (the 2D baseline: no reconstruction).

    config: already :func:`mode_config` of ``mode``, and ``models`` loaded with it; maps_dir: see
    :func:`evaluate_views`; absent: see :func:`evaluate` (not for the 2D baseline); scene_cache: a scene
    PLY read instead of reconstructing when it exists, else written after the reconstruction (None: no
    cache; ``reconstruct_s`` is then the read's seconds). Returns
    :func:`evaluate`'s dict plus ``mode``, ``keyframes`` (count), ``generated_frames_used`` (TriMap frames
    that reached the field), ``notes`` (the reconstruction's notes, e.g. TriMap frames dropped) and
    ``reconstruct_s``."""
    keyframes = mode_keyframes(dataset, mode, config.keyframe)
    if mode == "baseline_2d":
        return {
            "mode": mode,
            **summarize(
                evaluate_baseline(dataset, keyframes, models, config, maps_dir), filter_px(dataset.intrinsics.width)
            ),
            "keyframes": len(keyframes),
            "generated_frames_used": 0,
            "notes": [],
            "reconstruct_s": 0.0,
        }
    start = time.perf_counter()
    cached = None if scene_cache is None else Path(scene_cache)
    if cached is not None and cached.is_file():
        scene = load_scene(cached, models.lqc, config.models.lqc.checkpoint)
    else:
        scene = LangScene(config, models).reconstruct(keyframes).scene
        if cached is not None:
            save_scene(scene, cached)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        **evaluate(dataset, scene, models, config, maps_dir=maps_dir, absent=absent),
        "keyframes": len(keyframes),
        "generated_frames_used": int(scene.info["frames"]) - int(scene.info["keyframes"]),
        "notes": list(scene.info.get("notes", [])),
        "reconstruct_s": round(seconds, 1),
    }


def evaluate_lerf_ovs(
    data: LerfOvsScene, models: Models, config: LangsceneConfig, maps_dir: Path | None = None
) -> dict[str, Any]:
    """Reconstruct a LERF-OVS scene from all its images, the field started from its COLMAP points, and
    score its labelled frames (2D records only: the real scenes have no 3D truth). Returns
    :func:`summarize`'s dict plus ``mode`` ('lerf_ovs'), ``keyframes``, ``notes`` and ``reconstruct_s``."""
    start = time.perf_counter()
    scene = reconstruct(data.capture, models, config, init_points=(data.points, data.colors))
    seconds = time.perf_counter() - start
    records = evaluate_views(data, scene, models, config, maps_dir)
    return {
        "mode": "lerf_ovs",
        **summarize(records, filter_px(data.intrinsics.width)),
        "keyframes": len(data.capture),
        "notes": list(scene.info.get("notes", [])),
        "reconstruct_s": round(seconds, 1),
    }


def mode_config(config: LangsceneConfig, mode: str) -> LangsceneConfig:
    """``config`` with the densification of ``mode``: TriMap for ``sparse_trimap``, off otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {', '.join(MODES)}")
    densify = replace(config.densify, mode="trimap" if mode == "sparse_trimap" else "off")
    return replace(config, densify=densify)
