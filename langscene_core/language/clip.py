"""OpenCLIP wrapper: load a model offline, encode images and texts into unit vectors.

Weights come from one of three places (``models.clip.weights``), never from the network:

* ``bundled:NAME``: a model directory shipped at ``langscene_core/assets/NAME/`` in open_clip's own
  ``local-dir`` layout: ``open_clip_config.json`` (``{"model_cfg": ..., "preprocess_cfg": ...}``) and
  ``open_clip_model.safetensors`` (the state dict). :func:`save_clip` writes that layout.
* a local path: a directory in the same layout, or a checkpoint file for the architecture ``arch``.
* an OpenCLIP pretrained tag (e.g. ``laion2b_s34b_b88k``) whose file is already in the local Hugging Face
  or OpenCLIP cache; a tag that is not cached raises :class:`FileNotFoundError` instead of downloading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from safetensors.torch import save_file

BUNDLED_PREFIX = "bundled:"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
VOCABULARY_FILE = "vocabulary.txt"  # optional: the descriptions the model was trained to tell apart


@dataclass(frozen=True)
class ClipModel:
    """A loaded OpenCLIP model with what encoding needs.

    model: open_clip CLIP module in eval mode on ``device``.
    tokenizer: callable list[str] -> [T, context_length] int64 token ids.
    image_size: (height, width) the image encoder expects.
    mean, std: per-channel normalisation of 0..1 RGB.
    """

    model: torch.nn.Module
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: torch.device

    @property
    def dim(self) -> int:
        """Width D of the joint image-text embedding."""
        return int(self.model.text_projection.shape[1])


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda when available else cpu; otherwise ``torch.device(device)``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def bundled_path(name: str) -> Path:
    """Directory of the bundled model ``NAME`` (``bundled:NAME``) under ``langscene_core/assets``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad bundled model name {name!r}: expected a plain directory name")
    return ASSETS_DIR / name


def _wrap(model: torch.nn.Module, tokenizer: Callable, device: torch.device) -> ClipModel:
    model = model.to(device).eval()
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    return ClipModel(model, tokenizer, (int(size[0]), int(size[1])), tuple(cfg["mean"]), tuple(cfg["std"]), device)


def _cached_pretrained_file(arch: str, tag: str) -> str:
    """Local file of an OpenCLIP pretrained tag, or FileNotFoundError (no download)."""
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ValueError(
            f"CLIP weights {tag!r}: not a file, a bundled:NAME model or a pretrained tag of "
            f"{arch} (known tags: {known})"
        )
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)  # "org/repo/" names the default file
        filename = filename or "open_clip_pytorch_model.bin"
        for name in (str(Path(filename).with_suffix(".safetensors")), filename):
            found = try_to_load_from_cache(repo_id, name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url", "")
    if url:
        local = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        if local.is_file():
            return str(local)
    raise FileNotFoundError(
        f"CLIP weights {arch}/{tag} are not in the local cache (Hugging Face hub "
        f"{hub or '-'}, url {url or '-'}); langscene never downloads them: fetch them "
        f"once yourself or pass a local file"
    )


def _weights_path(weights: str) -> Path:
    """``models.clip.weights`` as a local path: a ``bundled:NAME`` model's directory, else the value with
    ``~`` expanded (a directory, a file, or a pretrained tag that names no path)."""
    if weights.startswith(BUNDLED_PREFIX):
        return bundled_path(weights[len(BUNDLED_PREFIX) :])
    return Path(weights).expanduser()


def load_vocabulary(weights: str, path: str = "") -> tuple[str, ...]:
    """The descriptions a CLIP model tells objects apart by (the query's rival check), one a line of a
    text file: ``path`` when given, else the ``vocabulary.txt`` of a ``bundled:NAME`` or directory model
    (what it was trained to name); () when neither exists. Blank lines are skipped."""
    if not path:
        directory = _weights_path(weights)
        if not (directory / VOCABULARY_FILE).is_file():
            return ()
        path = str(directory / VOCABULARY_FILE)
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except OSError as exc:
        raise FileNotFoundError(f"CLIP vocabulary {path!r} cannot be read: {exc}") from exc
    return tuple(dict.fromkeys(line.strip() for line in lines if line.strip()))


def save_vocabulary(texts: Sequence[str], directory: str | Path) -> Path:
    """Write ``texts`` as the ``vocabulary.txt`` of a model directory (read by :func:`load_vocabulary`)."""
    path = Path(directory) / VOCABULARY_FILE
    path.write_text("".join(f"{t}\n" for t in texts))
    return path


def load_clip(arch: str, weights: str, device: str | torch.device = "cpu") -> ClipModel:
    """Load an OpenCLIP model without network access.

    arch: OpenCLIP architecture name (e.g. ``ViT-B-16``); ignored for directory weights, which carry
        their own architecture config.
    weights: ``bundled:NAME``, a directory in the open_clip local-dir layout, a checkpoint file, or a
        pretrained tag present in the local cache.
    device: ``auto``, ``cpu``, ``cuda``, ...
    """
    device = resolve_device(device)
    path = _weights_path(weights)
    if weights.startswith(BUNDLED_PREFIX) and not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"bundled CLIP model {weights!r} not found: expected {path / CONFIG_FILE} and {path / WEIGHTS_FILE}"
        )
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"CLIP model directory {path} has no {CONFIG_FILE}")
        name = f"local-dir:{path}"
        model = open_clip.create_model(name, device=device, require_pretrained=True)
        return _wrap(model, open_clip.get_tokenizer(name), device)
    if open_clip.get_model_config(arch) is None:
        raise ValueError(f"unknown CLIP architecture {arch!r}")
    if path.is_file():
        try:
            model = open_clip.create_model(arch, pretrained=str(path), device=device, require_pretrained=True)
        except (RuntimeError, AssertionError) as exc:  # open_clip's state-dict checks raise both
            raise ValueError(f"CLIP weights file {path} does not fit architecture {arch}: {exc}") from exc
        return _wrap(model, open_clip.get_tokenizer(arch), device)
    checkpoint = _cached_pretrained_file(arch, weights)
    tag_cfg = open_clip.get_pretrained_cfg(arch, weights)
    preprocess = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    model = open_clip.create_model(
        arch,
        pretrained=checkpoint,
        device=device,
        require_pretrained=True,
        force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
        force_preprocess_cfg=preprocess,
    )
    return _wrap(model, open_clip.get_tokenizer(arch), device)


