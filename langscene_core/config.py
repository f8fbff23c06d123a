"""Typed settings for every stage, loaded from ``config/langscene.yaml``.

The YAML file is a ROS 2 parameter file: the settings live under ``langscene: ros__parameters:`` and
nest by section (``field.geometry_steps`` is ``field: {geometry_steps: ...}``). The node declares one
ROS parameter per leaf (dotted name); the library reads the same file into these dataclasses.

Each stage owns one dataclass section below; add a setting to the section of the stage that reads it,
declared with :func:`setting` (default, description, range): the node declares its ROS parameter from
that (``langscene_ros.params``). Closed option sets are ``Literal`` types. Unknown keys, wrongly typed
values, a value outside a Literal's choices and a number outside its range raise :class:`ConfigError`
naming the dotted key when the settings are loaded (:func:`from_dict`, :func:`load_config`);
:func:`check_limits` checks a config built in code the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from langscene_core.errors import ConfigError

NODE_NAME = "langscene"
PACKAGE_NAME = "langscene"  # the ROS package: its share directory holds config/ when installed


def _config_dirs():
    """The directories :func:`config_path` looks in, in order (computed lazily: ament_index last)."""
    package_dir = Path(__file__).absolute().parent
    checkout = package_dir.resolve().parent
    if (checkout / "package.xml").is_file():
        yield checkout / "config"
    if len(package_dir.parents) > 3:  # <prefix>/lib/pythonX.Y/site-packages/langscene_core
        yield package_dir.parents[3] / "share" / PACKAGE_NAME / "config"
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE_NAME))
    except (ImportError, LookupError, OSError):  # no ament_index, no AMENT_PREFIX_PATH, or not on it
        return
    yield share / "config"


def config_path(name: str) -> Path:
    """The shipped settings file ``name`` (``langscene.yaml``, ``demo.yaml``, ``demo_scene.json``...).

    Looked up in order: the source checkout's ``config/`` (this package next to ``package.xml``);
    the share directory of the prefix this package is installed in (``<prefix>/lib/pythonX.Y/
    site-packages/langscene_core`` -> ``<prefix>/share/langscene/config``, where colcon and pip put
    it); the package share directory ament_index finds on ``AMENT_PREFIX_PATH``. The first place
    holding the file wins; when none does, the first place is returned, so that opening the file
    fails naming where it was expected.
    """
    first = None
    for directory in _config_dirs():
        first = first or directory
        if (directory / name).is_file():
            return directory / name
    return (first or Path("config")) / name


DEFAULT_CONFIG_PATH = config_path("langscene.yaml")


# Closed option sets (gsplat's convention: ``Literal`` types, checked where the settings are loaded).
Device = Literal["auto", "cpu", "cuda"]
TrimapDtype = Literal["auto", "float32", "float16", "bfloat16"]
TrimapOffload = Literal["none", "model", "sequential"]
MaskMapper = Literal["felzenszwalb", "depth", "sam2"]
DensifyMode = Literal["off", "trimap", "auto"]
BoxAlignment = Literal["gravity", "free"]
Reliability = Literal["best_effort", "reliable"]
Durability = Literal["volatile", "transient_local"]
PoseSource = Literal["tf", "topic"]
ImageTransport = Literal["raw", "compressed"]
DepthTransport = Literal["raw", "compressedDepth"]

INF = math.inf


def setting(default: Any, help: str, bounds: tuple[float, float] | None = None, positive: bool = False) -> Any:
    """A config field with its description (``metadata["help"]``) and allowed values.

    bounds: closed range ``(lo, hi)`` (``INF`` for no upper bound) of a number, or of every item of a
    tuple of numbers; positive: the lower bound is open, ``value > lo`` (``bounds`` then defaults to
    ``(0, INF)``: ``value > 0``). The loader checks both; the ROS layer declares them in the parameter descriptors.
    """
    if positive and bounds is None:
        bounds = (0.0, INF)
    return dataclasses.field(default=default, metadata={"help": help, "range": bounds, "positive": positive})


PROBABILITY = (0.0, 1.0)
COUNT = (0, INF)  # >= 0
AT_LEAST_ONE = (1, INF)
NON_NEGATIVE = (0.0, INF)
ANGLE_DEG = (0.0, 180.0)


@dataclass(frozen=True)
class ClipModelConfig:
    arch: str = setting(
        "ViT-B-16",
        "open_clip architecture name (ignored for directory weights, bundled:NAME included: they carry their own)",
    )
    weights: str = setting(
        "bundled:tiny-clip", "open_clip pretrained tag (local cache only), a weights file, or bundled:NAME"
    )
    batch_size: int = setting(32, "images or texts per encoder call", AT_LEAST_ONE)
    vocabulary: str = setting(
        "",
        "text file of the descriptions the model tells objects apart by, one a line (the query's rival "
        "check, query.rival_margin); empty: the weights directory's vocabulary.txt (bundled models ship one)",
    )


@dataclass(frozen=True)
class LqcModelConfig:
    checkpoint: str = setting(
        "bundled:tiny-lqc", "LQC weights: a .safetensors file written by langscene train-lqc, or bundled:NAME"
    )


@dataclass(frozen=True)
class LqcTrainConfig:
    """Architecture and training of the Language Quantized Compressor (paper section 3.3)."""

    feature_dim: int = setting(512, "CLIP feature width", AT_LEAST_ONE)
    latent_dim: int = setting(3, "latent width D", AT_LEAST_ONE)
    codebook_size: int = setting(2048, "codebook entries K", AT_LEAST_ONE)
    hidden_dims: tuple[int, ...] = setting((256, 128), "encoder layer widths; the decoder mirrors them", AT_LEAST_ONE)
    quantized: bool = setting(True, "false: a plain autoencoder with the same bottleneck (baseline)")
    steps: int = setting(2000, "training steps", AT_LEAST_ONE)
    batch_size: int = setting(1024, "features per training step", AT_LEAST_ONE)
    learning_rate: float = setting(0.001, "Adam learning rate", NON_NEGATIVE)
    weight_reconstruction: float = setting(1.0, "lambda_1, reconstruction loss weight (Eq. 3)", NON_NEGATIVE)
    weight_codebook: float = setting(0.2, "lambda_2, codebook loss weight (Eq. 4)", NON_NEGATIVE)
    weight_text: float = setting(0.5, "lambda_3, text-alignment loss weight (Eq. 5)", NON_NEGATIVE)
    restart_every: int = setting(10, "steps between dead-code restarts (0: never; the codebook then collapses)", COUNT)
    seed: int = setting(0, "random seed", COUNT)


@dataclass(frozen=True)
class TrimapModelConfig:
    path: str = setting("bundled:tiny-trimap", "TriMap model: a diffusers directory, an HF cache id, or bundled:NAME")
    dtype: TrimapDtype = setting("auto", "weights dtype; auto: bfloat16 on CUDA, float32 on the CPU")
    offload: TrimapOffload = setting(
        "none", "none: all on models.device; model / sequential: diffusers CPU offload per model / per layer (CUDA)"
    )
    frames: int = setting(
        9,
        "generated frames per keyframe pair, k * 8 + 1, keyframes included (the bundled model's; "
        "the LangScene-X checkpoint: 49)",
        (2, INF),
    )
    steps: int = setting(1, "denoising steps (the bundled model's; the LangScene-X checkpoint: 50)", AT_LEAST_ONE)
    guidance: float = setting(
        1.0, "classifier-free guidance scale (the bundled model's; the LangScene-X checkpoint: 6.0)", NON_NEGATIVE
    )
    strength: float = setting(
        1.0,
        "1: sample from noise; < 1: start from the noised cross-fade of the keyframes (SDEdit)",
        positive=True,
        bounds=(0.0, 1.0),
    )
    height: int = setting(0, "generation height in pixels; 0: the model's native size (480 for CogVideoX-5B)", COUNT)
    width: int = setting(0, "generation width in pixels; 0: the model's native size (720 for CogVideoX-5B)", COUNT)
    vae_tiling: bool = setting(False, "decode in tiles (less GPU memory)")
    prompt: str = setting("a 3D consistent video scene", "text prompt of the generation")
    min_pair_arc_deg: float = setting(
        15.0, "keyframe pairs closer than this (angle between optical axes) are not densified", ANGLE_DEG
    )
    max_pair_arc_deg: float = setting(
        60.0,
        "keyframe pairs farther apart than this are not densified (the bundled model trained on 15-60 deg arcs, "
        "its training.json train_arc_deg; set the range your checkpoint was trained on)",
        ANGLE_DEG,
    )


@dataclass(frozen=True)
class MasksConfig:
    mapper: MaskMapper = setting(
        "felzenszwalb",
        "segmenter of the language stage's mask levels s, m, l: felzenszwalb (colour only, any frame), depth "
        "(RGB-D frames only: whole objects at l from depth and the support plane; a frame without depth is "
        "an error), sam2 (not available in this build)",
    )
    felzenszwalb_scale: float = setting(100.0, "s level: skimage felzenszwalb scale on 0..1 RGB", positive=True)
    felzenszwalb_sigma: float = setting(0.5, "s level: Gaussian smoothing before segmentation (pixels)", NON_NEGATIVE)
    felzenszwalb_min_size: int = setting(20, "s level: smallest segment (pixels)", COUNT)
    merge_thresholds: tuple[float, ...] = setting(
        (0.08, 0.2), "m, l levels: RGB distance (0..1 RGB) up to which regions merge, increasing", NON_NEGATIVE
    )
    depth_jump: float = setting(
        0.03,
        "depth mapper: neighbours whose depths differ by more than this fraction of depth are cut apart",
        positive=True,
    )
    crease_deg: float = setting(40.0, "depth mapper, m level: neighbours whose normals differ more are cut", ANGLE_DEG)
    plane_tolerance: float = setting(
        0.005, "depth mapper: metres from the support plane (RANSAC) within which a pixel lies on it", positive=True
    )
    plane_min_fraction: float = setting(
        0.2,
        "depth mapper: least fraction of the pixels with depth on the plane for it to count as support",
        PROBABILITY,
    )
    join_pixels: float = setting(
        2.0,
        "depth mapper: off-plane surfaces split by a depth step join when their closest points are within "
        "this many pixel footprints (depth / fx) in 3D (a bowl's wall and its inside)",
        NON_NEGATIVE,
    )


@dataclass(frozen=True)
class ModelsConfig:
    device: Device = setting("auto", "torch device; auto: cuda when available, else cpu")
    clip: ClipModelConfig = dataclasses.field(default_factory=ClipModelConfig)
    lqc: LqcModelConfig = dataclasses.field(default_factory=LqcModelConfig)
    lqc_train: LqcTrainConfig = dataclasses.field(default_factory=LqcTrainConfig)
    trimap: TrimapModelConfig = dataclasses.field(default_factory=TrimapModelConfig)
    masks: MasksConfig = dataclasses.field(default_factory=MasksConfig)


@dataclass(frozen=True)
class KeyframeConfig:
    min_translation: float = setting(0.05, "metres the camera moves since the last keyframe", NON_NEGATIVE)
    min_rotation_deg: float = setting(10.0, "or degrees it turns since the last keyframe", ANGLE_DEG)
    min_sharpness: float = setting(
        10.0,
        "least variance of the Laplacian of the grey image (0..255 scale); blurrier frames are skipped",
        NON_NEGATIVE,
    )
    max_keyframes: int = setting(64, "bounded buffer; frames past it are dropped and counted", AT_LEAST_ONE)
    max_image_side: int = setting(
        0, "pixels; reconstruction downscales larger keyframes to this longer side (0: full resolution)", COUNT
    )


@dataclass(frozen=True)
class DensifyConfig:
    mode: DensifyMode = setting(
        "off",
        "off: keyframes only; trimap: add TriMap frames between keyframe pairs in the model's arc range, posed by "
        "PnP to the keyframes' depth; auto: trimap when there are at most auto_max_keyframes keyframes",
    )
    auto_max_keyframes: int = setting(
        4, "mode auto densifies only scenes with at most this many keyframes (few views)", AT_LEAST_ONE
    )
    min_registered_fraction: float = setting(
        0.8, "fraction of generated frames SfM must register, else keyframes only", PROBABILITY
    )
    max_keyframe_error_m: float = setting(
        0.05, "metres: largest keyframe centre residual after the Sim(3) alignment", NON_NEGATIVE
    )
    sfm_min_size: int = setting(
        480, "SIFT (SfM and PnP registration) upsamples frames to at least this width (texture scale)", COUNT
    )
    pnp_min_inliers: int = setting(
        25, "PnP registration: fewest 2D-3D matches and inliers for a generated frame to be kept", AT_LEAST_ONE
    )
    pnp_max_error_px: float = setting(
        2.0, "PnP registration: RANSAC reprojection tolerance in pixels of the keyframes' size", positive=True
    )
    generated_weight: float = setting(
        0.5,
        "scale of a generated frame's losses against a keyframe's 1 (keyframes win where they disagree)",
        PROBABILITY,
    )
    pnp_max_offset: float = setting(
        0.5, "PnP registration: farthest camera centre from the keyframes' baseline, in baseline lengths", NON_NEGATIVE
    )


@dataclass(frozen=True)
class FieldConfig:
    """Language surface field (langscene_core.field.train): stage A geometry, stage B language."""

    geometry_steps: int = setting(1500, "stage A (geometry) training steps", COUNT)
    language_steps: int = setting(500, "stage B (language) training steps", COUNT)
    sh_degree: int = setting(1, "spherical-harmonics degree of the colours", (0, 4))
    init_stride: int = setting(2, "RGB-D initialisation: unproject every n-th pixel", AT_LEAST_ONE)
    init_max_points: int = setting(30000, "RGB-D initialisation: most Gaussians", AT_LEAST_ONE)
    lr_means: float = setting(
        1.6e-3, "Adam learning rate of the means, times the scene scale (as in 3DGS)", NON_NEGATIVE
    )
    lr_scales: float = setting(5e-3, "Adam learning rate of the log scales", NON_NEGATIVE)
    lr_quats: float = setting(1e-2, "Adam learning rate of the rotations", NON_NEGATIVE)
    lr_opacities: float = setting(5e-2, "Adam learning rate of the opacity logits", NON_NEGATIVE)
    lr_sh0: float = setting(1e-2, "Adam learning rate of the SH base colour", NON_NEGATIVE)
    lr_shN: float = setting(5e-4, "Adam learning rate of the higher SH bands", NON_NEGATIVE)
    lr_latents: float = setting(5e-2, "Adam learning rate of the language latents", NON_NEGATIVE)
    rgb_l2_weight: float = setting(0.5, "stage A: RGB loss = (1 - w) L1 + w L2", PROBABILITY)
    depth_weight: float = setting(0.5, "stage A: L1 on expected depth where the view has depth", NON_NEGATIVE)
    flatten_weight: float = setting(10.0, "stage A: weight of the mean smallest scale (metres)", NON_NEGATIVE)
    normal_weight: float = setting(0.1, "stage A: progressive normal loss weight (Eq. 7)", NON_NEGATIVE)
    normal_warmup_steps: int = setting(500, "T_n of Eq. 7: all pixels before it, angle-filtered after", COUNT)
    normal_tau_thr_deg: float = setting(30.0, "tau_thr of Eq. 7-8 (degrees)", ANGLE_DEG)
    latent_weight: float = setting(
        1.0, "stage B: weight of the squared L2 between rendered and target latent maps", NON_NEGATIVE
    )
    s2d_weight: float = setting(
        0.1, "stage B: L_s2d weight (Eq. 9): rendered latents within a mask pulled together", NON_NEGATIVE
    )
    s3d_weight: float = setting(
        0.05, "stage B: L_s3d weight (Eq. 9): KL between neighbouring Gaussians' latents", NON_NEGATIVE
    )
    s3d_k: int = setting(5, "stage B: nearest neighbours of each Gaussian in L_s3d", AT_LEAST_ONE)
    language_cache_mb: float = setting(
        2048.0, "CPU stage B: memory for per-view compositing matrices (about 10 MB each at 160x120)", NON_NEGATIVE
    )
    densify_start: int = setting(100, "first step of densification and pruning (gsplat DefaultStrategy)", COUNT)
    densify_stop: int = setting(1000, "last step of densification and pruning", COUNT)
    densify_every: int = setting(100, "steps between densification and pruning", AT_LEAST_ONE)
    densify_grad_threshold: float = setting(
        2e-4, "image-space gradient above which a Gaussian is split or cloned", NON_NEGATIVE
    )
    prune_opacity: float = setting(0.005, "Gaussians below this opacity are pruned", PROBABILITY)
    max_gaussians: int = setting(200000, "densification adds no Gaussians past this count", AT_LEAST_ONE)
    seed: int = setting(0, "random seed", COUNT)


@dataclass(frozen=True)
class QueryConfig:
    relevancy_threshold: float = setting(
        0.55, "Gaussians at or above this relevancy enter the relevancy cloud", PROBABILITY
    )
    max_points: int = setting(200000, "the relevancy cloud keeps the N most relevant Gaussians", AT_LEAST_ONE)
    answer_cache: int = setting(
        64,
        "answers kept per scene for repeated identical requests (a planner polling one object); 0: none. "
        "A scene never changes, so a kept answer is the answer",
        COUNT,
    )
    negatives: tuple[str, ...] = setting(
        ("object", "things", "stuff", "texture"), "canonical negative phrases of the relevancy"
    )
    level_margin: float = setting(
        0.1,
        "the large mask level (whole objects) answers unless a smaller level's best relevancy beats it by more "
        "than this; 0: LangSplat's rule (the level with the highest maximum), 1: always the large level",
        PROBABILITY,
    )
    rival_margin: float = setting(
        0.3,
        "open-set check: no object is answered when an entry of models.clip.vocabulary beats the prompt's "
        "cosine with the object's mean language feature by more than this; 2.0: off",
        (0.0, 2.0),
    )
    up: tuple[float, ...] = setting((0.0, 0.0, 1.0), "scene-frame up vector (against gravity); the table normal")
    cluster_voxel_size: float = setting(0.01, "metres; relevant points are voxel-grouped before DBSCAN", positive=True)
    cluster_eps: float = setting(0.025, "metres; DBSCAN neighbourhood radius between voxel centroids", positive=True)
    cluster_min_points: int = setting(4, "DBSCAN core-point neighbour count (in voxels)", AT_LEAST_ONE)
    purity_prior: float = setting(
        20.0,
        "on a tabletop, clusters compete by the mean relevancy of their column counted with this many "
        "extra Gaussians of relevancy 0: a few relevant floaters in empty space (a reconstruction's border) "
        "are weak evidence of an object; 0: the plain mean",
        NON_NEGATIVE,
    )
    box_alignment: BoxAlignment = setting(
        "gravity", "gravity: z = up, yaw only (tabletop objects); free: minimal oriented 3D box"
    )
    box_quantile: float = setting(
        0.005, "box extents span this quantile to 1 - it per axis (outlier-robust)", (0.0, 0.5)
    )
    object_growth: float = setting(
        0.01,
        "metres: the object grows from its relevant cluster over Gaussians above the support surface within "
        "this distance (relevancy often covers only part of an object); 0: off",
        NON_NEGATIVE,
    )
    object_growth_limit: float = setting(
        0.05, "metres: growth stays within this margin of the seed's bounding box", NON_NEGATIVE
    )
    support_clearance: float = setting(
        0.006, "metres above the support surface (table) still counted as support", NON_NEGATIVE
    )


@dataclass(frozen=True)
class GraspConfig:
    max_grasps: int = setting(10, "most grasps per answer", AT_LEAST_ONE)
    gripper_max_width: float = setting(0.08, "metres, largest opening between the finger pads", positive=True)
    finger_depth: float = setting(
        0.03, "metres, finger length from palm to fingertip (along the approach)", positive=True
    )
    finger_thickness: float = setting(0.01, "metres, finger size along the closing direction", positive=True)
    finger_width: float = setting(0.02, "metres, finger size across the closing direction (gripper y)", positive=True)
    palm_depth: float = setting(0.02, "metres, palm thickness behind the fingers (along the approach)", positive=True)
    contact_depths: tuple[float, ...] = setting(
        (0.008, -0.004),
        "metres the fingertips reach past a contact pair's midpoint along the approach, tried in order (first "
        "feasible wins; then the deepest clear position); negative: the fingers close on the near side",
    )
    width_clearance: float = setting(0.01, "metres of opening added on each side beyond the contacts", NON_NEGATIVE)
    friction_coefficient: float = setting(0.4, "friction cone half angle = atan(coefficient)", positive=True)
    contact_samples: int = setting(128, "first contacts sampled on the object (farthest-point sampling)", AT_LEAST_ONE)
    object_voxel_size: float = setting(0.004, "metres; object points are voxel-averaged before pairing", positive=True)
    max_object_points: int = setting(
        2000, "about the most object samples: larger objects get a coarser voxel grid", AT_LEAST_ONE
    )
    contact_tolerance: float = setting(
        0.004, "metres; largest distance of the second contact from the closing line", positive=True
    )
    normal_radius: float = setting(
        0.012, "metres; open3d normal estimation radius when normals are not given", positive=True
    )
    smooth_radius: float = setting(
        0.008,
        "metres; a contact needs |mean normal| >= min_normal_consistency over the samples within it (no edges or rims)",
        positive=True,
    )
    min_normal_consistency: float = setting(
        0.9, "least |mean unit normal| of the samples within smooth_radius of a contact (1: flat)", PROBABILITY
    )
    max_candidates: int = setting(128, "most best-scoring (pair, approach) candidates collision-checked", AT_LEAST_ONE)
    approach_count: int = setting(
        5, "approach directions per contact pair, spread around the closing axis", AT_LEAST_ONE
    )
    max_approach_angle_deg: float = setting(
        90.0, "degrees: approaches within this angle of straight down (90: down to horizontal)", (0.0, 90.0)
    )
    top_down_preference: float = setting(
        0.5, "0: any approach scores 1; 1: the score falls to 0.5 at horizontal", PROBABILITY
    )
    approach_distance: float = setting(
        0.05, "metres the gripper travels along the approach before closing", NON_NEGATIVE
    )
    collision_margin: float = setting(
        0.005,
        "metres added around fingers and palm in the collision check (reconstructed surfaces sit a few mm "
        "inside the true ones, their points about a voxel apart)",
        NON_NEGATIVE,
    )
    palm_margin: float = setting(
        0.008,
        "metres kept between the palm and the object along the approach (a reconstructed object's far side "
        "can sit deeper inside its true surface than its sides)",
        positive=True,
    )
    collision_voxel_size: float = setting(
        0.006, "metres; voxel of the object and obstacle points in the collision check", positive=True
    )
    nms_distance: float = setting(
        0.01, "metres; a grasp this close to a better one with a similar approach is suppressed", NON_NEGATIVE
    )
    nms_angle_deg: float = setting(20.0, "approaches within this angle are similar (see nms_distance)", ANGLE_DEG)


@dataclass(frozen=True)
class InputQos:
    """QoS of a group of the node's subscriptions (always keep-last, volatile)."""

    reliability: Reliability = setting(
        "best_effort",
        "best_effort (sensor data: matches reliable and best-effort publishers; what the network drops is "
        "lost) or reliable (only reliable publishers match; every message is resent until it arrives)",
    )
    depth: int = setting(
        5, "messages kept (keep last) while this input's callback is busy; older ones are dropped", AT_LEAST_ONE
    )


