"""TrimapPipeline: shapes, value ranges, guidance, input checks, and the save_pretrained -> load round trip
through load_trimap (the loader real checkpoints use)."""

import dataclasses
import json

import pytest
import torch

from langscene_core import assets
from langscene_core.config import TrimapModelConfig
from langscene_core.trimap import loading
from langscene_core.trimap.loading import build_tiny_pipeline, load_trimap, resolve_model_path
from langscene_core.trimap.pipeline import cross_fade_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is faster


@pytest.fixture(scope="module")
def pipe():
    pipe = build_tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _generate(pipe, first, last, **kwargs):
    kwargs.setdefault("num_frames", 9)
    kwargs.setdefault("num_inference_steps", 3)
    return pipe(first, last, generator=torch.Generator().manual_seed(0), **kwargs).frames


def test_output_shape_and_range(pipe):
    first, last = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    frames = _generate(pipe, first, last, num_frames=17)
    assert frames.shape == (2, 17, 3, 32, 48)
    assert frames.dtype == torch.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    assert frames.std() > 0.01  # not a constant image


def test_latent_output_and_condition_layout(pipe):
    """Small models default to the (residual) cross-fade condition; ``keyframes`` (the CogVideoX-I2V
    layout) has zeros between the encoded keyframes; both keep the keyframes' own latents at the ends."""
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    latents = _generate(pipe, first, last, output_type="latent")
    assert latents.shape == (1, 3, pipe.vae.config.latent_channels, 4, 4)
    assert pipe.config.condition == "cross_fade_residual"
    with torch.no_grad():
        condition = pipe.condition_latents(first[None] * 2 - 1, last[None] * 2 - 1, 9)
        faded = pipe.encode_video(cross_fade_video(first[None] * 2 - 1, last[None] * 2 - 1, 9))
    assert condition.shape == latents.shape
    assert torch.equal(condition, faded)
    keyframes = build_tiny_pipeline(loading.tiny_trimap_config(condition="keyframes"), seed=0)
    with torch.no_grad():
        zero_filled = keyframes.condition_latents(first[None] * 2 - 1, last[None] * 2 - 1, 9)
    assert zero_filled.shape == latents.shape
    assert torch.count_nonzero(zero_filled[:, 1]) == 0  # zeros between the keyframes
    assert torch.count_nonzero(zero_filled[:, 0]) > 0 and torch.count_nonzero(zero_filled[:, -1]) > 0
    assert torch.count_nonzero(condition[:, 1]) > 0
    with pytest.raises(ValueError, match="condition"):
        build_tiny_pipeline(loading.tiny_trimap_config(condition="zeros"))


def test_guidance_changes_the_result(pipe):
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    plain = _generate(pipe, first, last, guidance_scale=1.0)
    guided = _generate(pipe, first, last, guidance_scale=6.0)
    assert (plain - guided).abs().max() > 1e-3
    assert torch.equal(plain, _generate(pipe, first, last, guidance_scale=1.0))  # seeded: reproducible


def test_conditioning_frames_matter(pipe):
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    a = _generate(pipe, first, last, output_type="latent")
    b = _generate(pipe, first, torch.rand(3, 32, 32), output_type="latent")
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize("frames, size", [(8, 32), (13, 32), (9, 40)])
def test_bad_video_shape_raises(pipe, frames, size):
    with pytest.raises(ValueError, match="num_frames|multiples"):
        _generate(pipe, torch.rand(3, size, size), torch.rand(3, size, size), num_frames=frames)


def test_mismatched_keyframes_raise(pipe):
    with pytest.raises(ValueError, match="first/last"):
        _generate(pipe, torch.rand(3, 32, 32), torch.rand(3, 32, 48))


