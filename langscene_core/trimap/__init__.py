"""TriMap video diffusion (paper section 3.2): keyframe interpolation of RGB, normals and semantics on the
CogVideoX architecture, pose recovery of the generated frames, and training.

Entry point for the reconstruction job::

    pipe = load_trimap(config.models.trimap, device)          # bundled:NAME or a diffusers directory
    clip = densify_pair(pipe, TrimapKeyframe.from_frame(a, masks_a), TrimapKeyframe.from_frame(b, masks_b),
                        config.models.trimap, config.densify)
    # clip.rgb [T,H,W,3], clip.normals [T,H,W,3] | None, clip.masks [T,L,H,W] | None,
    # clip.poses [T,4,4] | None (clip.pose_message says why None)
"""

from langscene_core.trimap.loading import build_tiny_pipeline, load_trimap, resolve_model_path, tiny_trimap_config
from langscene_core.trimap.passes import (
    DensifiedClip,
    TrimapKeyframe,
    densify_pair,
    normal_pass,
    rgb_pass,
    semantic_pass,
)
from langscene_core.trimap.pipeline import DEFAULT_PROMPT, TrimapOutput, TrimapPipeline
from langscene_core.trimap.poses import PoseRecoveryError, RecoveredPoses, check_accepted, recover_poses

__all__ = [
    "DEFAULT_PROMPT",
    "DensifiedClip",
    "PoseRecoveryError",
    "RecoveredPoses",
    "TrimapKeyframe",
    "TrimapOutput",
    "TrimapPipeline",
    "build_tiny_pipeline",
    "check_accepted",
    "densify_pair",
    "load_trimap",
    "normal_pass",
    "recover_poses",
    "resolve_model_path",
    "rgb_pass",
    "semantic_pass",
    "tiny_trimap_config",
]
