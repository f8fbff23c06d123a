"""Typed settings for every stage, loaded from ``config/langscene.yaml``.

The YAML file is a ROS 2 parameter file: the settings live under ``langscene: ros__parameters:`` and
nest by section (``field.geometry_steps`` is ``field: {geometry_steps: ...}``). The node declares one
ROS parameter per leaf (dotted name); the library reads the same file into these dataclasses.

Each stage owns one dataclass section below; add a setting to the section of the stage that reads it.
Unknown keys and wrongly typed values raise :class:`ConfigError` naming the key.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

NODE_NAME = "langscene"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "langscene.yaml"


class ConfigError(ValueError):
    """A settings file or dict does not match the dataclasses; the message names the key."""


@dataclass(frozen=True)
class ClipModelConfig:
    arch: str = "ViT-B-16"
    weights: str = "bundled:tiny-clip"  # pretrained tag, a file path, or bundled:NAME


@dataclass(frozen=True)
class LqcModelConfig:
    checkpoint: str = "bundled:tiny-lqc"


@dataclass(frozen=True)
class TrimapModelConfig:
    path: str = "bundled:tiny-trimap"  # diffusers directory, HF cache id, or bundled:NAME
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    offload: str = "none"  # none | model | sequential
    frames: int = 49
    steps: int = 50
    guidance: float = 6.0


@dataclass(frozen=True)
class MasksConfig:
    mapper: str = "felzenszwalb"  # felzenszwalb | sam2
    checkpoint: str = ""


@dataclass(frozen=True)
class ModelsConfig:
    device: str = "auto"  # auto | cpu | cuda
    clip: ClipModelConfig = dataclasses.field(default_factory=ClipModelConfig)
    lqc: LqcModelConfig = dataclasses.field(default_factory=LqcModelConfig)
    trimap: TrimapModelConfig = dataclasses.field(default_factory=TrimapModelConfig)
    masks: MasksConfig = dataclasses.field(default_factory=MasksConfig)


@dataclass(frozen=True)
class KeyframeConfig:
    min_translation: float = 0.05  # metres since the last keyframe
    min_rotation_deg: float = 10.0
    min_sharpness: float = 10.0  # variance of the Laplacian of the grey image (0..255 scale)
    max_keyframes: int = 64  # bounded buffer; frames past it are dropped and counted


@dataclass(frozen=True)
class DensifyConfig:
    mode: str = "off"  # off | trimap


@dataclass(frozen=True)
class FieldConfig:
    geometry_steps: int = 1500
    language_steps: int = 500


@dataclass(frozen=True)
class QueryConfig:
    relevancy_threshold: float = 0.55  # Gaussians at or above it enter the relevancy cloud
    max_points: int = 200000  # top-N most relevant Gaussians kept in the cloud
    negatives: tuple[str, ...] = ("object", "things", "stuff", "texture")
    up: tuple[float, ...] = (0.0, 0.0, 1.0)  # scene-frame up (against gravity); the table normal
    cluster_voxel_size: float = 0.01  # metres; relevant points are voxel-grouped before DBSCAN
    cluster_eps: float = 0.025  # metres; DBSCAN neighbourhood radius between voxel centroids
    cluster_min_points: int = 4  # DBSCAN core-point neighbour count (in voxels)
    box_alignment: str = "gravity"  # gravity (z = up, yaw only: tabletop objects) | free (3D)
    box_quantile: float = 0.005  # extents from this quantile to 1 - it per axis (outlier-robust)


@dataclass(frozen=True)
class GraspConfig:
    max_grasps: int = 10
    gripper_max_width: float = 0.08  # metres, largest opening between the finger pads
    finger_depth: float = 0.03  # metres, finger length from palm to fingertip (along approach)
    finger_thickness: float = 0.01  # metres, along the closing direction
    finger_width: float = 0.02  # metres, across the closing direction (gripper y)
    palm_depth: float = 0.02  # metres, palm thickness behind the fingers (along approach)
    # metres the fingertips reach past the contacts, tried in this order (first collision-free wins)
    contact_depths: tuple[float, ...] = (0.02, 0.012, 0.005)
    width_clearance: float = 0.005  # metres of opening added on each side beyond the contacts
    friction_coefficient: float = 0.4  # friction cone half angle = atan(coefficient)
    contact_samples: int = 128  # first contacts sampled on the object (farthest-point sampling)
    object_voxel_size: float = 0.004  # metres; object points are voxel-averaged before pairing
    max_object_points: int = 2000  # cap on object points used for pairing (after the voxel grid)
    contact_tolerance: float = 0.004  # metres; max distance of the second contact from the closing line
    normal_radius: float = 0.012  # metres; open3d normal estimation radius when normals are not given
    min_normal_consistency: float = 0.9  # contacts need |mean normal| over their normal_radius patch >= this
    max_candidates: int = 256  # best-scoring (pair, approach) candidates collision-checked at most
    approach_count: int = 5  # approach directions per contact pair, spread around the closing axis
    max_approach_angle_deg: float = 90.0  # approaches within this angle of straight down (top-down)
    top_down_preference: float = 0.5  # 0: any approach scores 1; 1: score falls to 0.5 at horizontal
    approach_distance: float = 0.05  # metres the gripper travels along the approach before closing
    collision_margin: float = 0.002  # metres added around fingers and palm in the collision check
    collision_voxel_size: float = 0.006  # metres; object and obstacle points for the collision check
    nms_distance: float = 0.01  # metres; a grasp this close to a better one with a similar
    nms_angle_deg: float = 20.0  # approach (within this angle) is suppressed


@dataclass(frozen=True)
class NodeConfig:
    scene_frame: str = "map"
    pose_source: str = "topic"  # topic | tf
    camera_qos: str = "sensor_data"  # sensor_data | reliable
    status_period_s: float = 1.0
    auto_reconstruct: bool = False


@dataclass(frozen=True)
class LangsceneConfig:
    node: NodeConfig = dataclasses.field(default_factory=NodeConfig)
    models: ModelsConfig = dataclasses.field(default_factory=ModelsConfig)
    keyframe: KeyframeConfig = dataclasses.field(default_factory=KeyframeConfig)
    densify: DensifyConfig = dataclasses.field(default_factory=DensifyConfig)
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    query: QueryConfig = dataclasses.field(default_factory=QueryConfig)
    grasp: GraspConfig = dataclasses.field(default_factory=GraspConfig)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field annotation (as resolved by typing.get_type_hints)."""
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(annotation, value, prefix=f"{key}.")
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        (item_type, _ellipsis) = typing.get_args(annotation)
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation in (int, float, str) and (not isinstance(value, annotation) or isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping; missing keys keep their defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown setting '{prefix}{unknown[0]}'")
    return cls(**{name: _coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()})


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict of a config dataclass (tuples become lists), e.g. for YAML or ROS parameters."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (ROS parameter names)."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{'a.b': 1}`` -> ``{'a': {'b': 1}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> LangsceneConfig:
    """Read a ROS 2 parameter file (``langscene: ros__parameters: {...}``) into a LangsceneConfig."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
    node_section = document.get(NODE_NAME, document.get("/**", {}))
    params = node_section.get("ros__parameters", {}) if isinstance(node_section, Mapping) else {}
    return from_dict(LangsceneConfig, params)