def test_pipeline_rejects_wrong_channel_layout():
    pipe = build_tiny_pipeline()
    with pytest.raises(ValueError, match="in_channels"):
        type(pipe)(
            tokenizer=pipe.tokenizer,
            text_encoder=pipe.text_encoder,
            vae=pipe.vae,
            transformer=type(pipe.transformer)(**{**pipe.transformer.config, "in_channels": 4}),
            scheduler=pipe.scheduler,
        )


def test_save_pretrained_then_load_trimap(pipe, tmp_path, monkeypatch):
    pipe.save_pretrained(tmp_path / "tiny-test")
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    expected = _generate(pipe, first, last)
    loaded = load_trimap(TrimapModelConfig(path=str(tmp_path / "tiny-test"), dtype="float32"))
    assert type(loaded) is type(pipe)
    assert torch.allclose(_generate(loaded, first, last), expected, atol=1e-6)
    # bundled:NAME resolves under the assets directory through the same loader
    monkeypatch.setattr(assets, "ASSETS_DIR", tmp_path)
    bundled = load_trimap(TrimapModelConfig(path="bundled:tiny-test"))
    assert torch.allclose(_generate(bundled, first, last), expected, atol=1e-6)
    assert bundled.native_size == pipe.native_size == (64, 64)
    assert bundled.config.condition == "cross_fade_residual"  # the condition is a stored property of the model


def test_checkpoints_without_a_condition_load_zero_filled(pipe, tmp_path):
    """model_index.json without ``condition`` (older checkpoints, LangScene-X) keeps the keyframe layout."""
    pipe.save_pretrained(tmp_path / "old")
    index = tmp_path / "old" / "model_index.json"
    layout = json.loads(index.read_text())
    del layout["condition"]
    index.write_text(json.dumps(layout))
    assert load_trimap(TrimapModelConfig(path=str(tmp_path / "old"), dtype="float32")).config.condition == "keyframes"


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TriMap model"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="bundled:missing"):
        resolve_model_path("bundled:missing")
    config = TrimapModelConfig(path=str(tmp_path))
    with pytest.raises(ValueError, match="offload"):
        load_trimap(dataclasses.replace(config, offload="sometimes"))
    with pytest.raises(ValueError, match="CUDA"):
        load_trimap(dataclasses.replace(config, offload="model"), device="cpu")
    with pytest.raises(ValueError, match="dtype"):
        loading.resolve_dtype("float8", torch.device("cpu"))
    assert loading.resolve_dtype("auto", torch.device("cpu")) == torch.float32


def test_dpm_scheduler_also_runs(pipe):
    from diffusers import CogVideoXDPMScheduler

    dpm = type(pipe)(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        transformer=pipe.transformer,
        scheduler=CogVideoXDPMScheduler.from_config(pipe.scheduler.config),
    )
    dpm.set_progress_bar_config(disable=True)
    frames = _generate(dpm, torch.rand(3, 32, 32), torch.rand(3, 32, 32), num_inference_steps=4)
    assert frames.shape == (1, 9, 3, 32, 32) and torch.isfinite(frames).all()
    assert frames.min() >= 0 and frames.max() <= 1


def test_less_temporal_compression_keeps_the_frame_count():
    """A 3-block VAE compressing time 2x (the bundled model's layout): 9 frames <-> 5 latent frames."""
    pipe = build_tiny_pipeline(
        loading.tiny_trimap_config(latent_channels=16, vae_channels=(8, 8, 16), temporal_compression=2)
    )
    pipe.set_progress_bar_config(disable=True)
    assert (pipe.spatial_factor, pipe.temporal_factor, pipe.latent_frames(9)) == (4, 2, 5)
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    assert _generate(pipe, first, last, output_type="latent").shape == (1, 5, 16, 8, 8)
    assert _generate(pipe, first, last).shape == (1, 9, 3, 32, 32)
    with pytest.raises(ValueError, match="num_frames"):
        _generate(pipe, first, last, num_frames=11)  # (T - 1) must be a multiple of 2 * 2


