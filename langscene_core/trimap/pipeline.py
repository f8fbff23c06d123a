"""Keyframe-interpolation video diffusion on the CogVideoX architecture (paper section 3.2).

The model generates a T-frame video whose first and last frames are given. The condition video is
concatenated on the channel axis with the noise latent, so the transformer's ``in_channels`` is twice
the VAE's latent channels (the CogVideoX image-to-video layout, extended by a last frame). What the
condition holds is a stored property of the pipeline (``condition`` in model_index.json):
- ``keyframes`` (CogVideoX-I2V style, the default of checkpoints that do not name one): the first and
  last frame, each VAE-encoded on its own, at latent time 0 and -1 with zeros between;
- ``cross_fade``: the VAE encoding of the keyframes' linear cross-fade, so the model sees where the
  in-between frames start from and learns the correction (ghosting -> moved objects). With a per-frame
  VAE its ends are exactly the encoded keyframes;
- ``cross_fade_residual``: the same condition, and the diffusion runs on the correction, clip latents
  minus condition latents (see ``to_diffusion`` / ``from_diffusion``): a model that predicts no
  correction reproduces the encoded cross-fade instead of having to copy it;
- ``cross_fade_correction``: as ``cross_fade_residual``, and the frames are the pixel cross-fade plus the
  *decoded correction*, decode(clip latents) - decode(condition latents) (see ``decode_video``): a model
  that predicts no correction returns exactly the pixel cross-fade, and the VAE's reconstruction error,
  which is alike in both decodings, cancels where nothing moves;
- ``flow_correction`` (the small models trained here): as ``cross_fade_correction`` with the keyframes'
  motion-compensated interpolation (optical flow both ways, langscene_core.trimap.flow) in place of the
  cross-fade. A model small enough to train on a CPU does not learn correspondences between the keyframes
  (assets/README.md), so the flow supplies them and the model learns what the warped frames get wrong.

Tensors use diffusers' video layouts:
- pixel video: [B, 3, T, H, W] float in [-1, 1] (VAE input/output);
- latent video: [B, F, C, h, w] with F = (T - 1) / k_t + 1, h = H / k_s, w = W / k_s (k_t temporal and
  k_s spatial VAE compression), already multiplied by the VAE scaling factor.

With k_t = 1 (small models) the VAE is a per-frame image autoencoder: every frame is encoded and decoded
on its own (frames folded into the batch), so a keyframe's latent in a clip is exactly its condition
latent and no frame's latent mixes its neighbours (the causal 3D convolutions see one frame each).

Sampling can start from the noised condition latents (for ``keyframes`` models the keyframes' linear
cross-fade) instead of pure noise (``strength`` < 1, SDEdit): the model then only corrects what the
condition video gets wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXDPMScheduler,
    CogVideoXTransformer3DModel,
    DiffusionPipeline,
)
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import T5EncoderModel, T5Tokenizer

from langscene_core.trimap.flow import flow_interpolation

DEFAULT_PROMPT = "a 3D consistent video scene"  # the fixed prompt of the reference implementation
CONDITIONS = ("keyframes", "cross_fade", "cross_fade_residual", "cross_fade_correction", "flow_correction")
RESIDUAL_CONDITIONS = ("cross_fade_residual", "cross_fade_correction", "flow_correction")  # diffusion on the correction
CORRECTION_CONDITIONS = ("cross_fade_correction", "flow_correction")  # frames = condition video + decoded correction


@dataclass
class TrimapOutput(BaseOutput):
    """frames: [B, T, 3, H, W] float32 in [0, 1] (or [B, F, C, h, w] latents for output_type='latent')."""

    frames: torch.Tensor


def cross_fade_video(first: torch.Tensor, last: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linear blend [B, C, T, H, W] from ``first`` to ``last`` ([B, C, H, W]) over ``num_frames`` frames."""
    weights = torch.linspace(0.0, 1.0, num_frames, device=first.device, dtype=first.dtype).view(1, 1, -1, 1, 1)
    return (1.0 - weights) * first.unsqueeze(2) + weights * last.unsqueeze(2)


