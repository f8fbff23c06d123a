"""Training: stage checks, which weights move, and short overfit runs after which the generated first
and last frames match the conditioning keyframes (latent space: fast; pixel space with the VAE fitted
too: slow)."""

import numpy as np
import pytest
import torch
from trimap_helpers import moving_square_clip

from langscene_core.training.trimap_train import (
    TrainClip,
    TrainSettings,
    TrainStage,
    calibrate_latent_scale,
    diffusion_loss,
    encode_clip,
    one_step_pixel_loss,
    progressive_stages,
    train_trimap,
    train_vae,
)
from langscene_core.trimap.loading import build_tiny_pipeline, tiny_trimap_config
from langscene_core.trimap.pipeline import cross_fade_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is faster


def _pipe():
    pipe = build_tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe, video, output_type):
    first, last = (torch.from_numpy(video[i]).permute(2, 0, 1) for i in (0, -1))
    return pipe(
        first,
        last,
        num_frames=len(video),
        num_inference_steps=8,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(0),
        output_type=output_type,
    ).frames[0]


def test_progressive_stages_order_and_validation():
    stages = progressive_stages(3, 2, 1)
    assert [s.modalities for s in stages] == [("rgb",), ("rgb", "normal"), ("rgb", "normal", "semantic")]
    assert [s.steps for s in stages] == [3, 2, 1]
    rgb = TrainClip(moving_square_clip(), "rgb")
    with pytest.raises(ValueError, match="'normals' needs \\['normal'\\]"):
        train_trimap(_pipe(), [rgb], stages)
    with pytest.raises(ValueError, match="modality"):
        TrainClip(moving_square_clip(), "depth")
    with pytest.raises(ValueError, match="num_frames"):
        train_trimap(_pipe(), [TrainClip(moving_square_clip(frames=5), "rgb")], stages[:1])


def test_training_moves_only_the_transformer_and_visits_every_modality():
    pipe = _pipe()
    video = moving_square_clip()
    clips = [TrainClip(video, "rgb"), TrainClip(1 - video, "normal"), TrainClip(video[..., ::-1].copy(), "semantic")]
    frozen = {name: [p.detach().clone() for p in getattr(pipe, name).parameters()] for name in ("vae", "text_encoder")}
    before = [p.detach().clone() for p in pipe.transformer.parameters()]
    seen = []
    history = train_trimap(pipe, clips, progressive_stages(2, 2, 3), on_step=lambda s, i, loss: seen.append((s, i)))
    assert {k: len(v) for k, v in history.items()} == {"interpolation": 2, "normals": 2, "semantics": 3}
    assert all(np.isfinite(v).all() for v in history.values())
    assert len(seen) == 7
    assert any(not torch.equal(a, b) for a, b in zip(before, pipe.transformer.parameters()))
    for name, params in frozen.items():
        assert all(torch.equal(a, b) for a, b in zip(params, getattr(pipe, name).parameters()))
    assert not pipe.transformer.training


def test_overfit_latents_match_the_keyframes():
    """After a short overfit on one clip the sampled first/last latent frames approach the clip's."""
    pipe = _pipe()
    video = moving_square_clip()
    clip = TrainClip(video, "rgb")
    calibrate_latent_scale(pipe, [clip])
    latents = encode_clip(pipe, video).latents

    def end_errors():
        sampled = _generate(pipe, video, "latent")
        return [float((sampled[i] - latents[0, i]).norm() / latents[0, i].norm()) for i in (0, -1)]

    untrained = end_errors()
    history = train_trimap(pipe, [clip], [TrainStage("overfit", ("rgb",), 800)], TrainSettings(learning_rate=1e-3))
    trained = end_errors()
    assert np.mean(history["overfit"][-50:]) < 0.3 * np.mean(history["overfit"][:50])
    for before, after in zip(untrained, trained):
        assert after < 0.35 and after < 0.3 * before, (untrained, trained)