_DURABILITY_HELP = (
    "transient_local (the last depth messages are kept and sent to subscribers that join later, e.g. an RViz "
    "opened after the answer, when they ask for transient_local too) or volatile (each message sent once)"
)
_OUTPUT_DEPTH_HELP = "messages kept (keep last) for slow or late subscribers"


@dataclass(frozen=True)
class OutputQos:
    """QoS of a group of the node's publishers (always reliable, keep-last: a reliable publisher also
    serves best-effort subscribers). The default: the latest message kept for late subscribers."""

    durability: Durability = setting("transient_local", _DURABILITY_HELP)
    depth: int = setting(1, _OUTPUT_DEPTH_HELP, AT_LEAST_ONE)


@dataclass(frozen=True)
class StreamOutputQos(OutputQos):
    """OutputQos of an output nobody needs late (volatile, keep last 10)."""

    durability: Durability = setting("volatile", _DURABILITY_HELP)
    depth: int = setting(10, _OUTPUT_DEPTH_HELP, AT_LEAST_ONE)


@dataclass(frozen=True)
class QosConfig:
    """QoS of the node's inputs and outputs by group (read once at start). /tf and /tf_static keep
    tf2's profiles, ~/status and /diagnostics theirs (DESIGN section 3)."""

    camera: InputQos = dataclasses.field(default_factory=InputQos)  # image, depth, camera_info (any transport)
    pose: InputQos = dataclasses.field(default_factory=InputQos)  # camera_pose (pose_source topic)
    scene_cloud: OutputQos = dataclasses.field(default_factory=OutputQos)  # ~/scene_cloud
    markers: OutputQos = dataclasses.field(default_factory=OutputQos)  # ~/markers and ~/grasps: the last answer
    relevancy_cloud: StreamOutputQos = dataclasses.field(default_factory=StreamOutputQos)  # ~/relevancy_cloud