class TrimapPipeline(DiffusionPipeline):
    """First+last keyframe interpolation with classifier-free guidance.

    ``condition`` (one of CONDITIONS) chooses what the transformer is conditioned on; it must be the one
    the transformer was trained with, so it is saved with the pipeline, as is ``residual_scale``: the
    factor from residual latents (clip minus condition, typically a few times smaller than the latents)
    to what the diffusion generates, so that it runs on unit-variance data as the noise schedule assumes.

    Loads with ``TrimapPipeline.from_pretrained(directory, dtype=...)`` from a diffusers layout
    (model_index.json + tokenizer/, text_encoder/, vae/, transformer/, scheduler/); GPU users can call the
    inherited ``enable_model_cpu_offload()``, ``enable_sequential_cpu_offload()`` and
    ``vae.enable_tiling()`` (see :func:`langscene_core.trimap.loading.load_trimap`).
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(
        self,
        tokenizer: T5Tokenizer,
        text_encoder: T5EncoderModel,
        vae: AutoencoderKLCogVideoX,
        transformer: CogVideoXTransformer3DModel,
        scheduler: CogVideoXDDIMScheduler | CogVideoXDPMScheduler,
        condition: str = "keyframes",
        residual_scale: float = 1.0,
    ):
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"condition={condition!r}: expected one of {CONDITIONS}")
        self.register_modules(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        if not residual_scale > 0:
            raise ValueError(f"residual_scale={residual_scale}: expected > 0")
        # saved in model_index.json, read back by from_pretrained
        self.register_to_config(condition=condition, residual_scale=float(residual_scale))
        if transformer.config.in_channels != 2 * vae.config.latent_channels:
            raise ValueError(
                f"transformer in_channels ({transformer.config.in_channels}) must be twice the VAE "
                f"latent channels ({vae.config.latent_channels}): noise and condition are concatenated"
            )
        if transformer.config.patch_size_t is not None:
            raise ValueError(
                "temporal patching (CogVideoX 1.5, patch_size_t) is not supported; "
                "the TriMap checkpoint is CogVideoX 1.0 layout"
            )

    # ----------------------------------------------------------------- geometry of the latent space
    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell along H and W (8 for CogVideoX)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame after the first (4 for CogVideoX)."""
        return int(self.vae.config.temporal_compression_ratio)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (VAE downsampling x transformer patch size)."""
        return self.spatial_factor * self.transformer.config.patch_size

    @property
    def native_size(self) -> tuple[int, int]:
        """(H, W) in pixels the transformer was configured for (its sample size x VAE factor)."""
        config = self.transformer.config
        return config.sample_height * self.spatial_factor, config.sample_width * self.spatial_factor

    def check_video_shape(self, num_frames: int, height: int, width: int) -> None:
        """Raise ValueError when (T, H, W) cannot be encoded and patched."""
        # The CogVideoX VAE decodes latent frames in pairs after the first: an odd latent count (49 frames
        # -> 13 latents) decodes to exactly num_frames, an even one to more.
        step = 2 * self.temporal_factor
        if num_frames < step + 1 or (num_frames - 1) % step:
            raise ValueError(f"num_frames={num_frames}: must be k * {step} + 1 with k >= 1 (e.g. 9, 17, 49)")
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"frame size {height}x{width}: height and width must be multiples of {self.size_multiple}")

    def latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.temporal_factor + 1

    @property
    def per_frame_vae(self) -> bool:
        """True when the VAE does not compress time: each frame is encoded and decoded on its own."""
        return self.temporal_factor == 1

    # ----------------------------------------------------------------- building blocks (also used by training)
    def encode_prompt(self, prompt: str | list[str], device: torch.device) -> torch.Tensor:
        """T5 embeddings [B, L, D] of the prompt(s), L = transformer.config.max_text_seq_length."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.transformer.config.max_text_seq_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(device))[0].to(self.transformer.dtype)

    def encode_video(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """VAE-encode a pixel video [B, 3, T, H, W] in [-1, 1] -> scaled latents [B, F, C, h, w].

        With a generator the posterior is sampled, without it its mode is used.
        """
        batch, frames = video.shape[0], video.shape[2]
        if self.per_frame_vae:  # [B, 3, T, H, W] -> [B * T, 3, 1, H, W]
            video = video.transpose(1, 2).flatten(0, 1).unsqueeze(2)
        dist = self.vae.encode(video.to(self.vae.dtype)).latent_dist
        latents = dist.sample(generator) if generator is not None else dist.mode()
        scale = self.vae.config.scaling_factor
        latents = (latents / scale if self.vae.config.invert_scale_latents else latents * scale).permute(0, 2, 1, 3, 4)
        if self.per_frame_vae:  # [B * T, 1, C, h, w] -> [B, T, C, h, w]
            latents = latents.squeeze(1).unflatten(0, (batch, frames))
        return latents

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [B, F, C, h, w] -> pixel video [B, 3, T, H, W] in about [-1, 1]."""
        batch, frames = latents.shape[:2]
        if self.per_frame_vae:  # [B, F, C, h, w] -> [B * F, 1, C, h, w]
            latents = latents.flatten(0, 1).unsqueeze(1)
        latents = latents.permute(0, 2, 1, 3, 4).to(self.vae.dtype) / self.vae.config.scaling_factor
        video = self.vae.decode(latents).sample
        if self.per_frame_vae:  # [B * F, 3, 1, H, W] -> [B, 3, F, H, W]
            video = video.squeeze(2).unflatten(0, (batch, frames)).transpose(1, 2)
        return video

    def condition_video(self, first: torch.Tensor, last: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The pixel video [B, 3, T, H, W] in [-1, 1] that the condition encodes: the keyframes'
        motion-compensated interpolation for ``flow_correction``, their linear cross-fade otherwise
        (``keyframes`` encodes the two keyframes alone and does not use it).

        first, last: [B, 3, H, W] in [-1, 1].
        """
        if self.config.condition == "flow_correction":
            return flow_interpolation(first, last, num_frames)
        return cross_fade_video(first, last, num_frames)

    def encode_condition(
        self, first: torch.Tensor, last: torch.Tensor, num_frames: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(condition latents [B, F, C, h, w], the pixel video [B, 3, T, H, W] they encode or None).

        ``keyframes``: encoded first frame, zeros, encoded last frame, and no pixel video; the other
        conditions: the encoded ``condition_video`` over ``num_frames`` frames, and that video (the base
        that ``decode_video`` adds the decoded correction to). first, last: [B, 3, H, W] in [-1, 1].
        """
        if self.config.condition != "keyframes":
            video = self.condition_video(first, last, num_frames)
            return self.encode_video(video), video
        first_latent = self.encode_video(first.unsqueeze(2))
        last_latent = self.encode_video(last.unsqueeze(2))
        count = self.latent_frames(num_frames)
        zeros = first_latent.new_zeros(first_latent.shape[0], count - 2, *first_latent.shape[2:])
        return torch.cat([first_latent, zeros, last_latent], dim=1), None

    def condition_latents(self, first: torch.Tensor, last: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Condition video latents [B, F, C, h, w] (see ``encode_condition``)."""
        return self.encode_condition(first, last, num_frames)[0]

    @property
    def residual(self) -> bool:
        """True when the diffusion runs on clip latents minus condition latents (RESIDUAL_CONDITIONS)."""
        return self.config.condition in RESIDUAL_CONDITIONS

    def to_diffusion(self, latents: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Clip latents [B, F, C, h, w] -> what the diffusion model generates (the same, or the scaled
        residual ``residual_scale * (latents - condition)``)."""
        return (latents - condition) * self.config.residual_scale if self.residual else latents

    def from_diffusion(self, generated: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_diffusion`: generated [B, F, C, h, w] -> clip latents."""
        return generated / self.config.residual_scale + condition if self.residual else generated

    def decode_video(
        self,
        latents: torch.Tensor,
        condition: torch.Tensor,
        base: torch.Tensor | None,
        frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Clip latents [B, F, C, h, w] -> pixel video [B, 3, T, H, W] in about [-1, 1].

        The VAE decoding of ``latents``; for CORRECTION_CONDITIONS the condition's pixel video ``base``
        ([B, 3, T, H, W], ``condition_video``) plus the decoded correction decode(latents) -
        decode(condition) (condition: [B, F, C, h, w], from ``condition_latents``); other conditions
        ignore ``base``. ``frames`` ([K] frame indices; per-frame VAE only) decodes just those frames:
        [B, 3, K, H, W].
        """
        if frames is not None:
            if not self.per_frame_vae:
                raise ValueError("decoding selected frames needs a per-frame VAE (temporal compression 1)")
            latents, condition = latents[:, frames], condition[:, frames]
            base = None if base is None else base[:, :, frames]
        video = self.decode_latents(latents)
        if self.config.condition not in CORRECTION_CONDITIONS:
            return video
        return base.to(video.dtype) + video - self.decode_latents(condition)

    def rotary_embeddings(
        self, height: int, width: int, latent_frames: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """3D rotary (cos, sin) for a pixel size and latent frame count; None when the model has none."""
        config = self.transformer.config
        if not config.use_rotary_positional_embeddings:
            return None
        p = config.patch_size
        grid_h, grid_w = height // (self.spatial_factor * p), width // (self.spatial_factor * p)
        crops = get_resize_crop_region_for_grid((grid_h, grid_w), config.sample_width // p, config.sample_height // p)
        return get_3d_rotary_pos_embed(
            embed_dim=config.attention_head_dim,
            crops_coords=crops,
            grid_size=(grid_h, grid_w),
            temporal_size=latent_frames,
            device=device,
        )

    def model_output(
        self,
        noisy: torch.Tensor,
        condition: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Transformer prediction (v for CogVideoX schedulers) [B, F, C, h, w] for noisy latents.

        noisy, condition: [B, F, C, h, w]; timestep: [B] int; text: [B, L, D].
        """
        return self.transformer(
            hidden_states=torch.cat([noisy, condition], dim=2).to(self.transformer.dtype),
            encoder_hidden_states=text,
            timestep=timestep,
            image_rotary_emb=rotary,
            return_dict=False,
        )[0].float()

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def __call__(
        self,
        first_frame: torch.Tensor,
        last_frame: torch.Tensor,
        num_frames: int = 49,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        prompt: str = DEFAULT_PROMPT,
        negative_prompt: str = "",
        generator: torch.Generator | None = None,
        output_type: str = "pt",
        strength: float = 1.0,
    ) -> TrimapOutput:
        """Generate the video between two keyframes.

        first_frame, last_frame: [B, 3, H, W] or [3, H, W] float in [0, 1] (H, W multiples of
        ``size_multiple``). guidance_scale <= 1 disables classifier-free guidance. strength in (0, 1]:
        1 samples from pure noise; below 1 sampling starts from the condition latents (``keyframes``: the
        keyframes' linear cross-fade) noised to that fraction of the schedule and runs the last
        ``strength`` of the steps.
        Returns TrimapOutput(frames [B, T, 3, H, W] float32 in [0, 1]), or latents for output_type='latent'.
        """
        if output_type not in ("pt", "latent"):
            raise ValueError(f"output_type={output_type!r}: expected 'pt' or 'latent'")
        if not 0.0 < strength <= 1.0 or round(num_inference_steps * strength) < 1:
            raise ValueError(
                f"strength={strength}: expected 0 < strength <= 1 leaving at least one of the "
                f"{num_inference_steps} denoising steps"
            )
        first, last = (f.unsqueeze(0) if f.dim() == 3 else f for f in (first_frame, last_frame))
        if first.shape != last.shape or first.dim() != 4 or first.shape[1] != 3:
            raise ValueError(
                f"first/last frames must both be [B, 3, H, W]; got {tuple(first.shape)} and {tuple(last.shape)}"
            )
        batch, _, height, width = first.shape
        self.check_video_shape(num_frames, height, width)
        device = self._execution_device
        use_cfg = guidance_scale > 1.0

        text = self.encode_prompt([prompt] * batch, device)
        if use_cfg:
            text = torch.cat([self.encode_prompt([negative_prompt] * batch, device), text])
        first, last = first.to(device) * 2 - 1, last.to(device) * 2 - 1  # [-1, 1] from here on
        condition, base = self.encode_condition(first, last, num_frames)
        condition = condition.to(self.transformer.dtype)
        if use_cfg:
            condition = torch.cat([condition, condition])

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latent_shape = (
            batch,
            self.latent_frames(num_frames),
            self.vae.config.latent_channels,
            height // self.spatial_factor,
            width // self.spatial_factor,
        )
        latents = randn_tensor(latent_shape, generator=generator, device=device, dtype=torch.float32)
        timesteps = self.scheduler.timesteps
        if strength < 1.0:
            timesteps = timesteps[num_inference_steps - round(num_inference_steps * strength) :]
            faded = (
                condition[:batch] if base is not None else self.encode_video(cross_fade_video(first, last, num_frames))
            )
            start = self.to_diffusion(faded.float(), condition[:batch].float())
            latents = self.scheduler.add_noise(start, latents, timesteps[:1])
        else:
            latents = latents * self.scheduler.init_noise_sigma
        rotary = self.rotary_embeddings(height, width, latent_shape[1], device)

        previous_x0 = None  # DPM-solver++ state
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = torch.cat([latents, latents]) if use_cfg else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            prediction = self.model_output(model_in, condition, t.expand(model_in.shape[0]), text, rotary)
            if use_cfg:
                uncond, cond = prediction.chunk(2)
                prediction = uncond + guidance_scale * (cond - uncond)
            if isinstance(self.scheduler, CogVideoXDPMScheduler):
                latents, previous_x0 = self.scheduler.step(
                    prediction,
                    previous_x0,
                    t,
                    timesteps[i - 1] if i > 0 else None,
                    latents,
                    generator=generator,
                    return_dict=False,
                )
            else:
                latents = self.scheduler.step(prediction, t, latents, return_dict=False)[0]

        latents = self.from_diffusion(latents, condition[:batch].float())
        if output_type == "latent":
            frames = latents
        else:
            video = self.decode_video(latents, condition[:batch].float(), base).float()  # [B, 3, T, H, W]
            frames = ((video.clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4)
        self.maybe_free_model_hooks()
        return TrimapOutput(frames=frames)