def build_clip(model_cfg: Mapping[str, Any], device: str | torch.device = "cpu", seed: int = 0) -> ClipModel:
    """A randomly initialised CLIP from an open_clip model config dict (``embed_dim``, ``vision_cfg``,
    ``text_cfg``; the format of open_clip's ``model_configs/*.json``). For tests and for training small
    bundled models."""
    device = resolve_device(device)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**dict(model_cfg))
    open_clip.set_model_preprocess_cfg(
        model,
        {
            "size": model.visual.image_size,
            "mean": open_clip.OPENAI_DATASET_MEAN,
            "std": open_clip.OPENAI_DATASET_STD,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    )
    tokenizer = open_clip.SimpleTokenizer(context_length=int(model_cfg["text_cfg"].get("context_length", 77)))
    return _wrap(model, tokenizer, device)


def save_clip(clip: ClipModel, directory: str | Path, model_cfg: Mapping[str, Any]) -> Path:
    """Write ``clip`` in the layout :func:`load_clip` reads (``bundled:NAME`` when ``directory`` is
    ``langscene_core/assets/NAME``): ``open_clip_config.json`` + ``open_clip_model.safetensors``.

    model_cfg: the open_clip model config the model was built from (``embed_dim``, ``vision_cfg``,
        ``text_cfg``, ...).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    preprocess = dict(open_clip.get_model_preprocess_cfg(clip.model))
    preprocess["size"] = list(clip.image_size)
    preprocess["mean"], preprocess["std"] = list(clip.mean), list(clip.std)
    (directory / CONFIG_FILE).write_text(
        json.dumps({"model_cfg": dict(model_cfg), "preprocess_cfg": preprocess}, indent=2)
    )
    state = {k: v.detach().cpu().contiguous() for k, v in clip.model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    return directory


def preprocess_images(clip: ClipModel, images: torch.Tensor) -> torch.Tensor:
    """Resize and normalise images for the image encoder.

    images: [B, 3, H, W] float in 0..1 (RGB) or uint8 0..255.
    Returns [B, 3, h, w] float32 on ``clip.device`` with (h, w) = ``clip.image_size``; each image is
    resized as a whole (callers crop to the region they want encoded, e.g. a square mask crop).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
    images = images.to(clip.device)
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    images = TF.resize(images, list(clip.image_size), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return TF.normalize(images.clamp(0.0, 1.0), list(clip.mean), list(clip.std))


@torch.no_grad()
def encode_images(clip: ClipModel, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Image embeddings. images: [B, 3, H, W] (see :func:`preprocess_images`).
    Returns [B, D] float32 unit vectors on ``clip.device``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = [
        clip.model.encode_image(preprocess_images(clip, images[i : i + batch_size]))
        for i in range(0, images.shape[0], batch_size)
    ]
    if not out:
        return torch.zeros(0, clip.dim, device=clip.device)
    return F.normalize(torch.cat(out).float(), dim=-1)


@torch.no_grad()
def encode_text(clip: ClipModel, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Text embeddings of ``texts`` (T phrases). Returns [T, D] float32 unit vectors on ``clip.device``."""
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, got one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    texts = list(texts)
    out = [
        clip.model.encode_text(clip.tokenizer(texts[i : i + batch_size]).to(clip.device))
        for i in range(0, len(texts), batch_size)
    ]
    if not out:
        return torch.zeros(0, clip.dim, device=clip.device)
    return F.normalize(torch.cat(out).float(), dim=-1)