@dataclass(frozen=True)
class NodeConfig:
    scene_frame: str = setting("map", "frame of the camera poses, the scene and every answer")
    # frames and time (#28, DESIGN 3 "Frames and time")
    pose_source: PoseSource = setting(
        "tf",
        "tf: each image's pose is the transform scene_frame <- camera frame at the image stamp (/tf, "
        "/tf_static); topic: camera_pose PoseStamped messages, interpolated between the two around the image stamp",
    )
    camera_frame: str = setting(
        "", "the camera's optical frame for pose_source tf; empty: each image's header.frame_id"
    )
    max_pose_gap_s: float = setting(
        0.2, "pose_source topic: seconds two camera poses may be apart to interpolate between them", positive=True
    )
    depth_wait_s: float = setting(
        0.5,
        "seconds (of image stamps) an image waits for a depth partner before the first depth message arrived, "
        "so an image overtaking its depth still gets it; when none arrives in that time the camera counts as "
        "RGB-only and images go on without depth; 0: never wait (at most 5, how long any image waits)",
        (0.0, 5.0),
    )
    output_frame: str = setting("", "frame of the answers when a query names none; empty: scene_frame")
    tf_cache_s: float = setting(10.0, "seconds of transform history kept per /tf edge", positive=True)
    max_extrapolation_s: float = setting(
        0.0,
        "transform lookups up to this many seconds past the newest (or before the oldest) data take it",
        NON_NEGATIVE,
    )
    qos: QosConfig = dataclasses.field(default_factory=QosConfig)
    image_transport: ImageTransport = setting(
        "raw",
        "colour input: raw (sensor_msgs/Image on image) or compressed (sensor_msgs/CompressedImage jpeg/png "
        "on <resolved image topic>/compressed, as image_transport names it)",
    )
    depth_transport: DepthTransport = setting(
        "raw",
        "depth input: raw (sensor_msgs/Image on depth) or compressedDepth (sensor_msgs/CompressedImage on "
        "<resolved depth topic>/compressedDepth in compressed_depth_image_transport's format)",
    )
    max_future_s: float = setting(
        2.0,
        "seconds an input's stamp may lie ahead of the node's clock (clock skew between machines); "
        "later stamps are rejected",
        NON_NEGATIVE,
    )
    service_queue_depth: int = setting(
        100,
        "requests each service keeps while its callback is busy (more clients calling at once than this: "
        "the oldest requests are lost)",
        AT_LEAST_ONE,
    )
    status_period_s: float = setting(1.0, "seconds between ~/status and /diagnostics messages", positive=True)
    shutdown_wait_s: float = setting(
        3.0,
        "seconds a shutdown (SIGTERM, Ctrl-C) waits for a running reconstruction to stop at its next step; "
        "when a step is longer the process exits without it (the half-built scene is discarded either way); "
        "keep it under launch's sigterm_timeout (5 s), after which launch kills the node",
        NON_NEGATIVE,
    )
    silent_input_s: float = setting(
        5.0, "seconds without a message on a camera input before /diagnostics warns", positive=True
    )
    auto_reconstruct_keyframes: int = setting(
        0, "reconstruct by itself once this many keyframes arrived since the last reconstruction; 0: off", COUNT
    )
    auto_reconstruct_still_s: float = setting(
        0.0,
        "reconstruct by itself when new keyframes wait and images kept coming for this many seconds (image "
        "stamps) without a new keyframe: the camera is still; 0: off",
        NON_NEGATIVE,
    )
    initial_scene: str = setting(
        "", "scene (a name or path inside scene_dir) loaded at start, so the node answers at once; '': none"
    )
    scene_dir: str = setting(
        "",
        "the only directory ~/save_scene and ~/load_scene read and write (scene names or paths inside it); "
        "'': $ROS_HOME/langscene/scenes (ROS_HOME defaults to ~/.ros)",
    )