@pytest.mark.parametrize("channels, ratio", [((8, 16), 4), ((8, 8, 16), 3)])
def test_bad_temporal_compression_raises(channels, ratio):
    with pytest.raises(ValueError, match="temporal_compression"):
        build_tiny_pipeline(loading.tiny_trimap_config(vae_channels=channels, temporal_compression=ratio))


def test_per_frame_vae_encodes_each_frame_on_its_own():
    """temporal_compression=1: one latent per frame, independent of its neighbours, so the keyframes'
    latents in a clip are exactly the condition latents."""
    pipe = build_tiny_pipeline(
        loading.tiny_trimap_config(latent_channels=16, vae_channels=(8, 8, 16), temporal_compression=1)
    )
    pipe.set_progress_bar_config(disable=True)
    assert pipe.per_frame_vae and pipe.latent_frames(9) == 9
    video = torch.rand(2, 3, 9, 32, 32) * 2 - 1
    latents = pipe.encode_video(video)
    assert latents.shape == (2, 9, 16, 8, 8)
    alone = pipe.encode_video(video[1:, :, 4:5])
    assert torch.allclose(latents[1:, 4:5], alone, atol=1e-5)  # frame 4 of clip 1 does not see frames 0-3
    condition = pipe.condition_latents(video[:, :, 0], video[:, :, -1], 9)
    assert torch.allclose(condition[:, [0, -1]], latents[:, [0, -1]], atol=1e-5)
    decoded = pipe.decode_latents(latents)
    assert decoded.shape == video.shape
    assert torch.allclose(decoded[1:, :, 4:5], pipe.decode_latents(alone), atol=1e-5)
    assert _generate(pipe, torch.rand(3, 32, 32), torch.rand(3, 32, 32)).shape == (1, 9, 3, 32, 32)


def test_strength_starts_from_the_noised_cross_fade(pipe):
    """SDEdit: a small strength keeps the sampled latents near the cross-fade's (random weights here, so
    only the start point pulls them there); strength 1 ignores it."""
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    with torch.no_grad():
        faded = pipe.encode_video(cross_fade_video(first[None] * 2 - 1, last[None] * 2 - 1, 9))
    errors = {
        s: float(
            (_generate(pipe, first, last, output_type="latent", num_inference_steps=10, strength=s) - faded).norm()
            / faded.norm()
        )
        for s in (0.1, 1.0)
    }
    assert errors[0.1] < 0.4 * errors[1.0], errors
    fade = cross_fade_video(first[None], last[None], 5)
    assert torch.allclose(fade[:, :, 0], first[None]) and torch.allclose(fade[:, :, 2], (first[None] + last[None]) / 2)
    for bad in (0.0, 1.5, 0.01):  # 0.01 of 3 steps leaves none
        with pytest.raises(ValueError, match="strength"):
            _generate(pipe, first, last, strength=bad)


@pytest.mark.parametrize("condition", ["cross_fade", "cross_fade_residual"])
def test_residual_generation_adds_the_condition_back(condition, monkeypatch):
    """One DDIM step from pure noise (zero terminal SNR) returns the predicted x0, which is 0 for a
    model that predicts zero velocity: the encoded cross-fade for a residual model, zeros otherwise."""
    pipe = build_tiny_pipeline(loading.tiny_trimap_config(condition=condition), seed=0)
    pipe.set_progress_bar_config(disable=True)
    monkeypatch.setattr(pipe, "model_output", lambda noisy, *args: torch.zeros_like(noisy))
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    latents = _generate(pipe, first, last, output_type="latent", num_inference_steps=1)
    with torch.no_grad():
        faded = pipe.encode_video(cross_fade_video(first[None] * 2 - 1, last[None] * 2 - 1, 9))
    expected = faded if condition == "cross_fade_residual" else torch.zeros_like(faded)
    assert torch.allclose(latents, expected, atol=1e-5)
    assert pipe.residual == (condition == "cross_fade_residual")
    assert torch.allclose(pipe.from_diffusion(pipe.to_diffusion(faded + 1, faded), faded), faded + 1)


