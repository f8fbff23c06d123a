#!/usr/bin/env python3
"""Train ``bundled:tiny-trimap`` (CogVideoX-architecture keyframe interpolation, tiny sizes) on rendered
clips of random worlds and write it to langscene_core/assets/tiny-trimap (diffusers layout).

Clips (langscene_core.training.trimap_clips): a camera moving along an orbit arc, rendered as RGB,
camera-frame normals and palette-coloured instance masks. Training: the VAE is fitted first (the tiny
model has no pretrained VAE), then the transformer through the paper's progressive stages (RGB
interpolation, + normals, + semantics; langscene_core.trimap.train). Evaluation on held-out scenes:
PSNR of generated in-between RGB frames and mean angular error of generated normals, each against the
rendered truth and compared with a linear cross-fade of the keyframes (and the PSNR of the true frames
through the VAE alone, the ceiling of any generation); pixel accuracy of the semantic
pass against showing the nearer keyframe's masks; and whether SfM (pycolmap, recover_poses) registers
the generated frames (and, for reference, the true rendered frames). Writes ``training.json``.

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
from langscene_core.training.trimap_clips import (RenderedClip, cross_fade, normal_error_deg, psnr,  # noqa: E402
                                                  render_clip)
from langscene_core.trimap import PoseRecoveryError, load_trimap, normal_pass, recover_poses, rgb_pass, \
    semantic_pass  # noqa: E402
from langscene_core.trimap.loading import build_tiny_pipeline, tiny_trimap_config  # noqa: E402
from langscene_core.trimap.train import TrainSettings, progressive_stages, train_trimap, train_vae  # noqa: E402

EVAL_SEED_OFFSET = 4_000_000  # held-out scenes
MODEL_SIZES = {"heads": 4, "head_dim": 16, "layers": 4, "text_tokens": 16}


def cached_clips(path: Path, seeds: range, frames: int, size: int) -> list[RenderedClip]:
    if path.is_file():
        return pickle.loads(path.read_bytes())
    clips = [render_clip(seed, frames, (size, size)) for seed in seeds]
    path.write_bytes(pickle.dumps(clips))
    return clips


def registered_fraction(frames: np.ndarray, clip: RenderedClip) -> float:
    """Fraction of frames SfM registers with both keyframes (0 when recover_poses gives up)."""
    try:
        poses = recover_poses(frames, clip.intrinsics, {0: clip.cam_to_world[0], len(frames) - 1: clip.cam_to_world[-1]},
                              DensifyConfig(min_registered_fraction=0.0, max_keyframe_error_m=1e9))
    except PoseRecoveryError:
        return 0.0
    return float(poses.registered.mean())


@torch.no_grad()
def vae_round_trip(pipe, video: np.ndarray) -> np.ndarray:
    """[T, H, W, 3] in 0..1 through the VAE (encode, decode): the best the generated frames can be."""
    pixels = torch.from_numpy(video).permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1
    decoded = pipe.decode_latents(pipe.encode_video(pixels))[0].permute(1, 2, 3, 0)
    return ((decoded.clamp(-1, 1) + 1) / 2).numpy()


def evaluate(pipe, clips: list[RenderedClip], settings: TrimapModelConfig, seed: int) -> dict[str, float]:
    rows = []
    for k, clip in enumerate(clips):
        generator = torch.Generator().manual_seed(seed + k)
        middle = slice(1, len(clip.rgb) - 1)
        rgb = rgb_pass(pipe, clip.rgb[0], clip.rgb[-1], settings, generator)
        normals = normal_pass(pipe, clip.normals[0], clip.normals[-1], settings, generator)
        masks = semantic_pass(pipe, clip.ids[0][None], clip.ids[-1][None], settings, generator)[:, 0]
        fade_normals = cross_fade(clip.normals[0], clip.normals[-1], len(clip.rgb))
        nearer = np.stack([clip.ids[0] if t < len(clip.ids) / 2 else clip.ids[-1] for t in range(len(clip.ids))])
        rows.append({
            "psnr_model": psnr(rgb[middle], clip.rgb[middle]),
            "psnr_vae_round_trip": psnr(vae_round_trip(pipe, clip.rgb)[middle], clip.rgb[middle]),
            "psnr_cross_fade": psnr(cross_fade(clip.rgb[0], clip.rgb[-1], len(clip.rgb))[middle], clip.rgb[middle]),
            "normal_error_deg_model": normal_error_deg(normals[middle], clip.normals[middle]),
            "normal_error_deg_cross_fade": normal_error_deg(fade_normals[middle], clip.normals[middle]),
            "mask_accuracy_model": float((masks[middle] == clip.ids[middle]).mean()),
            "mask_accuracy_nearer_keyframe": float((nearer[middle] == clip.ids[middle]).mean()),
            "sfm_registered_model": registered_fraction(rgb, clip),
            "sfm_registered_true_frames": registered_fraction(clip.rgb, clip),
        })
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="directory for the rendered clips")
    parser.add_argument("--out", type=Path, default=REPO / "langscene_core/assets/tiny-trimap")
    parser.add_argument("--train-scenes", type=int, default=200)
    parser.add_argument("--eval-scenes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=9, help="frames per clip, k * 8 + 1")
    parser.add_argument("--size", type=int, default=64, help="square frame size in pixels, a multiple of 16")
    parser.add_argument("--vae-steps", type=int, default=400)
    parser.add_argument("--stage-steps", type=int, nargs=3, default=(500, 300, 300),
                        metavar=("RGB", "NORMALS", "SEMANTICS"), help="steps of the three progressive stages")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--eval-steps", type=int, default=20, help="denoising steps at evaluation")
    parser.add_argument("--eval-guidance", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    tag = f"f{args.frames}_px{args.size}"
    train = cached_clips(args.cache / f"train_s{args.seed}_n{args.train_scenes}_{tag}.pkl",
                         range(args.seed * 100_000, args.seed * 100_000 + args.train_scenes), args.frames, args.size)
    held_out = cached_clips(args.cache / f"eval_n{args.eval_scenes}_{tag}.pkl",
                            range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + args.eval_scenes), args.frames, args.size)
    clips = [c for clip in train for c in clip.train_clips()]
    seconds["data_s"] = time.perf_counter() - start

    config = tiny_trimap_config(**MODEL_SIZES, sample_height=args.size, sample_width=args.size)
    pipe = build_tiny_pipeline(config, seed=args.seed)
    pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    vae_losses = train_vae(pipe, clips, args.vae_steps, seed=args.seed)
    seconds["vae_s"] = time.perf_counter() - start
    print(json.dumps({"vae_first": vae_losses[0], "vae_last": float(np.mean(vae_losses[-20:])),
                      "vae_s": round(seconds["vae_s"], 1)}), flush=True)

    def log(stage: str, step: int, loss: float) -> None:
        if step % 50 == 0:
            print(json.dumps({"stage": stage, "step": step, "loss": loss,
                              "seconds": round(time.perf_counter() - start, 1)}), flush=True)

    start = time.perf_counter()
    settings = TrainSettings(learning_rate=args.lr, seed=args.seed)
    history = train_trimap(pipe, clips, progressive_stages(*args.stage_steps), settings, on_step=log)
    seconds["transformer_s"] = time.perf_counter() - start
    pipe.save_pretrained(args.out)

    start = time.perf_counter()
    evaluation = TrimapModelConfig(path=str(args.out), dtype="float32", frames=args.frames, steps=args.eval_steps,
                                   guidance=args.eval_guidance)
    metrics = evaluate(load_trimap(evaluation), held_out, evaluation, args.seed)  # exactly what ships
    seconds["eval_s"] = time.perf_counter() - start
    record = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "threads": args.threads,
              "model": dataclasses.asdict(config), "train": dataclasses.asdict(settings),
              "stages": dict(zip(("interpolation", "normals", "semantics"), args.stage_steps)),
              "vae_steps": args.vae_steps,
              "final_losses": {k: float(np.mean(v[-50:])) for k, v in history.items() if v},
              "data": {"train_scenes": args.train_scenes, "eval_scenes": args.eval_scenes, "frames": args.frames,
                       "size": args.size},
              "evaluation": {"frames": args.frames, "steps": args.eval_steps, "guidance": args.eval_guidance},
              "seconds": {k: round(v, 1) for k, v in seconds.items()}, "metrics": metrics}
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"metrics": metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