@dataclass(frozen=True)
class LimitsConfig:
    """What one client request may ask for (beyond it: BAD_REQUEST) and the room a scene save leaves."""

    max_prompt_chars: int = setting(256, "longest query prompt, characters (CLIP reads 77 tokens)", AT_LEAST_ONE)
    max_negatives: int = setting(32, "most extra negative phrases in one query", COUNT)
    max_negative_chars: int = setting(256, "longest extra negative phrase, characters", AT_LEAST_ONE)
    max_points: int = setting(1000000, "largest max_points a query may ask for (relevancy cloud size)", AT_LEAST_ONE)
    max_grasps: int = setting(100, "largest max_grasps a query may ask for", AT_LEAST_ONE)
    max_objects: int = setting(
        10, "largest max_objects a query may ask for (the object and its alternatives)", AT_LEAST_ONE
    )
    max_image_pixels: int = setting(
        16_777_216, "largest colour or depth image taken, width x height pixels (larger: rejected)", AT_LEAST_ONE
    )
    scene_min_free_mb: float = setting(
        1024.0, "MB a scene save must leave free on the scene directory's disk, else it is refused", NON_NEGATIVE
    )


@dataclass(frozen=True)
class LangsceneConfig:
    node: NodeConfig = dataclasses.field(default_factory=NodeConfig)
    models: ModelsConfig = dataclasses.field(default_factory=ModelsConfig)
    keyframe: KeyframeConfig = dataclasses.field(default_factory=KeyframeConfig)
    densify: DensifyConfig = dataclasses.field(default_factory=DensifyConfig)
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    query: QueryConfig = dataclasses.field(default_factory=QueryConfig)
    grasp: GraspConfig = dataclasses.field(default_factory=GraspConfig)
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)


