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
    """Language surface field (langscene_core.field.train): stage A geometry, stage B language."""

    geometry_steps: int = 1500
    language_steps: int = 500
    sh_degree: int = 1
    init_stride: int = 2  # RGB-D initialisation: unproject every n-th pixel
    init_max_points: int = 30000
    # Adam learning rates (means: times the scene scale, as in 3DGS)
    lr_means: float = 1.6e-3
    lr_scales: float = 5e-3
    lr_quats: float = 1e-2
    lr_opacities: float = 5e-2
    lr_sh0: float = 1e-2
    lr_shN: float = 5e-4
    lr_latents: float = 5e-2
    # stage A loss weights
    rgb_l2_weight: float = 0.5  # RGB loss = (1 - w) L1 + w L2
    depth_weight: float = 0.5  # L1 on expected depth where the view has depth
    flatten_weight: float = 10.0  # mean smallest scale (metres)
    normal_weight: float = 0.1  # progressive normal loss (Eq. 7)
    normal_warmup_steps: int = 500  # T_n: all pixels before, angle-filtered after
    normal_tau_thr_deg: float = 30.0  # tau_thr of Eq. 7-8
    # stage B loss weights
    latent_weight: float = 1.0
    s2d_weight: float = 0.1
    s3d_weight: float = 0.05
    s3d_k: int = 5
    # densification and pruning (gsplat DefaultStrategy)
    densify_start: int = 100
    densify_stop: int = 1000
    densify_every: int = 100
    densify_grad_threshold: float = 2e-4
    prune_opacity: float = 0.005
    max_gaussians: int = 200000
    seed: int = 0


@dataclass(frozen=True)
class QueryConfig:
    relevancy_threshold: float = 0.55
    max_points: int = 200000
    negatives: tuple[str, ...] = ("object", "things", "stuff", "texture")


@dataclass(frozen=True)
class GraspConfig:
    max_grasps: int = 10
    gripper_max_width: float = 0.08  # metres
    finger_depth: float = 0.03  # metres


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
