#!/usr/bin/env python3
"""Train ``bundled:tiny-trimap`` (CogVideoX-architecture keyframe interpolation, tiny sizes) on rendered
clips of random worlds and write it to langscene_core/assets/tiny-trimap (diffusers layout).

Clips (langscene_core.training.trimap_clips): a camera moving along an orbit arc, rendered as RGB,
camera-frame normals and palette-coloured instance masks. Training: the VAE is fitted first (the tiny
model has no pretrained VAE), then the transformer through the paper's progressive stages (RGB
interpolation, + normals, + semantics; langscene_core.training.trimap_train). Evaluation on held-out scenes:
PSNR of generated in-between RGB frames and mean angular error of generated normals, each against the
rendered truth and compared with a linear cross-fade of the keyframes (the baseline to beat), with what
a model predicting no correction generates (``no_correction``: the condition video decoded as the
pipeline decodes, e.g. the flow interpolation for ``flow_correction``, the cross-fade through the VAE for
``cross_fade_residual``) and with the true frames' latents decoded the same way (``ceiling``: the best
any prediction of the true latents gives), at each ``--eval-strength`` (1: sampling from noise; below
1: SDEdit from the noised condition); pixel accuracy of the semantic
pass against showing the nearer keyframe's masks; and whether SfM (pycolmap, recover_poses) registers
the generated frames (and, for reference, the true rendered frames): the fraction of frames registered,
and the fraction of clips densification would accept (``sfm_accepted``: DensifyConfig's defaults, at
least 80 % of the frames registered and both keyframes within 5 cm of their known poses after the
Sim(3) alignment). Every metric is reported per
arc-width bucket (ARC_SPAN_BUCKETS_DEG: the azimuth between the keyframes) and over all held-out clips;
training clips cover the whole range (ARC_SPAN_RANGE_DEG). Writes ``training.json``.

    scripts/train_tiny_trimap.py --cache /work/cache/tiny-trimap
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from langscene_core.config import DensifyConfig, TrimapModelConfig  # noqa: E402
from langscene_core.geometry.normals import normals_to_rgb, rgb_to_normals  # noqa: E402
from langscene_core.training.trimap_clips import (  # noqa: E402
    ARC_SPAN_BUCKETS_DEG,
    ARC_SPAN_RANGE_DEG,
    RenderedClip,
    cross_fade,
    normal_error_deg,
    psnr,
    render_clip,
)
from langscene_core.training.trimap_train import TrainSettings, progressive_stages, train_trimap, train_vae  # noqa: E402
from langscene_core.trimap import (  # noqa: E402
    PoseRecoveryError,
    check_accepted,
    load_trimap,
    normal_pass,
    recover_poses,
    rgb_pass,
    semantic_pass,
)
from langscene_core.trimap.loading import build_tiny_pipeline, tiny_trimap_config  # noqa: E402
from langscene_core.trimap.pipeline import CONDITIONS  # noqa: E402

EVAL_SEED_OFFSET = 4_000_000  # held-out scenes; bucket b uses seeds EVAL_SEED_OFFSET + 1000 b + i


def cached_clips(
    path: Path, seeds: range, frames: int, size: int, span_range_deg: tuple[float, float] = ARC_SPAN_RANGE_DEG
) -> list[RenderedClip]:
    if path.is_file():
        return pickle.loads(path.read_bytes())
    clips = [render_clip(seed, frames, (size, size), span_range_deg) for seed in seeds]
    path.write_bytes(pickle.dumps(clips))
    return clips


def bucket_name(span_range_deg: tuple[float, float]) -> str:
    return f"{span_range_deg[0]:g}-{span_range_deg[1]:g}deg"


def sfm_outcome(frames: np.ndarray, clip: RenderedClip) -> tuple[float, float]:
    """(fraction of frames SfM registers with both keyframes, 0 when recover_poses gives up; 1.0 when
    densification with DensifyConfig's defaults would accept the clip's poses, else 0.0). One SfM run,
    graded against both limits."""
    known = {0: clip.cam_to_world[0], len(frames) - 1: clip.cam_to_world[-1]}
    try:
        poses = recover_poses(
            frames, clip.intrinsics, known, DensifyConfig(min_registered_fraction=0.0, max_keyframe_error_m=1e9)
        )
    except PoseRecoveryError:
        return 0.0, 0.0
    registered = float(poses.registered.mean())
    try:
        check_accepted(poses, known, DensifyConfig())
    except PoseRecoveryError:
        return registered, 0.0
    return registered, 1.0


@torch.no_grad()
def decoded(pipe, video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[T, H, W, 3] in 0..1 -> (ceiling, no_correction): the clips the pipeline decodes given the
    keyframes of ``video`` from the true clip's latents (the best any prediction of them gives; for plain
    decodings the VAE round trip) and from the condition latents alone (what a model predicting no
    correction generates)."""
    pixels = torch.from_numpy(video).permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1
    condition, base = pipe.encode_condition(pixels[:, :, 0], pixels[:, :, -1], pixels.shape[2])
    clips = (pipe.decode_video(latents, condition, base) for latents in (pipe.encode_video(pixels), condition))
    return tuple(((clip[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) / 2).numpy() for clip in clips)


def ceiling_psnr(pipe, clips: list[RenderedClip]) -> float:
    """Mean PSNR of the in-between RGB frames decoded from their true latents (no diffusion)."""
    return float(np.mean([psnr(decoded(pipe, c.rgb)[0][1:-1], c.rgb[1:-1]) for c in clips]))


def evaluate(pipe, clips: list[RenderedClip], settings: TrimapModelConfig, seed: int) -> dict[str, float]:
    """Mean of every metric over the clips (see the module docstring)."""
    rows = []
    for k, clip in enumerate(clips):
        generator = torch.Generator().manual_seed(seed + k)
        middle = slice(1, len(clip.rgb) - 1)
        rgb = rgb_pass(pipe, clip.rgb[0], clip.rgb[-1], settings, generator)
        normals = normal_pass(pipe, clip.normals[0], clip.normals[-1], settings, generator)
        masks = semantic_pass(pipe, clip.ids[0][None], clip.ids[-1][None], settings, generator)[:, 0]
        fade_normals = cross_fade(clip.normals[0], clip.normals[-1], len(clip.rgb))
        fade_rgb = cross_fade(clip.rgb[0], clip.rgb[-1], len(clip.rgb))
        nearer = np.stack([clip.ids[0] if t < len(clip.ids) / 2 else clip.ids[-1] for t in range(len(clip.ids))])
        rgb_ceiling, rgb_uncorrected = decoded(pipe, clip.rgb)
        normals_ceiling, normals_uncorrected = (rgb_to_normals(v) for v in decoded(pipe, normals_to_rgb(clip.normals)))
        row = {
            "psnr_model": psnr(rgb[middle], clip.rgb[middle]),
            "psnr_ceiling": psnr(rgb_ceiling[middle], clip.rgb[middle]),
            "psnr_cross_fade": psnr(fade_rgb[middle], clip.rgb[middle]),
            "psnr_no_correction": psnr(rgb_uncorrected[middle], clip.rgb[middle]),
            "normal_error_deg_model": normal_error_deg(normals[middle], clip.normals[middle]),
            "normal_error_deg_ceiling": normal_error_deg(normals_ceiling[middle], clip.normals[middle]),
            "normal_error_deg_cross_fade": normal_error_deg(fade_normals[middle], clip.normals[middle]),
            "normal_error_deg_no_correction": normal_error_deg(normals_uncorrected[middle], clip.normals[middle]),
            "mask_accuracy_model": float((masks[middle] == clip.ids[middle]).mean()),
            "mask_accuracy_nearer_keyframe": float((nearer[middle] == clip.ids[middle]).mean()),
        }
        for name, frames in (("model", rgb), ("true_frames", clip.rgb)):
            row[f"sfm_registered_{name}"], row[f"sfm_accepted_{name}"] = sfm_outcome(frames, clip)
        rows.append(row)
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def evaluate_buckets(
    model: str, held_out: dict[str, list[RenderedClip]], args: argparse.Namespace, strength: float
) -> dict[str, dict[str, float]]:
    """evaluate() of the model as loaded by load_trimap (exactly what ships) per arc-width bucket, and
    over all buckets ("all": the mean of the equally sized buckets)."""
    settings = TrimapModelConfig(
        path=model,
        dtype="float32",
        frames=args.frames,
        steps=args.eval_steps,
        guidance=args.eval_guidance,
        strength=strength,
    )
    pipe = load_trimap(settings)
    metrics = {name: evaluate(pipe, clips, settings, args.seed) for name, clips in held_out.items()}
    metrics["all"] = {key: float(np.mean([m[key] for m in metrics.values()])) for key in next(iter(metrics.values()))}
    return metrics


def evaluate_strengths(
    model: str, held_out: dict[str, list[RenderedClip]], args: argparse.Namespace
) -> dict[str, dict[str, dict[str, float]]]:
    """evaluate_buckets() for each of ``--eval-strength``, keyed "strength S"."""
    return {f"strength {s:g}": evaluate_buckets(model, held_out, args, s) for s in args.eval_strength}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="directory for the rendered clips")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="model directory, required unless --evaluate-only (the shipped model is "
        "langscene_core/assets/tiny-trimap: replace it only with one that evaluates better)",
    )
    parser.add_argument("--train-scenes", type=int, default=200)
    parser.add_argument("--eval-scenes", type=int, default=5, help="held-out scenes per arc-width bucket")
    parser.add_argument("--frames", type=int, default=9, help="frames per clip, k * 2 * temporal compression + 1")
    parser.add_argument(
        "--size", type=int, default=64, help="square frame size in pixels, a multiple of VAE spatial compression x 2"
    )
    parser.add_argument("--latent-channels", type=int, default=16)
    parser.add_argument(
        "--vae-channels",
        type=int,
        nargs="+",
        default=(16, 32, 32),
        help="VAE block widths; n blocks compress 2^(n-1)x spatially",
    )
    parser.add_argument("--temporal-compression", type=int, default=1, choices=(1, 2, 4))
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument(
        "--condition",
        default="flow_correction",
        choices=CONDITIONS,
        help="what the transformer is conditioned on and generates (TrimapPipeline)",
    )
    parser.add_argument(
        "--zero-correction",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="residual conditions: start the transformer predicting no correction (zero output layer)",
    )
    parser.add_argument("--vae-steps", type=int, default=1000)
    parser.add_argument("--vae-lr", type=float, default=2e-3)
    parser.add_argument("--vae-mse-weight", type=float, default=1.0, help="MSE weight beside L1 in the VAE loss")
    parser.add_argument(
        "--vae-frame-batch",
        type=int,
        default=8,
        help="single frames per VAE step (per-frame VAE: --temporal-compression 1)",
    )
    parser.add_argument(
        "--stage-steps",
        type=int,
        nargs=3,
        default=(1000, 600, 400),
        metavar=("RGB", "NORMALS", "SEMANTICS"),
        help="steps of the three progressive stages",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--max-timestep-fraction",
        type=float,
        default=1.0,
        help="train the transformer on timesteps below this fraction only (for SDEdit sampling)",
    )
    parser.add_argument(
        "--terminal-fraction",
        type=float,
        default=0.25,
        help="share of training samples at the last timestep (the one-step sampler's regression)",
    )
    parser.add_argument("--batch-clips", type=int, default=4, help="clips per transformer step")
    parser.add_argument(
        "--pixel-weight",
        type=float,
        default=10.0,
        help="weight of the one-step pixel loss (train.one_step_pixel_loss) beside the diffusion loss",
    )
    parser.add_argument(
        "--eval-steps",
        type=int,
        default=1,
        help="denoising steps at evaluation (1: the model's estimate of the conditional mean)",
    )
    parser.add_argument("--eval-guidance", type=float, default=1.0)
    parser.add_argument(
        "--eval-strength",
        type=float,
        nargs="+",
        default=(1.0,),
        help="SDEdit strengths to evaluate (1: from noise; < 1: from the noised cross-fade)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--evaluate-only", metavar="MODEL", help="only evaluate this model (a path or bundled:NAME)")
    args = parser.parse_args()
    if args.out is None and args.evaluate_only is None:
        parser.error("--out is required (unless --evaluate-only)")
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    tag = f"f{args.frames}_px{args.size}"
    held_out = {
        bucket_name(span): cached_clips(
            args.cache / f"eval_n{args.eval_scenes}_{tag}_{bucket_name(span)}.pkl",
            range(EVAL_SEED_OFFSET + 1000 * b, EVAL_SEED_OFFSET + 1000 * b + args.eval_scenes),
            args.frames,
            args.size,
            span,
        )
        for b, span in enumerate(ARC_SPAN_BUCKETS_DEG)
    }
    if args.evaluate_only is not None:
        print(
            json.dumps({"model": args.evaluate_only, "metrics": evaluate_strengths(args.evaluate_only, held_out, args)})
        )
        return 0
    train = cached_clips(
        args.cache / f"train_s{args.seed}_n{args.train_scenes}_{tag}_{bucket_name(ARC_SPAN_RANGE_DEG)}.pkl",
        range(args.seed * 100_000, args.seed * 100_000 + args.train_scenes),
        args.frames,
        args.size,
    )
    clips = [c for clip in train for c in clip.train_clips()]
    seconds["data_s"] = time.perf_counter() - start

    config = tiny_trimap_config(
        latent_channels=args.latent_channels,
        vae_channels=tuple(args.vae_channels),
        temporal_compression=args.temporal_compression,
        heads=args.heads,
        head_dim=16,
        layers=args.layers,
        text_tokens=16,
        sample_height=args.size,
        sample_width=args.size,
        condition=args.condition,
        zero_correction=args.zero_correction,
    )
    pipe = build_tiny_pipeline(config, seed=args.seed)
    pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    vae_losses = train_vae(
        pipe,
        clips,
        args.vae_steps,
        learning_rate=args.vae_lr,
        seed=args.seed,
        mse_weight=args.vae_mse_weight,
        frame_batch=args.vae_frame_batch,
    )
    seconds["vae_s"] = time.perf_counter() - start
    print(
        json.dumps(
            {
                "vae_first": vae_losses[0],
                "vae_last": float(np.mean(vae_losses[-20:])),
                "vae_s": round(seconds["vae_s"], 1),
                "ceiling_psnr": {k: ceiling_psnr(pipe, v) for k, v in held_out.items()},
            }
        ),
        flush=True,
    )

    def log(stage: str, step: int, loss: float) -> None:
        if step % 50 == 0:
            print(
                json.dumps(
                    {"stage": stage, "step": step, "loss": loss, "seconds": round(time.perf_counter() - start, 1)}
                ),
                flush=True,
            )

    start = time.perf_counter()
    settings = TrainSettings(
        learning_rate=args.lr,
        seed=args.seed,
        max_timestep_fraction=args.max_timestep_fraction,
        terminal_fraction=args.terminal_fraction,
        batch_clips=args.batch_clips,
        pixel_weight=args.pixel_weight,
    )
    history = train_trimap(pipe, clips, progressive_stages(*args.stage_steps), settings, on_step=log)
    seconds["transformer_s"] = time.perf_counter() - start
    pipe.save_pretrained(args.out)

    start = time.perf_counter()
    metrics = evaluate_strengths(str(args.out), held_out, args)
    seconds["eval_s"] = time.perf_counter() - start
    record = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "threads": args.threads,
        "model": dataclasses.asdict(config),
        "train": dataclasses.asdict(settings),
        "stages": dict(zip(("interpolation", "normals", "semantics"), args.stage_steps)),
        "final_losses": {k: float(np.mean(v[-50:])) for k, v in history.items() if v},
        "vae": {
            "steps": args.vae_steps,
            "learning_rate": args.vae_lr,
            "mse_weight": args.vae_mse_weight,
            "frame_batch": args.vae_frame_batch,
        },
        "data": {
            "train_scenes": args.train_scenes,
            "train_arc_deg": ARC_SPAN_RANGE_DEG,
            "eval_scenes_per_bucket": args.eval_scenes,
            "eval_buckets_deg": ARC_SPAN_BUCKETS_DEG,
            "frames": args.frames,
            "size": args.size,
        },
        "evaluation": {
            "frames": args.frames,
            "steps": args.eval_steps,
            "guidance": args.eval_guidance,
            "strengths": list(args.eval_strength),
        },
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "metrics": metrics,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"metrics": metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
