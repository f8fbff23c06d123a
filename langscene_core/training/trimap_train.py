"""Training the TriMap model on clips with the paper's progressive stages (section 3.2):
interpolation on RGB clips, then + normal clips, then + semantic clips, all with one set of weights.

The objective is CogVideoX's: v-prediction MSE on the VAE latents of the clip (encoded once per clip, the VAE is frozen), given the condition
latents of its first and last frame (see TrimapPipeline.condition_latents) and the fixed prompt, whose
embedding is replaced by the empty prompt's with probability ``text_dropout`` so classifier-free
guidance has an unconditional branch to use. Small models from ``build_tiny_pipeline`` have a random
VAE, so ``train_vae`` fits it first (reconstruction + KL); real checkpoints keep their VAE frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from langscene_core.trimap.pipeline import DEFAULT_PROMPT, TrimapPipeline

MODALITIES = ("rgb", "normal", "semantic")


@dataclass(frozen=True)
class TrainClip:
    """video: [T, H, W, 3] float32 in [0, 1] (normal clips RGB-encoded with normals_to_rgb, semantic
    clips palette-coloured with masks_to_rgb); modality: one of MODALITIES."""

    video: np.ndarray
    modality: str

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"clip modality {self.modality!r}: expected one of {MODALITIES}")
        if self.video.ndim != 4 or self.video.shape[-1] != 3:
            raise ValueError(f"clip video must be [T, H, W, 3], got {self.video.shape}")


@dataclass(frozen=True)
class TrainStage:
    """One progressive stage: ``steps`` optimiser steps on clips of the listed modalities."""

    name: str
    modalities: tuple[str, ...]
    steps: int


def progressive_stages(interpolation: int, normals: int, semantics: int) -> tuple[TrainStage, ...]:
    """The paper's order: RGB interpolation, then RGB + normals, then RGB + normals + semantics."""
    return (
        TrainStage("interpolation", ("rgb",), interpolation),
        TrainStage("normals", ("rgb", "normal"), normals),
        TrainStage("semantics", ("rgb", "normal", "semantic"), semantics),
    )


@dataclass(frozen=True)
class TrainSettings:
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    text_dropout: float = 0.1
    prompt: str = DEFAULT_PROMPT
    seed: int = 0
    max_timestep_fraction: float = 1.0  # train on timesteps below this fraction of the schedule (SDEdit use)
    terminal_fraction: float = 0.0  # share of samples at the schedule's last timestep (see diffusion_loss)
    batch_clips: int = 1  # clips of one modality per optimiser step
    pixel_weight: float = 0.0  # weight of one_step_pixel_loss beside the diffusion loss
    pixel_frames: int = 2  # random in-between frames it decodes per step (per-frame VAE; else all frames)