@pytest.mark.slow
def test_overfit_pixels_match_the_keyframes():
    """VAE fitted, then the transformer: generated first/last frames close to the keyframes in pixels."""
    pipe = _pipe()
    video = moving_square_clip()
    clip = TrainClip(video, "rgb")
    untrained = _generate(pipe, video, "pt").permute(0, 2, 3, 1).numpy()
    vae_losses = train_vae(pipe, [clip], steps=200, learning_rate=2e-3)
    assert np.mean(vae_losses[-20:]) < 0.5 * np.mean(vae_losses[:20])
    train_trimap(pipe, [clip], [TrainStage("overfit", ("rgb",), 800)], TrainSettings(learning_rate=1e-3))
    frames = _generate(pipe, video, "pt").permute(0, 2, 3, 1).numpy()
    for i in (0, -1):
        before, after = np.abs(untrained[i] - video[i]).mean(), np.abs(frames[i] - video[i]).mean()
        assert after < 0.1 and after < 0.35 * before, (i, before, after)


def test_per_frame_vae_trains_on_single_frames_and_calibrates_its_scale():
    pipe = build_tiny_pipeline(tiny_trimap_config(vae_channels=(8, 8, 16), temporal_compression=1))
    clip = TrainClip(moving_square_clip(), "rgb")
    losses = train_vae(pipe, [clip], steps=60, learning_rate=3e-3, mse_weight=1.0, frame_batch=4)
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10]), (losses[:10], losses[-10:])
    assert not pipe.vae.training
    latents, condition, base = encode_clip(pipe, clip.video)
    assert latents.shape[1] == 9 and abs(float(latents.std()) - 1.0) < 0.05  # unit variance after calibration
    assert torch.allclose(condition[:, [0, -1]], latents[:, [0, -1]], atol=1e-4)


def test_diffusion_loss_draws_timesteps_below_the_fraction(monkeypatch):
    pipe = _pipe()
    seen = []
    monkeypatch.setattr(pipe, "model_output", lambda noisy, condition, t, text, rotary: (seen.append(t), noisy)[1])
    latents = torch.randn(64, 3, 4, 4, 4)
    text = torch.zeros(64, 16, 32)
    generator = torch.Generator().manual_seed(0)
    diffusion_loss(pipe, latents, latents, text, None, generator, max_timestep_fraction=0.2)
    diffusion_loss(pipe, latents, latents, text, None, generator)
    low, full = seen
    assert int(low.max()) < 200 and int(full.max()) >= 500
    with pytest.raises(ValueError, match="max_timestep_fraction"):
        diffusion_loss(pipe, latents, latents, text, None, generator, max_timestep_fraction=0.0)


def test_residual_models_learn_the_correction_to_the_condition(monkeypatch):
    """cross_fade_residual: the loss noises latents - condition, so a clip equal to its condition is pure
    noise to the model and a zero-velocity model is exact at the last timestep."""
    pipe = build_tiny_pipeline(tiny_trimap_config(condition="cross_fade_residual"))
    seen = []
    monkeypatch.setattr(
        pipe,
        "model_output",
        lambda noisy, condition, t, text, rotary: (seen.append((noisy, t)), torch.zeros_like(noisy))[1],
    )
    latents = torch.randn(8, 3, 4, 4, 4)
    text = torch.zeros(8, 16, 32)
    loss = diffusion_loss(pipe, latents, latents, text, None, torch.Generator().manual_seed(0))
    noisy, t = seen[0]
    sigma = (1 - pipe.scheduler.alphas_cumprod[t]).sqrt().float().view(-1, 1, 1, 1, 1)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(noisy, sigma * noise, atol=1e-5)  # the clean residual is zero
    assert float(loss) > 0
    seen.clear()
    condition = latents + torch.randn(latents.shape)
    diffusion_loss(pipe, latents, condition, text, None, torch.Generator().manual_seed(0))
    alpha = pipe.scheduler.alphas_cumprod[t].sqrt().float().view(-1, 1, 1, 1, 1)
    assert torch.allclose(seen[0][0], alpha * (latents - condition) + sigma * noise, atol=1e-5)


