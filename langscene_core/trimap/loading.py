"""Building and loading TriMap pipelines: tiny random models for the CPU/tests, and checkpoints in the
diffusers layout (``bundled:NAME`` -> ``langscene_core/assets/NAME/``, or a local directory)."""

from __future__ import annotations

import importlib.util
import string
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from langscene_core.assets import resolve
from langscene_core.config import TrimapModelConfig
from langscene_core.errors import ConfigError, ModelNotFoundError
from langscene_core.trimap.pipeline import TrimapPipeline

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class TinyTrimapConfig:
    """Sizes of a small random TriMap model that runs on the CPU (frame size: multiple of 16)."""

    latent_channels: int = 4
    vae_channels: tuple[int, ...] = (8, 8, 16, 16)  # 4 blocks: 8x spatial compression
    vae_layers_per_block: int = 1
    temporal_compression: int = 4  # frames per latent frame after the first (1, 2 or 4; CogVideoX: 4)
    heads: int = 2
    head_dim: int = 16
    layers: int = 2
    text_dim: int = 32
    text_tokens: int = 16
    time_embed_dim: int = 64
    sample_height: int = 64  # nominal frame size (pixels) for the rotary-embedding grid
    sample_width: int = 64
    condition: str = "cross_fade_residual"  # TrimapPipeline condition (pipeline.CONDITIONS)
    zero_correction: bool = False  # residual conditions: zero output projection, the model starts predicting none


def tiny_trimap_config(**overrides) -> TinyTrimapConfig:
    """The default small configuration, with optional field overrides."""
    return TinyTrimapConfig(**overrides)


def offline_t5_tokenizer() -> T5Tokenizer:
    """A character-level T5 unigram tokenizer built in memory (no files, no download).

    It stands in for CogVideoX's t5-v1_1-xxl tokenizer in small models; real checkpoints ship theirs.
    """
    pieces = ["<pad>", "</s>", "<unk>", "\u2581"] + list(string.ascii_letters + string.digits + string.punctuation)
    vocab = [(piece, 0.0 if i < 3 else -float(i)) for i, piece in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_pipeline(config: TinyTrimapConfig = TinyTrimapConfig(), seed: int = 0) -> TrimapPipeline:
    """A TrimapPipeline with random weights of the given sizes (float32, CPU)."""
    if (
        config.temporal_compression not in (1, 2, 4)
        or 2 ** (len(config.vae_channels) - 1) < config.temporal_compression
    ):
        raise ValueError(
            f"temporal_compression={config.temporal_compression}: expected 1, 2 or 4, at most the "
            f"spatial compression of {len(config.vae_channels)} VAE blocks"
        )
    torch.manual_seed(seed)
    tokenizer = offline_t5_tokenizer()
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=config.text_dim,
            d_kv=16,
            d_ff=2 * config.text_dim,
            num_layers=1,
            num_heads=2,
        )
    )
    blocks = len(config.vae_channels)
    vae = AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * blocks,
        up_block_types=("CogVideoXUpBlock3D",) * blocks,
        block_out_channels=config.vae_channels,
        latent_channels=config.latent_channels,
        layers_per_block=config.vae_layers_per_block,
        norm_num_groups=2,
        temporal_compression_ratio=config.temporal_compression,
        sample_height=config.sample_height,
        sample_width=config.sample_width,
    )
    factor = 2 ** (blocks - 1)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=config.heads,
        attention_head_dim=config.head_dim,
        in_channels=2 * config.latent_channels,
        out_channels=config.latent_channels,
        text_embed_dim=config.text_dim,
        time_embed_dim=config.time_embed_dim,
        num_layers=config.layers,
        sample_height=config.sample_height // factor,
        sample_width=config.sample_width // factor,
        max_text_seq_length=config.text_tokens,
        patch_size=2,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=False,
    )
    scheduler = CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        clip_sample=False,
        set_alpha_to_one=True,
        snr_shift_scale=1.0,
    )
    for model in (text_encoder, vae, transformer):
        model.eval()  # as from_pretrained returns them (T5 has dropout)
    pipe = TrimapPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        condition=config.condition,
    )
    if config.zero_correction and pipe.residual:
        # Zero output projection (as DiT's adaLN-zero and ControlNet's zero convolutions): the new residual
        # model predicts no correction, so it starts from its condition video and training moves it away
        # from there only where that helps.
        torch.nn.init.zeros_(transformer.proj_out.weight)
        torch.nn.init.zeros_(transformer.proj_out.bias)
    return pipe


def resolve_model_path(path: str) -> Path:
    """``bundled:NAME`` or a local directory (:func:`langscene_core.assets.resolve`) holding a diffusers
    ``model_index.json``; ModelNotFoundError naming the path otherwise."""
    directory = resolve(path)
    if not (directory / "model_index.json").is_file():
        raise ModelNotFoundError(f"no TriMap model at '{path}' ({directory}/model_index.json missing)")
    return directory


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA (the checkpoint's dtype), float32 on the CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in _DTYPES:
        raise ConfigError(f"models.trimap.dtype={name!r}: expected auto, {', '.join(_DTYPES)}")
    return _DTYPES[name]


def load_trimap(config: TrimapModelConfig, device: str | torch.device = "cpu") -> TrimapPipeline:
    """Load the pipeline named by ``config.path`` with its dtype, offload and VAE-tiling settings.

    offload: ``none`` moves everything to ``device``; ``model`` / ``sequential`` use diffusers' CPU
    offload hooks (CUDA only), which move weights to the GPU per model / per layer while they run.
    """
    device = torch.device(device)
    if config.offload not in ("none", "model", "sequential"):
        raise ConfigError(f"models.trimap.offload={config.offload!r}: expected none, model or sequential")
    if config.offload != "none" and device.type != "cuda":
        raise ConfigError(f"models.trimap.offload={config.offload!r} needs a CUDA device, got {device}")
    if config.offload != "none" and importlib.util.find_spec("accelerate") is None:
        raise ConfigError(
            f"models.trimap.offload={config.offload!r} needs the 'accelerate' package (pip install accelerate)"
        )
    pipe = TrimapPipeline.from_pretrained(resolve_model_path(config.path), dtype=resolve_dtype(config.dtype, device))
    if config.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif config.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    if config.vae_tiling:
        pipe.vae.enable_tiling()
    pipe.set_progress_bar_config(disable=True)
    return pipe
