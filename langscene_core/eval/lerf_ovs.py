"""The real LERF-OVS layout (LangSplat's release of the LERF scenes with open-vocabulary labels), so that
``langscene eval --lerf-ovs ROOT --scene NAME`` runs the same metric on the real data with real weights.

Layout read (``ROOT`` is the unpacked ``lerf_ovs`` folder)::

    ROOT/<scene>/images/<frame>.jpg       every capture image (png accepted too)
    ROOT/<scene>/sparse/0/                COLMAP model (cameras, images, points3D; .bin or .txt)
    ROOT/label/<scene>/<frame>.json       labels of the evaluated frames: {"info": {"name", "width",
                                          "height"}, "objects": [{"category", "segmentation": [[x, y],
                                          ...], "bbox": [x1, y1, x2, y2]}, ...]}

The COLMAP model is read with pycolmap. It must hold one undistorted pinhole camera (PINHOLE or
SIMPLE_PINHOLE, as ``colmap image_undistorter`` and 3DGS's ``convert.py`` leave it); its intrinsics are
scaled to the images' size when the images were downsampled. Poses are COLMAP's world frame (arbitrary
scale, OpenCV camera axes, as langscene_core.geometry.camera). The capture has no depth: the field is
initialised from the model's 3D points, as 3DGS and LangSplat do. Evaluated frames are the labelled ones,
at their labels' resolution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pycolmap
from PIL import Image

from langscene_core.capture.frames import Frame
from langscene_core.errors import LangsceneError
from langscene_core.geometry.camera import Intrinsics

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".PNG")
PINHOLE_MODELS = {"PINHOLE": ("fx", "fy", "cx", "cy"), "SIMPLE_PINHOLE": ("f", "cx", "cy")}


class LerfOvsError(LangsceneError, ValueError):
    """A folder that is not in the LERF-OVS layout, or a model this loader cannot use; says what is wrong."""


@dataclass(frozen=True)
class EvalView:
    """A labelled frame: name (image stem), cam_to_world [4, 4] float64 (COLMAP world frame)."""

    name: str
    cam_to_world: np.ndarray


@dataclass(frozen=True)
class LerfOvsScene:
    """One scene. intrinsics: of every image and of the labels; capture: every image as a posed Frame
    (depth None, stamp = its index); eval / labels: the labelled frames and their label dicts by name;
    points: [N, 3] float64 COLMAP points (world frame); colors: [N, 3] float32 in 0..1."""

    intrinsics: Intrinsics
    capture: list[Frame]
    eval: list[EvalView]
    labels: dict[str, dict[str, Any]]
    points: np.ndarray
    colors: np.ndarray


def _intrinsics(camera: pycolmap.Camera, width: int, height: int) -> Intrinsics:
    """The camera's pinhole intrinsics scaled from its size to the images' (width x height)."""
    model = camera.model.name
    if model not in PINHOLE_MODELS:
        raise LerfOvsError(
            f"COLMAP camera model {model}: only {', '.join(PINHOLE_MODELS)} (undistort the images first: "
            "colmap image_undistorter)"
        )
    params = list(camera.params)
    fx, fy, cx, cy = params if model == "PINHOLE" else (params[0], params[0], params[1], params[2])
    sx, sy = width / camera.width, height / camera.height
    return Intrinsics(width=width, height=height, fx=fx * sx, fy=fy * sy, cx=cx * sx, cy=cy * sy)


def _image_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix in IMAGE_SUFFIXES}


def load_lerf_ovs(root: str | Path, scene: str) -> LerfOvsScene:
    """Read ``scene`` of the LERF-OVS folder ``root`` (module docstring). Raises LerfOvsError naming the
    missing or unusable part."""
    root = Path(root)
    scene_dir, label_dir = root / scene, root / "label" / scene
    for needed in (scene_dir / "images", scene_dir / "sparse" / "0", label_dir):
        if not needed.is_dir():
            raise LerfOvsError(f"{needed}: no such directory (LERF-OVS layout: <root>/<scene>/images, sparse/0, label)")
    try:
        model = pycolmap.Reconstruction(str(scene_dir / "sparse" / "0"))
    except Exception as exc:  # noqa: BLE001 - pycolmap raises its own types for unreadable models
        raise LerfOvsError(f"{scene_dir / 'sparse' / '0'}: not a readable COLMAP model ({exc})") from exc
    if len(model.cameras) != 1:
        raise LerfOvsError(f"the COLMAP model has {len(model.cameras)} cameras; expected one (one undistorted camera)")
    files = _image_files(scene_dir / "images")
    posed = sorted((image for image in model.images.values() if image.has_pose), key=lambda i: i.name)
    if not posed:
        raise LerfOvsError(f"{scene_dir / 'sparse' / '0'}: no posed image")
    missing = [image.name for image in posed if image.name not in files]
    if missing:
        raise LerfOvsError(f"{len(missing)} image(s) of the COLMAP model not in {scene_dir / 'images'}: {missing[:3]}")
    size = Image.open(files[posed[0].name]).size
    intrinsics = _intrinsics(next(iter(model.cameras.values())), *size)
    capture, poses = [], {}
    for index, image in enumerate(posed):
        rgb = np.asarray(Image.open(files[image.name]).convert("RGB"), dtype=np.uint8)
        if rgb.shape[:2] != (intrinsics.height, intrinsics.width):
            raise LerfOvsError(f"{image.name}: {rgb.shape[1]}x{rgb.shape[0]}, the first image is {size[0]}x{size[1]}")
        cam_from_world = np.asarray(image.cam_from_world().matrix())
        pose = np.eye(4)
        pose[:3, :3] = cam_from_world[:3, :3].T
        pose[:3, 3] = -cam_from_world[:3, :3].T @ cam_from_world[:3, 3]
        poses[Path(image.name).stem] = pose
        capture.append(Frame(stamp=float(index), rgb=rgb, intrinsics=intrinsics, cam_to_world=pose))
    labels, views = {}, []
    for path in sorted(label_dir.glob("*.json")):
        if path.stem not in poses:
            raise LerfOvsError(f"{path}: labels a frame the COLMAP model does not pose")
        label = json.loads(path.read_text())
        info = label.get("info", {})
        if (info.get("width"), info.get("height")) != (intrinsics.width, intrinsics.height):
            raise LerfOvsError(
                f"{path}: labels at {info.get('width')}x{info.get('height')}, images are "
                f"{intrinsics.width}x{intrinsics.height} (use the images the labels were drawn on)"
            )
        labels[path.stem] = label
        views.append(EvalView(path.stem, poses[path.stem]))
    if not views:
        raise LerfOvsError(f"{label_dir}: no label file")
    ordered = [point for _, point in sorted(model.points3D.items())]  # by point id: a stable order
    points = np.array([p.xyz for p in ordered], dtype=np.float64).reshape(-1, 3)
    colors = np.array([p.color for p in ordered], dtype=np.float32).reshape(-1, 3) / 255.0
    if len(points) == 0:
        raise LerfOvsError(f"{scene_dir / 'sparse' / '0'}: no 3D points to initialise the field from")
    return LerfOvsScene(intrinsics, capture, views, labels, points, colors)
