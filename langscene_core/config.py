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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from langscene_core.errors import ConfigError

NODE_NAME = "langscene"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "langscene.yaml"


@dataclass(frozen=True)
class ClipModelConfig:
    arch: str = "ViT-B-16"
    weights: str = "bundled:tiny-clip"  # pretrained tag (local cache only), a file path, or bundled:NAME
    batch_size: int = 32  # images or texts per encoder call
    # text file of the descriptions the model tells objects apart by, one a line (the query's rival
    # check, query.rival_margin); "": the weights directory's vocabulary.txt (bundled models ship one)
    vocabulary: str = ""


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
    # sampling defaults of the bundled model (one step: its estimate of the mean in-between); the
    # LangScene-X checkpoint wants frames 49, steps 50, guidance 6.0 (README, "Real model weights")
    frames: int = 9  # generated frames per keyframe pair, k * 8 + 1 (keyframes included)
    steps: int = 1
    guidance: float = 1.0
    strength: float = 1.0  # 1: sample from noise; < 1: start from the noised cross-fade of the keyframes (SDEdit)
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
    max_image_side: int = 0  # pixels; reconstruction downscales larger keyframes (0: full resolution)


@dataclass(frozen=True)
class DensifyConfig:
    mode: str = "off"  # off | trimap
    min_registered_fraction: float = 0.8  # of generated frames SfM must register, else keyframes only
    max_keyframe_error_m: float = 0.05  # keyframe centre residual after the Sim(3) alignment
    sfm_min_size: int = 480  # SfM upsamples frames to at least this width (SIFT needs texture scale)


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
    language_cache_mb: float = 2048.0  # CPU stage B: memory for per-view compositing matrices (~10 MB each at 160x120)
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
    relevancy_threshold: float = 0.55  # Gaussians at or above it enter the relevancy cloud
    max_points: int = 200000  # top-N most relevant Gaussians kept in the cloud
    negatives: tuple[str, ...] = ("object", "things", "stuff", "texture")
    # open-set check (text_query.check_rivals): no object is answered when an entry of the CLIP's vocabulary
    # (models.clip.vocabulary) beats the prompt's cosine with the object's mean language feature by more
    # than this. For the bundled CLIP: correct answers of 12 unseen scenes had margins up to 0.22, half
    # the answers to absent names 0.37 and more. 2.0: off (cosines differ by at most 2)
    rival_margin: float = 0.3
    up: tuple[float, ...] = (0.0, 0.0, 1.0)  # scene-frame up (against gravity); the table normal
    cluster_voxel_size: float = 0.01  # metres; relevant points are voxel-grouped before DBSCAN
    cluster_eps: float = 0.025  # metres; DBSCAN neighbourhood radius between voxel centroids
    cluster_min_points: int = 4  # DBSCAN core-point neighbour count (in voxels)
    box_alignment: str = "gravity"  # gravity (z = up, yaw only: tabletop objects) | free (3D)
    box_quantile: float = 0.005  # extents from this quantile to 1 - it per axis (outlier-robust)
    # the relevant cluster seeds the object, which grows over Gaussians above the support surface that
    # lie within object_growth metres of it (relevancy often covers only part of an object). 0: off
    object_growth: float = 0.01
    object_growth_limit: float = 0.05  # metres: growth stays within this margin of the seed's bounding box
    support_clearance: float = 0.006  # metres above the support surface (table) still counted as support


@dataclass(frozen=True)
class GraspConfig:
    max_grasps: int = 10
    gripper_max_width: float = 0.08  # metres, largest opening between the finger pads
    finger_depth: float = 0.03  # metres, finger length from palm to fingertip (along approach)
    finger_thickness: float = 0.01  # metres, along the closing direction
    finger_width: float = 0.02  # metres, across the closing direction (gripper y)
    palm_depth: float = 0.02  # metres, palm thickness behind the fingers (along approach)
    # metres the fingertips reach past a seed contact pair's midpoint along the approach, tried in this
    # order (first feasible wins); negative: the fingers close on the near side (e.g. above a ball's equator)
    # (after these, the deepest clear position of the palm and fingertips is tried: most grasps use it;
    # 0.02 was never the first feasible one over 211 feasible candidates of 4 reconstructed scenes)
    contact_depths: tuple[float, ...] = (0.008, -0.004)
    width_clearance: float = 0.01  # metres of opening added on each side beyond the contacts
    friction_coefficient: float = 0.4  # friction cone half angle = atan(coefficient)
    contact_samples: int = 128  # first contacts sampled on the object (farthest-point sampling)
    object_voxel_size: float = 0.004  # metres; object points are voxel-averaged before pairing
    max_object_points: int = 2000  # about the most object samples: larger objects get a coarser voxel grid
    contact_tolerance: float = 0.004  # metres; max distance of the second contact from the closing line
    normal_radius: float = 0.012  # metres; open3d normal estimation radius when normals are not given
    # metres; contacts need |mean normal| over the samples within smooth_radius >= min_normal_consistency
    # (no edges or rims). Smaller than a small box's half face (a 3.4 cm face is all within 1.2 cm of an edge)
    smooth_radius: float = 0.008
    min_normal_consistency: float = 0.9
    max_candidates: int = 128  # best-scoring (pair, approach) candidates collision-checked at most
    approach_count: int = 5  # approach directions per contact pair, spread around the closing axis
    max_approach_angle_deg: float = 90.0  # approaches within this angle of straight down (top-down)
    top_down_preference: float = 0.5  # 0: any approach scores 1; 1: score falls to 0.5 at horizontal
    approach_distance: float = 0.05  # metres the gripper travels along the approach before closing
    # metres added around fingers and palm in the collision check: reconstructed surfaces sit a few mm
    # inside the true ones and their points are ~voxel spacing apart
    collision_margin: float = 0.005
    # metres kept between the palm and the object along the approach: a reconstructed object's far side
    # (e.g. a cylinder's top seen at a grazing angle) can sit deeper inside its true surface than its sides
    palm_margin: float = 0.008
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
