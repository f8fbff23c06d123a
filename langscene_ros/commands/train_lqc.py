"""``langscene train-lqc``: train the Language Quantized Compressor on a feature corpus."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from langscene_core.config import DEFAULT_CONFIG_PATH
from langscene_ros.commands import UsageError

if TYPE_CHECKING:
    import torch


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-lqc",
        help="train the Language Quantized Compressor on a feature corpus",
        description="Train the LQC (paper section 3.3) on CLIP features and write a safetensors checkpoint.",
    )
    parser.add_argument(
        "--features", required=True, type=Path, help="[N, F] float features: .npy, or .safetensors holding one tensor"
    )
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write (.safetensors)")
    parser.add_argument(
        "--texts",
        type=Path,
        default=None,
        help="text embeddings for the text-activation loss: [T, F] .npy/.safetensors, or a "
        ".txt file of phrases (one a line) encoded with models.clip",
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps (default models.lqc_train.steps)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="settings file (default %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the final losses and metrics here")
    parser.set_defaults(run=run)


def _read_matrix(path: Path, what: str) -> torch.Tensor:
    """A [N, F] float32 matrix from .npy or a single-tensor .safetensors file; UsageError otherwise."""
    import numpy as np
    import torch

    if not path.is_file():
        raise UsageError(f"{what} file not found: {path}")
    try:
        if path.suffix == ".npy":
            array = torch.from_numpy(np.load(path, allow_pickle=False))
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if len(tensors) != 1:
                raise UsageError(f"{what} file {path} must hold exactly one tensor, found {sorted(tensors)}")
            (array,) = tensors.values()
        else:
            raise UsageError(f"{what} file {path} must be .npy or .safetensors")
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc}") from exc
    if array.ndim != 2 or array.shape[0] == 0 or not array.dtype.is_floating_point:
        raise UsageError(
            f"{what} in {path} must be a non-empty [N, F] float matrix, got {tuple(array.shape)} {array.dtype}"
        )
    if not torch.isfinite(array).all():
        raise UsageError(f"{what} in {path} contain NaN or infinite values")
    return array.float()


def _read_texts(path: Path, config) -> torch.Tensor:
    if path.suffix != ".txt":
        return _read_matrix(path, "text embeddings")
    if not path.is_file():
        raise UsageError(f"texts file not found: {path}")
    phrases = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not phrases:
        raise UsageError(f"texts file {path} has no phrases")
    from langscene_core.language.clip import encode_text, load_clip

    try:
        clip = load_clip(config.models.clip.arch, config.models.clip.weights, config.models.device)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"cannot load the CLIP model to encode {path}: {exc}") from exc
    return encode_text(clip, phrases).cpu()


def run(args: argparse.Namespace) -> int:
    from langscene_core.config import ConfigError, load_config
    from langscene_core.language.clip import resolve_device
    from langscene_core.language.lqc import reconstruction_metrics, save_lqc, train_lqc

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    train_config = config.models.lqc_train
    if args.steps is not None:
        if args.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {args.steps}")
        train_config = dataclasses.replace(train_config, steps=args.steps)
    features = _read_matrix(args.features, "features")
    if features.shape[1] != train_config.feature_dim:
        raise UsageError(
            f"features in {args.features} are {features.shape[1]}-d but models.lqc_train.feature_dim "
            f"is {train_config.feature_dim}"
        )
    texts = _read_texts(args.texts, config) if args.texts is not None else None
    if texts is not None and texts.shape[1] != train_config.feature_dim:
        raise UsageError(
            f"text embeddings in {args.texts} are {texts.shape[1]}-d, features are {train_config.feature_dim}-d"
        )
    device = resolve_device(config.models.device)
    result = train_lqc(
        features.to(device),
        texts,
        train_config,
        progress=lambda step, losses: print(f"step {step}: {losses}", file=sys.stderr),
    )
    save_lqc(result.model, args.out)
    summary = {"steps": train_config.steps, "final_losses": result.losses[-1], "codes_restarted": result.restarted}
    if texts is not None:
        summary["train_metrics"] = reconstruction_metrics(result.model, features[:20000].to(device), texts.to(device))
    print(json.dumps(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0