def _pixels(video: np.ndarray) -> torch.Tensor:
    """[T, H, W, 3] in [0, 1] -> [1, 3, T, H, W] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(video, dtype=np.float32)).permute(3, 0, 1, 2).unsqueeze(0) * 2 - 1


def train_vae(
    pipe: TrimapPipeline,
    clips: Sequence[TrainClip],
    steps: int,
    learning_rate: float = 1e-3,
    kl_weight: float = 1e-6,
    seed: int = 0,
    mse_weight: float = 0.0,
    frame_batch: int = 8,
) -> list[float]:
    """Fit the VAE to reconstruct what it encodes at inference.

    A per-frame VAE (``pipe.per_frame_vae``) trains on batches of ``frame_batch`` random single frames
    of the clips; a VAE that compresses time alternates whole clips and their single first/last frames
    (the condition path). AdamW with a one-cycle schedule peaking at ``learning_rate`` (5 % warm-up, at
    least 2 steps, cosine decay; runs of fewer than 4 steps keep ``learning_rate``: the schedule needs a
    warm-up and a decay phase). Returns the loss per step (L1 + mse_weight * MSE + kl_weight * KL).
    """
    _check_clips(pipe, clips)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    vae = pipe.vae
    optimiser = torch.optim.AdamW(vae.parameters(), lr=learning_rate)
    schedule = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=learning_rate, total_steps=steps, pct_start=max(0.05, 2 / steps)
        )
        if steps >= 4
        else None
    )
    losses = []
    vae.train()
    for step in range(steps):
        if pipe.per_frame_vae:
            picks = [clips[i].video for i in rng.integers(len(clips), size=frame_batch)]
            video = torch.cat([_pixels(v[[rng.integers(len(v))]]) for v in picks])  # [frame_batch, 3, 1, H, W]
        else:
            video = _pixels(clips[rng.integers(len(clips))].video)
            if step % 2:  # keyframes are encoded alone at inference: train that path too
                video = video[:, :, [0 if rng.random() < 0.5 else -1]]
        video = video.to(pipe._execution_device, vae.dtype)
        posterior = vae.encode(video).latent_dist
        error = vae.decode(posterior.sample(generator)).sample - video
        loss = error.abs().mean() + mse_weight * error.square().mean() + kl_weight * posterior.kl().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if schedule is not None:
            schedule.step()
        losses.append(loss.item())
    vae.eval()
    calibrate_latent_scale(pipe, clips)
    return losses


@torch.no_grad()
def calibrate_latent_scale(pipe: TrimapPipeline, clips: Sequence[TrainClip], max_clips: int = 200) -> float:
    """Set the VAE's scaling_factor to 1 / std of the clips' unscaled latents (posterior mode), so the
    diffusion model sees unit-variance latents as with the real CogVideoX VAE; for a residual condition
    (``pipe.residual``) also the pipeline's residual_scale to 1 / std of the scaled residuals of the
    in-between frames (clip minus condition latents; the keyframes' are zero). Both from at most
    ``max_clips`` clips spread evenly over ``clips``. Returns the VAE factor."""
    clips = clips[:: max(1, -(-len(clips) // max_clips))]
    pipe.vae.register_to_config(scaling_factor=1.0, invert_scale_latents=False)
    encoded = [encode_clip(pipe, c.video) for c in clips]  # unscaled; scaling is linear, so one pass serves both
    factor = float(1.0 / torch.cat([e.latents.flatten() for e in encoded]).float().std().clamp_min(1e-6))
    pipe.vae.register_to_config(scaling_factor=factor)
    if pipe.residual:
        residuals = torch.cat([(e.latents - e.condition)[:, 1:-1].flatten() for e in encoded]).float()
        pipe.register_to_config(residual_scale=float(1.0 / (factor * residuals.std()).clamp_min(1e-6)))
    return factor


class EncodedClip(NamedTuple):
    """latents, condition: [1, F, C, h, w]; base: [1, 3, T, H, W] in [-1, 1], the condition's pixel video
    (``TrimapPipeline.condition_video``), None for the ``keyframes`` condition."""

    latents: torch.Tensor
    condition: torch.Tensor
    base: torch.Tensor | None


@torch.no_grad()
def encode_clip(pipe: TrimapPipeline, video: np.ndarray) -> EncodedClip:
    """Clip [T, H, W, 3] in [0, 1] -> its latents, condition latents and condition video, on the
    pipeline's device.

    Latents use the VAE posterior's mode, so they are computed once per clip and reused every step.
    """
    pixels = _pixels(video).to(pipe._execution_device)
    condition, base = pipe.encode_condition(pixels[:, :, 0], pixels[:, :, -1], pixels.shape[2])
    return EncodedClip(pipe.encode_video(pixels), condition, base)


def diffusion_loss(
    pipe: TrimapPipeline,
    latents: torch.Tensor,
    condition: torch.Tensor,
    text: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor] | None,
    generator: torch.Generator,
    max_timestep_fraction: float = 1.0,
    terminal_fraction: float = 0.0,
) -> torch.Tensor:
    """v-prediction MSE at random timesteps below ``max_timestep_fraction`` of the schedule (1: all; a
    model sampled with strength s < 1 only ever sees timesteps below s).

    Each sample is instead taken at the schedule's last timestep with probability ``terminal_fraction``:
    with the zero-terminal-SNR schedule its input is pure noise and its v target is minus the clean
    latents, so these samples train the regression of the clean latents on the condition alone, which a
    one-step sampler returns (the conditional mean, the best estimate in mean squared error).
    latents, condition: [B, F, C, h, w]; text: [B, L, D]."""
    if not 0.0 < max_timestep_fraction <= 1.0:
        raise ValueError(f"max_timestep_fraction={max_timestep_fraction}: expected 0 < fraction <= 1")
    if not 0.0 <= terminal_fraction <= 1.0:
        raise ValueError(f"terminal_fraction={terminal_fraction}: expected 0 <= fraction <= 1")
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    total = pipe.scheduler.config.num_train_timesteps
    limit = max(1, round(total * max_timestep_fraction))
    timesteps = torch.randint(0, limit, (latents.shape[0],), generator=generator)
    terminal = torch.rand(latents.shape[0], generator=generator) < terminal_fraction
    timesteps = torch.where(terminal, total - 1, timesteps).to(latents.device)
    clean = pipe.to_diffusion(latents, condition)
    noisy = pipe.scheduler.add_noise(clean, noise, timesteps)
    target = pipe.scheduler.get_velocity(clean, noise, timesteps)
    prediction = pipe.model_output(noisy, condition, timesteps, text, rotary)
    return torch.nn.functional.mse_loss(prediction, target)


def one_step_pixel_loss(
    pipe: TrimapPipeline,
    latents: torch.Tensor,
    condition: torch.Tensor,
    base: torch.Tensor | None,
    pixels: torch.Tensor,
    text: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor] | None,
    generator: torch.Generator,
    frames: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE in pixel space between the clip and what the one-step sampler generates for it: the clean
    latents predicted from pure noise at the schedule's last timestep, decoded as the pipeline decodes
    (``decode_video``, through the frozen VAE decoder). The diffusion loss weighs latent channels alike,
    whatever they change in the frames; this term weighs the generated frames as the evaluation does.

    latents, condition: [B, F, C, h, w]; base: the condition's pixel video [B, 3, T, H, W] (EncodedClip);
    pixels: [B, 3, T, H, W] in [-1, 1] (the clip); text: [B, L, D];
    frames: [K] indices of the frames to decode and score (per-frame VAE), default all.
    """
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    last = pipe.scheduler.config.num_train_timesteps - 1
    alpha = float(pipe.scheduler.alphas_cumprod[last])
    velocity = pipe.model_output(
        noise, condition, torch.full((latents.shape[0],), last, device=latents.device), text, rotary
    )
    clean = alpha**0.5 * noise - (1.0 - alpha) ** 0.5 * velocity  # v-prediction -> x0
    video = pipe.decode_video(pipe.from_diffusion(clean, condition), condition, base, frames)
    return torch.nn.functional.mse_loss(video.float(), pixels if frames is None else pixels[:, :, frames])


def train_trimap(
    pipe: TrimapPipeline,
    clips: Sequence[TrainClip],
    stages: Sequence[TrainStage],
    settings: TrainSettings = TrainSettings(),
    on_step: Callable[[str, int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Train the transformer through the stages in order (VAE and text encoder frozen).

    Each step draws a modality round-robin from the stage's list, then ``settings.batch_clips`` random
    clips of it (text dropout drawn per clip). Clips must
    have k * 8 + 1 frames and sizes that are multiples of ``pipe.size_multiple``. Returns the losses per
    stage; ``on_step(stage, step, loss)`` is called after every step (progress, checkpoints).
    """
    _check_clips(pipe, clips)
    by_modality = {m: [c for c in clips if c.modality == m] for m in MODALITIES}
    for stage in stages:
        missing = [m for m in stage.modalities if not by_modality.get(m)]
        if missing:
            raise ValueError(f"stage {stage.name!r} needs {missing} clips, none given")
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    device = pipe._execution_device
    with torch.no_grad():
        text, empty = (pipe.encode_prompt(p, device) for p in (settings.prompt, ""))
    for model in (pipe.vae, pipe.text_encoder):
        model.requires_grad_(False)
    transformer = pipe.transformer
    optimiser = torch.optim.AdamW(
        transformer.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    history: dict[str, list[float]] = {}
    encoded: dict[int, EncodedClip] = {}  # VAE frozen: encode each clip once
    transformer.train()
    try:
        for stage in stages:
            history[stage.name] = []
            for step in range(stage.steps):
                pool = by_modality[stage.modalities[step % len(stage.modalities)]]
                batch = [pool[i] for i in rng.integers(len(pool), size=settings.batch_clips)]
                for clip in batch:
                    if id(clip) not in encoded:
                        encoded[id(clip)] = encode_clip(pipe, clip.video)
                parts = [encoded[id(c)] for c in batch]
                latents, condition = (torch.cat([getattr(p, name) for p in parts]) for name in ("latents", "condition"))
                rotary = pipe.rotary_embeddings(
                    batch[0].video.shape[1], batch[0].video.shape[2], latents.shape[1], device
                )
                prompts = torch.cat([empty if rng.random() < settings.text_dropout else text for _ in batch])
                loss = diffusion_loss(
                    pipe,
                    latents,
                    condition,
                    prompts,
                    rotary,
                    generator,
                    settings.max_timestep_fraction,
                    settings.terminal_fraction,
                )
                if settings.pixel_weight > 0:
                    pixels = torch.cat([_pixels(c.video) for c in batch]).to(device)
                    frames = (
                        torch.from_numpy(
                            rng.choice(np.arange(1, pixels.shape[2] - 1), settings.pixel_frames, replace=False)
                        )
                        if pipe.per_frame_vae
                        else None
                    )
                    base = None if parts[0].base is None else torch.cat([p.base for p in parts])
                    loss = loss + settings.pixel_weight * one_step_pixel_loss(
                        pipe, latents, condition, base, pixels, prompts, rotary, generator, frames
                    )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                history[stage.name].append(loss.item())
                if on_step is not None:
                    on_step(stage.name, step, history[stage.name][-1])
    finally:
        transformer.eval()
        for model in (pipe.vae, pipe.text_encoder):
            model.requires_grad_(True)
    return history


def _check_clips(pipe: TrimapPipeline, clips: Sequence[TrainClip]) -> None:
    if not clips:
        raise ValueError("no training clips")
    for clip in clips:
        frames, height, width, _ = clip.video.shape
        pipe.check_video_shape(frames, height, width)