# settings replaced by others: old dotted key -> what to set instead (the loader's error names it)
REPLACED = {
    "node.camera_qos": "node.qos.camera.reliability (best_effort or reliable; sensor_data was best_effort)",
}


@dataclass(frozen=True)
class SettingInfo:
    """One leaf setting as the ROS layer declares it: dotted name, default, description and limits."""

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()  # a Literal's values; () for free values
    bounds: tuple[float, float] | None = None  # closed range of the value (or of each tuple item)
    positive: bool = False  # value > 0 (the lower bound is open)

    def describe_limits(self) -> str:
        """The limits in words, as errors and parameter descriptors state them ("" when there are none):
        ``one of: a, b``, ``[0, 1]``, ``> 0``, ``>= 1``, ``each item >= 0``."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.bounds is None:
            return ""
        lo, hi = self.bounds
        if hi == INF:
            text = f"> {lo:g}" if self.positive else f">= {lo:g}"
        else:
            text = f"{'(' if self.positive else '['}{lo:g}, {hi:g}]"
        return f"each item {text}" if isinstance(self.default, tuple) else text


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, Any, SettingInfo | None], ...]:
    """(field, resolved annotation, SettingInfo named by the field alone; None for a section) of config
    dataclass ``cls``, computed once per class (resolving string annotations is slow)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        info = None
        if not dataclasses.is_dataclass(annotation):
            info = SettingInfo(
                name=f.name,
                default=f.default,
                help=f.metadata.get("help", ""),
                choices=typing.get_args(annotation) if typing.get_origin(annotation) is Literal else (),
                bounds=f.metadata.get("range"),
                positive=f.metadata.get("positive", False),
            )
        out.append((f, annotation, info))
    return tuple(out)


