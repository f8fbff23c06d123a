"""Dataset directory of a rendered world: write it, read it back.

Layout::

    DIR/spec.json              the scene spec (DESIGN.md section 5)
    DIR/cameras.json           intrinsics, instance names, and per frame: name, split, cam_to_world, files
    DIR/images/NAME.png        RGB, 8-bit sRGB
    DIR/depth/NAME.npy         float32 [H, W] metres along camera z, 0 = no surface (exact, no mm rounding)
    DIR/normals/NAME.npy       float32 [H, W, 3] world-frame unit normals facing the camera, 0 = none
    DIR/ids/NAME.png           uint16 [H, W] instance id + 1 (0 background, 1 table, k + 1 = object k)
    DIR/labels/NAME.json       LERF-OVS labels of every eval frame (langscene_core.sim.labels)
    DIR/contact_sheet.png      optional, RGB | depth | normals | ids of a few frames

Frame names: ``capture_0000``... (split "capture", the trajectory) and ``eval_0000``... (split "eval").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from langscene_core.geometry.camera import Intrinsics
from langscene_core.sim.contact_sheet import contact_sheet
from langscene_core.sim.labels import frame_labels
from langscene_core.sim.render import RenderedFrame, intrinsics_of, render
from langscene_core.sim.scene import World
from langscene_core.sim.spec import WorldSpec, parse_spec, spec_to_dict
from langscene_core.sim.trajectory import capture_poses, eval_poses

CONTACT_SHEET_ROWS = 4


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset directory in memory: capture frames (trajectory order), eval frames and their labels
    (eval frame name -> LERF-OVS JSON dict)."""

    spec: WorldSpec
    intrinsics: Intrinsics
    capture: list[RenderedFrame]
    eval: list[RenderedFrame]
    labels: dict[str, dict[str, Any]]


def render_dataset(world: World) -> Dataset:
    """Render the capture trajectory and the eval views of ``world`` and label the eval views."""
    spec = world.spec
    intrinsics = intrinsics_of(spec.camera)
    capture_pose = capture_poses(spec.camera)
    eval_pose = eval_poses(spec.camera, spec.eval_views)
    names = [f"capture_{i:04d}" for i in range(len(capture_pose))] + [f"eval_{i:04d}" for i in range(len(eval_pose))]
    frames = render(world, intrinsics, np.concatenate([capture_pose, eval_pose]), names)
    capture, evals = frames[: len(capture_pose)], frames[len(capture_pose) :]
    labels = {f.name: frame_labels(f, spec, f"{f.name}.png") for f in evals}
    return Dataset(spec=spec, intrinsics=intrinsics, capture=capture, eval=evals, labels=labels)


def _files(name: str) -> dict[str, str]:
    return {
        "rgb": f"images/{name}.png",
        "depth": f"depth/{name}.npy",
        "normals": f"normals/{name}.npy",
        "ids": f"ids/{name}.png",
    }


def write_dataset(dataset: Dataset, out_dir: str | Path, with_contact_sheet: bool = False) -> Path:
    """Write ``dataset`` under ``out_dir`` (layout in the module docstring); returns the directory."""
    out = Path(out_dir)
    for sub in ("images", "depth", "normals", "ids", "labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    records = []
    for split, frames in (("capture", dataset.capture), ("eval", dataset.eval)):
        for f in frames:
            files = _files(f.name)
            Image.fromarray(f.rgb).save(out / files["rgb"])
            np.save(out / files["depth"], f.depth.astype(np.float32))
            np.save(out / files["normals"], f.normals.astype(np.float32))
            Image.fromarray((f.ids + 1).astype(np.uint16)).save(out / files["ids"])
            if split == "eval":
                files["labels"] = f"labels/{f.name}.json"
                (out / files["labels"]).write_text(json.dumps(dataset.labels[f.name], indent=1))
            records.append({"name": f.name, "split": split, "cam_to_world": f.cam_to_world.tolist(), **files})
    k = dataset.intrinsics
    cameras = {
        "convention": "cam_to_world 4x4, OpenCV camera axes (x right, y down, z forward), world z up, metres",
        "intrinsics": {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "width": k.width, "height": k.height},
        "instances": {
            "-1": "background",
            "0": "table",
            **{str(i): o.name for i, o in enumerate(dataset.spec.objects, start=1)},
        },
        "frames": records,
    }
    (out / "cameras.json").write_text(json.dumps(cameras, indent=1))
    (out / "spec.json").write_text(json.dumps(spec_to_dict(dataset.spec), indent=1))
    if with_contact_sheet:
        step = max(1, len(dataset.capture) // CONTACT_SHEET_ROWS)
        rows = dataset.capture[::step][:CONTACT_SHEET_ROWS] + dataset.eval[:1]
        Image.fromarray(contact_sheet(rows)).save(out / "contact_sheet.png")
    return out


def load_dataset(directory: str | Path) -> Dataset:
    """Read a directory written by :func:`write_dataset`; ValueError naming a missing or bad file."""
    root = Path(directory)
    try:
        cameras = json.loads((root / "cameras.json").read_text())
        spec = parse_spec(json.loads((root / "spec.json").read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{root}: not a langscene world dataset ({exc})") from exc
    k = cameras["intrinsics"]
    intrinsics = Intrinsics(fx=k["fx"], fy=k["fy"], cx=k["cx"], cy=k["cy"], width=k["width"], height=k["height"])
    splits: dict[str, list[RenderedFrame]] = {"capture": [], "eval": []}
    labels = {}
    for record in cameras["frames"]:
        try:
            frame = RenderedFrame(
                name=record["name"],
                rgb=np.asarray(Image.open(root / record["rgb"]).convert("RGB")),
                depth=np.load(root / record["depth"]),
                normals=np.load(root / record["normals"]),
                ids=np.asarray(Image.open(root / record["ids"])).astype(np.int32) - 1,
                intrinsics=intrinsics,
                cam_to_world=np.asarray(record["cam_to_world"], dtype=np.float64),
            )
            if "labels" in record:
                labels[record["name"]] = json.loads((root / record["labels"]).read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{root}: frame {record.get('name', '?')}: cannot read ({exc})") from exc
        splits[record["split"]].append(frame)
    return Dataset(spec=spec, intrinsics=intrinsics, capture=splits["capture"], eval=splits["eval"], labels=labels)