def test_terminal_fraction_draws_the_last_timestep(monkeypatch):
    pipe = _pipe()
    seen = []
    monkeypatch.setattr(pipe, "model_output", lambda noisy, condition, t, text, rotary: (seen.append(t), noisy)[1])
    latents, text = torch.randn(64, 3, 4, 4, 4), torch.zeros(64, 16, 32)
    generator = torch.Generator().manual_seed(0)
    diffusion_loss(pipe, latents, latents, text, None, generator, terminal_fraction=1.0)
    diffusion_loss(pipe, latents, latents, text, None, generator, terminal_fraction=0.5)
    last = pipe.scheduler.config.num_train_timesteps - 1
    assert (seen[0] == last).all()
    assert 10 < int((seen[1] == last).sum()) < 54
    with pytest.raises(ValueError, match="terminal_fraction"):
        diffusion_loss(pipe, latents, latents, text, None, generator, terminal_fraction=1.5)


def _correction_pipe_fitted(clip):
    pipe = build_tiny_pipeline(
        tiny_trimap_config(vae_channels=(8, 8, 16), temporal_compression=1, condition="cross_fade_correction")
    )
    pipe.set_progress_bar_config(disable=True)
    train_vae(pipe, [clip], steps=30, learning_rate=3e-3, mse_weight=1.0, frame_batch=4)
    return pipe


def test_calibration_gives_unit_variance_residuals():
    clip = TrainClip(moving_square_clip(), "rgb")
    pipe = _correction_pipe_fitted(clip)
    latents, condition, base = encode_clip(pipe, clip.video)
    scaled = pipe.to_diffusion(latents, condition)
    assert abs(float(scaled[:, 1:-1].std()) - 1.0) < 0.05 and pipe.config.residual_scale > 1.0
    assert float(scaled[:, [0, -1]].abs().max()) < 1e-4  # the keyframes are given


def test_one_step_pixel_loss_scores_the_decoded_clip(monkeypatch):
    """A model predicting the exact clean residual scores the decoding of the clip's own latents; one
    predicting none scores the pixel cross-fade."""
    clip = TrainClip(moving_square_clip(), "rgb")
    pipe = _correction_pipe_fitted(clip)
    latents, condition, base = encode_clip(pipe, clip.video)
    pixels = torch.from_numpy(clip.video).permute(3, 0, 1, 2)[None] * 2 - 1
    text = torch.zeros(1, 16, 32)
    last = pipe.scheduler.config.num_train_timesteps - 1
    alpha = float(pipe.scheduler.alphas_cumprod[last])
    clean = pipe.to_diffusion(latents, condition)
    for name, predict, expected in (
        (
            "exact",
            lambda noisy: (alpha**0.5 * noisy - clean) / (1 - alpha) ** 0.5,
            pipe.decode_video(latents, condition, base).detach(),
        ),
        (
            "none",
            lambda noisy: alpha**0.5 * noisy / (1 - alpha) ** 0.5,
            cross_fade_video(pixels[:, :, 0], pixels[:, :, -1], 9),
        ),
    ):
        monkeypatch.setattr(pipe, "model_output", lambda noisy, c, t, x, r, predict=predict: predict(noisy))
        with torch.no_grad():
            loss = one_step_pixel_loss(
                pipe, latents, condition, base, pixels, text, None, torch.Generator().manual_seed(0)
            )
        assert abs(float(loss) - float(torch.nn.functional.mse_loss(expected, pixels))) < 1e-4, name


def test_batched_training_with_the_pixel_term_moves_the_transformer():
    clip = TrainClip(moving_square_clip(), "rgb")
    pipe = _correction_pipe_fitted(clip)
    before = [p.detach().clone() for p in pipe.transformer.parameters()]
    history = train_trimap(
        pipe,
        [clip, TrainClip(clip.video[:, ::-1].copy(), "rgb")],
        [TrainStage("rgb", ("rgb",), 3)],
        TrainSettings(batch_clips=2, pixel_weight=1.0, terminal_fraction=0.5),
    )
    assert len(history["rgb"]) == 3 and np.isfinite(history["rgb"]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, pipe.transformer.parameters()))


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_short_vae_runs_train(steps):
    """The one-cycle schedule needs a warm-up and a decay phase: short runs still train (fewer than 4
    steps at a constant learning rate)."""
    pipe = build_tiny_pipeline(tiny_trimap_config(vae_channels=(8, 8, 16), temporal_compression=1))
    losses = train_vae(pipe, [TrainClip(moving_square_clip(), "rgb")], steps=steps, frame_batch=2)
    assert len(losses) == steps and np.isfinite(losses).all()