def describe_settings(cls: type = LangsceneConfig, prefix: str = "") -> dict[str, SettingInfo]:
    """Every leaf setting of config dataclass ``cls`` by dotted name, in declaration order."""
    out: dict[str, SettingInfo] = {}
    for f, annotation, info in _fields(cls):
        name = f"{prefix}{f.name}"
        if info is None:
            out.update(describe_settings(annotation, f"{name}."))
        else:
            out[name] = dataclasses.replace(info, name=name)
    return out


def _check_limits(value: Any, info: SettingInfo, key: str) -> None:
    """Raise ConfigError naming ``key``, the value and the choices / range when ``value`` is outside them."""
    if info.choices and value not in info.choices:
        hint = " (quote it in YAML: unquoted on/off/yes/no are booleans)" if isinstance(value, bool) else ""
        raise ConfigError(f"{key}: {value!r} is not {info.describe_limits()}{hint}")
    if info.bounds is None:
        return
    lo, hi = info.bounds
    for item in value if isinstance(value, tuple) else (value,):
        if not (lo < item <= hi if info.positive else lo <= item <= hi):
            raise ConfigError(f"{key}: {value!r} is out of range: expected {info.describe_limits()}")


def check_limits(config: Any, prefix: str = "") -> None:
    """Check every leaf of a built config dataclass (e.g. one made in code, which the loader never saw)
    against its choices and range; ConfigError names ``prefix`` + the dotted key (``grasp.``)."""
    for f, _annotation, info in _fields(type(config)):
        value, key = getattr(config, f.name), f"{prefix}{f.name}"
        if info is None:
            check_limits(value, f"{key}.")
        else:
            _check_limits(value, info, key)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value``'s type against a field annotation (as resolved by typing.get_type_hints)."""
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
    if origin is Literal:
        return value  # the choices are checked with the limits
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation in (int, float, str) and (not isinstance(value, annotation) or isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping; missing keys keep their defaults.

    Raises ConfigError naming the dotted key on an unknown key, a wrong type, a value that is not one
    of a Literal's choices, or a number outside its range.
    """
    fields = {f.name: (annotation, info) for f, annotation, info in _fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        hint = f"; replaced by {REPLACED[key]}" if key in REPLACED else ""
        raise ConfigError(f"unknown setting '{key}'{hint}")
    values = {}
    for name, value in data.items():
        annotation, info = fields[name]
        key = f"{prefix}{name}"
        values[name] = _coerce(value, annotation, key)
        if info is not None:
            _check_limits(values[name], info, key)
    return cls(**values)


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