def _correction_pipe(condition="cross_fade_correction", zero_correction=False):
    pipe = build_tiny_pipeline(
        loading.tiny_trimap_config(
            latent_channels=16,
            vae_channels=(8, 8, 16),
            temporal_compression=1,
            condition=condition,
            zero_correction=zero_correction,
        )
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_correction_decoding_without_a_correction_is_the_condition_video():
    """cross_fade_correction / flow_correction: a new model started at no correction (zero_correction)
    returns the keyframes' linear cross-fade / flow interpolation exactly (the VAE's error cancels), while
    the plain residual form returns the cross-fade through the VAE."""
    first, last = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    frames, expected = {}, {}
    for condition in ("cross_fade_correction", "flow_correction", "cross_fade_residual"):
        pipe = _correction_pipe(condition, zero_correction=True)
        frames[condition] = _generate(pipe, first, last, num_inference_steps=1)
        video = pipe.condition_video(first[None] * 2 - 1, last[None] * 2 - 1, 9)
        expected[condition] = ((video + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4)  # [1, T, 3, H, W]
    for condition in ("cross_fade_correction", "flow_correction"):
        assert torch.allclose(frames[condition], expected[condition], atol=1e-3), condition
    assert (expected["flow_correction"] - expected["cross_fade_correction"]).abs().max() > 0.05  # not a cross-fade
    assert (
        frames["cross_fade_residual"] - expected["cross_fade_residual"]
    ).abs().max() > 0.1  # a random VAE's round trip
    started = _correction_pipe("flow_correction")  # default: random output layer, a random correction
    assert (_generate(started, first, last, num_inference_steps=1) - expected["flow_correction"]).abs().max() > 0.05


def test_residual_scale_is_stored_and_inverted(tmp_path):
    pipe = _correction_pipe()
    pipe.register_to_config(residual_scale=4.0)
    latents, condition = torch.randn(2, 9, 16, 8, 8), torch.randn(2, 9, 16, 8, 8)
    assert torch.allclose(pipe.to_diffusion(latents, condition), 4.0 * (latents - condition))
    assert torch.allclose(pipe.from_diffusion(pipe.to_diffusion(latents, condition), condition), latents, atol=1e-6)
    pipe.save_pretrained(tmp_path / "scaled")
    loaded = load_trimap(TrimapModelConfig(path=str(tmp_path / "scaled"), dtype="float32"))
    assert (loaded.config.condition, loaded.config.residual_scale) == ("cross_fade_correction", 4.0)
    with pytest.raises(ValueError, match="residual_scale"):
        type(pipe)(
            tokenizer=pipe.tokenizer,
            text_encoder=pipe.text_encoder,
            vae=pipe.vae,
            transformer=pipe.transformer,
            scheduler=pipe.scheduler,
            residual_scale=0.0,
        )


def test_decoding_selected_frames_matches_the_whole_clip():
    pipe = _correction_pipe()
    first, last = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    latents = torch.randn(1, 9, 16, 8, 8)
    with torch.no_grad():
        condition, base = pipe.encode_condition(first, last, 9)
        whole = pipe.decode_video(latents, condition, base)
        picked = pipe.decode_video(latents, condition, base, frames=torch.tensor([2, 5]))
    assert picked.shape == (1, 3, 2, 32, 32)
    assert torch.allclose(picked, whole[:, :, [2, 5]], atol=1e-5)
    temporal = build_tiny_pipeline(loading.tiny_trimap_config(condition="cross_fade_correction"))
    with pytest.raises(ValueError, match="per-frame VAE"):
        temporal.decode_video(torch.randn(1, 3, 4, 4, 4), torch.randn(1, 3, 4, 4, 4), base, frames=torch.tensor([1]))
