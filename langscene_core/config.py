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
    weights: str = "bundled:tiny-clip"  # pretrained tag (local cache only), a file path, or bundled:NAME
    batch_size: int = 32  # images or texts per encoder call


@dataclass(frozen=True)
class LqcModelConfig:
    checkpoint: str = "bundled:tiny-lqc"  # a .safetensors file written by langscene train-lqc, or bundled:NAME


@dataclass(frozen=True)
class LqcTrainConfig:
    """Architecture and training of the Language Quantized Compressor (paper section 3.3)."""

    feature_dim: int = 512  # CLIP width
    latent_dim: int = 3  # D
    codebook_size: int = 2048  # K
    hidden_dims: tuple[int, ...] = (256, 128)  # encoder widths; the decoder mirrors them
    quantized: bool = True  # false: plain autoencoder with the same bottleneck (baseline)
    steps: int = 2000
    batch_size: int = 1024
    learning_rate: float = 0.001
    weight_reconstruction: float = 1.0  # lambda_1, Eq. 3
    weight_codebook: float = 0.2  # lambda_2, Eq. 4
    weight_text: float = 0.5  # lambda_3, Eq. 5
    restart_every: int = 10  # steps between dead-code restarts (0: never; the codebook then collapses)
    seed: int = 0


@dataclass(frozen=True)
class TrimapModelConfig:
    path: str = "bundled:tiny-trimap"  # diffusers directory, HF cache id, or bundled:NAME
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    offload: str = "none"  # none | model | sequential
    frames: int = 49  # generated frames per keyframe pair, k * 8 + 1 (keyframes included)
    steps: int = 50
    guidance: float = 6.0
    height: int = 0  # generation size in pixels; 0 = the model's native size (480 x 720 for CogVideoX-5B)
    width: int = 0
    vae_tiling: bool = False  # decode in tiles (less GPU memory)
    prompt: str = "a 3D consistent video scene"


@dataclass(frozen=True)
class MasksConfig:
    mapper: str = "felzenszwalb"  # felzenszwalb | sam2
    checkpoint: str = ""
    felzenszwalb_scale: float = 100.0  # s level: skimage felzenszwalb scale on 0..1 RGB
    felzenszwalb_sigma: float = 0.5
    felzenszwalb_min_size: int = 20  # pixels
    merge_thresholds: tuple[float, ...] = (0.08, 0.2)  # m, l: RGB distance (0..1) of merged regions


@dataclass(frozen=True)
class ModelsConfig:
    device: str = "auto"  # auto | cpu | cuda
    clip: ClipModelConfig = dataclasses.field(default_factory=ClipModelConfig)
    lqc: LqcModelConfig = dataclasses.field(default_factory=LqcModelConfig)
    lqc_train: LqcTrainConfig = dataclasses.field(default_factory=LqcTrainConfig)
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
    min_registered_fraction: float = 0.8  # of generated frames SfM must register, else keyframes only
    max_keyframe_error_m: float = 0.05  # keyframe centre residual after the Sim(3) alignment
    sfm_min_size: int = 480  # SfM upsamples frames to at least this width (SIFT needs texture scale)


@dataclass(frozen=True)
class FieldConfig:
    geometry_steps: int = 1500
    language_steps: int = 500


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
