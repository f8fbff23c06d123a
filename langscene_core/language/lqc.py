"""Language Quantized Compressor (paper section 3.3, DESIGN.md 2.5).

x [N, 512] unit CLIP feature -> encoder -> z_e [N, D=3] in (-1, 1) -> nearest of K=2048 codes (Eq. 2) -> z_q
-> decoder -> x_hat [N, 512] unit. Trained with

* reconstruction through the straight-through estimator, ||x - dec(z_e + sg(z_q - z_e))||^2 (Eq. 3),
* codebook (dictionary learning) ||sg(z_e) - z_q||^2 (Eq. 4),
* text activation ||x_hat T^T - x T^T||^2 over text embeddings T (Eq. 5),

weighted 1, 0.2, 0.5 (Eq. 6; ``LqcTrainConfig``). Squared norms are summed, as the equations write
them: over feature channels (Eq. 3, 4) and over the T texts (Eq. 5), then averaged over the batch.
(Averaging Eq. 5 over the texts made it T times weaker than written; with the bundled model's 104
texts the sum keeps more names above relevancy 0.5 through the round trip: langscene_core/assets/
README.md.) Codes unused for ``restart_every`` steps are moved onto random encoder outputs of the
current batch (dead-code restarts); the first restart, at step 0, initialises the codebook from data.

With ``quantized=False`` the same networks form a plain autoencoder with a continuous 3-d bottleneck
(the baseline of the paper's Fig. 7): no codebook, no Eq. 4.

Checkpoints are one safetensors file; its metadata holds the ``LqcTrainConfig`` as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import scipy.spatial
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from langscene_core.assets import BUNDLED_PREFIX, resolve
from langscene_core.config import LqcTrainConfig, from_dict, to_dict
from langscene_core.errors import ModelError, ModelNotFoundError
from langscene_core.language.clip import resolve_device
from langscene_core.language.relevancy import relevancy

CHECKPOINT_FILE = "lqc.safetensors"  # name inside a bundled model directory
FORMAT = "langscene-lqc-1"
_CHUNK = 32768  # rows per nearest-code search chunk on a GPU ([chunk, K] distances in memory)


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class LQC(nn.Module):
    """Encoder, codebook and decoder. Feature width F = ``config.feature_dim``, latent width
    D = ``config.latent_dim``, K = ``config.codebook_size`` codes."""

    def __init__(self, config: LqcTrainConfig):
        super().__init__()
        if config.latent_dim < 1 or config.feature_dim < 1 or config.codebook_size < 1:
            raise ValueError(f"LQC sizes must be positive: {config}")
        self.config = config
        widths = [config.feature_dim, *config.hidden_dims, config.latent_dim]
        # tanh bounds the latent space to (-1, 1)^D: without it z_e runs away from the codes (Eq. 3-6
        # have no commitment term), and the field renders latents in a known range
        self.encoder = nn.Sequential(_mlp(widths), nn.Tanh())
        self.decoder = _mlp(widths[::-1])
        codes = config.codebook_size if config.quantized else 0
        self.codebook = nn.Parameter(torch.zeros(codes, config.latent_dim))

    def _check(self, x: torch.Tensor, width: int, name: str) -> None:
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"{name} must be [N, {width}], got {tuple(x.shape)}")

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z: [N, D] latents -> [N] int64 index of the nearest code (Eq. 2)."""
        if not self.config.quantized:
            raise ValueError("this compressor is a plain autoencoder: it has no codebook")
        self._check(z, self.config.latent_dim, "latents")
        codebook, z = self.codebook.detach(), z.detach()
        if z.device.type == "cpu":
            # exact k-d tree search: O(N log K), ~100x faster than N x K distances for D=3 on a CPU
            _, index = scipy.spatial.cKDTree(codebook.double().numpy()).query(z.double().numpy())
            return torch.from_numpy(index).long()
        out = torch.empty(z.shape[0], dtype=torch.int64, device=z.device)
        for i in range(0, z.shape[0], _CHUNK):
            out[i : i + _CHUNK] = torch.cdist(z[i : i + _CHUNK], codebook).argmin(dim=1)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass. x: [N, F]. Returns z_e [N, D], z_q [N, D] (= z_e for the autoencoder),
        codes [N] int64 (empty for the autoencoder), x_hat [N, F] unit (straight-through gradient)."""
        self._check(x, self.config.feature_dim, "features")
        z_e = self.encoder(x)
        if self.config.quantized:
            codes = self.nearest(z_e)
            z_q = self.codebook[codes]
            z = z_e + (z_q - z_e).detach()
        else:
            codes = torch.zeros(0, dtype=torch.int64, device=x.device)
            z = z_q = z_e
        return {"z_e": z_e, "z_q": z_q, "codes": codes, "x_hat": F.normalize(self.decoder(z), dim=-1)}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, F] features -> [N, D] latents: the nearest code vector (quantized) or z_e."""
        self._check(x, self.config.feature_dim, "features")
        z_e = self.encoder(x)
        return self.codebook[self.nearest(z_e)] if self.config.quantized else z_e

    @torch.no_grad()
    def code_of(self, z: torch.Tensor) -> torch.Tensor:
        """z: [N, D] latents (e.g. per Gaussian) -> [N] int64 nearest code index."""
        return self.nearest(z)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: [N, D] latents -> [N, F] unit features. A quantized compressor first snaps each latent to
        its nearest code (its decoder was trained on code vectors only), so decode(z) equals
        ``code_features()[code_of(z)]`` up to float rounding."""
        self._check(z, self.config.latent_dim, "latents")
        if self.config.quantized:
            z = self.codebook[self.nearest(z)]
        return F.normalize(self.decoder(z), dim=-1)

    @torch.no_grad()
    def code_features(self) -> torch.Tensor:
        """[K, F] unit features of every code (the code table's input)."""
        if not self.config.quantized:
            raise ValueError("this compressor is a plain autoencoder: it has no codebook")
        return F.normalize(self.decoder(self.codebook), dim=-1)


def lqc_losses(model: LQC, x: torch.Tensor, texts: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Weighted Eq. 3-6 on a batch. x: [B, F] unit features; texts: [T, F] unit text embeddings or None
    (no Eq. 5 term). Returns scalar tensors: reconstruction, codebook, text, total; codes [B] and
    x_hat [B, F] (the decoded batch, straight-through gradient)."""
    config = model.config
    out = model(x)
    zero = x.new_zeros(())
    reconstruction = (x - out["x_hat"]).pow(2).sum(dim=1).mean()
    codebook = (out["z_e"].detach() - out["z_q"]).pow(2).sum(dim=1).mean() if config.quantized else zero
    text = ((out["x_hat"] - x) @ texts.T).pow(2).sum(dim=1).mean() if texts is not None and len(texts) else zero
    total = (
        config.weight_reconstruction * reconstruction + config.weight_codebook * codebook + config.weight_text * text
    )
    return {
        "reconstruction": reconstruction,
        "codebook": codebook,
        "text": text,
        "total": total,
        "codes": out["codes"],
        "x_hat": out["x_hat"],
    }


@torch.no_grad()
def restart_dead_codes(model: LQC, usage: torch.Tensor, z_e: torch.Tensor, generator: torch.Generator) -> int:
    """Move every code with ``usage == 0`` onto a random row of z_e [B, D] (plus a little noise so
    restarted codes differ). usage: [K] counts since the last restart. Returns the number restarted."""
    dead = torch.nonzero(usage == 0).flatten()
    if dead.numel() == 0 or z_e.shape[0] == 0:
        return 0
    rows = torch.randint(0, z_e.shape[0], (dead.numel(),), generator=generator, device=z_e.device)
    spread = z_e.std(dim=0, keepdim=True).clamp(min=1e-6) * 0.01
    noise = torch.randn(dead.numel(), z_e.shape[1], generator=generator, device=z_e.device) * spread
    model.codebook[dead] = z_e[rows] + noise
    return int(dead.numel())


@dataclass
class TrainResult:
    model: LQC
    losses: list[dict[str, float]]  # one entry per step: reconstruction, codebook, text, total
    restarted: int  # codes moved by dead-code restarts after the initial one


def train_lqc(
    features: torch.Tensor,
    texts: torch.Tensor | None,
    config: LqcTrainConfig,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> TrainResult:
    """Train a compressor on a feature corpus.

    features: [N, F] float32 (normalised here). texts: [T, F] text embeddings for Eq. 5, or None.
    Runs on ``features.device``; ``progress(step, losses)`` is called every 100 steps.
    ``extra_loss(x, x_hat)``: a scalar added to Eq. 6's total (recorded as ``extra``), for training
    objectives beyond the paper's (``langscene_core.training``); x [B, F] the batch, x_hat [B, F] decoded.
    """
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] != config.feature_dim:
        raise ValueError(f"features must be [N, {config.feature_dim}] with N >= 1, got {tuple(features.shape)}")
    if texts is not None and (texts.ndim != 2 or texts.shape[1] != config.feature_dim):
        raise ValueError(f"texts must be [T, {config.feature_dim}], got {tuple(texts.shape)}")
    if config.steps < 1 or config.batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {config.steps}, {config.batch_size}")
    device = features.device
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    model = LQC(config).to(device)
    features = F.normalize(features.float(), dim=-1)
    texts = F.normalize(texts.float().to(device), dim=-1) if texts is not None else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    usage = torch.zeros(config.codebook_size if config.quantized else 0, device=device)
    history: list[dict[str, float]] = []
    restarted = 0
    for step in range(config.steps):
        batch = features[torch.randint(0, features.shape[0], (config.batch_size,), generator=generator, device=device)]
        periodic = config.restart_every > 0 and step % config.restart_every == 0
        if config.quantized and (step == 0 or periodic):
            with torch.no_grad():
                moved = restart_dead_codes(model, usage, model.encoder(batch), generator)
            restarted += moved if step > 0 else 0
            usage.zero_()
        losses = lqc_losses(model, batch, texts)
        if extra_loss is not None:
            losses["extra"] = extra_loss(batch, losses["x_hat"])
            losses["total"] = losses["total"] + losses["extra"]
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        if config.quantized:
            usage += torch.bincount(losses["codes"], minlength=config.codebook_size)
        record = {k: float(v.detach()) for k, v in losses.items() if k not in ("codes", "x_hat")}
        history.append(record)
        if progress is not None and step % 100 == 0:
            progress(step, record)
    return TrainResult(model.eval(), history, restarted)


@torch.no_grad()
def reconstruction_metrics(model: LQC, features: torch.Tensor, texts: torch.Tensor) -> dict[str, float]:
    """How well ``model`` keeps features: mean cosine between x and decode(encode(x)), and the fraction of
    features whose best-matching text (argmax over texts [T, F]) is unchanged by the round trip."""
    x = F.normalize(features.float(), dim=-1)
    x_hat = model.decode(model.encode(x))
    texts = F.normalize(texts.float(), dim=-1)
    same = (x @ texts.T).argmax(dim=1) == (x_hat @ texts.T).argmax(dim=1)
    return {"mean_cosine": float((x * x_hat).sum(dim=1).mean()), "text_match": float(same.float().mean())}


@dataclass(frozen=True)
class NameRoundTrip:
    """Per name, how often a feature of that name keeps it through the round trip.

    count: [T] int64 features per name. clip, round_trip: [T] float32 fraction of them whose right name
    has relevancy > ``threshold`` on the original feature x and on decode(encode(x)); NaN where count is 0.
    """

    count: torch.Tensor
    clip: torch.Tensor
    round_trip: torch.Tensor

    def overall(self) -> tuple[float, float]:
        """(clip, round trip) fraction over all features, names weighted by their counts."""
        seen = self.count > 0
        weights = self.count[seen].float() / self.count[seen].sum()
        return float((self.clip[seen] * weights).sum()), float((self.round_trip[seen] * weights).sum())


@torch.no_grad()
def name_round_trip(
    model: LQC,
    features: torch.Tensor,
    labels: torch.Tensor,
    names: torch.Tensor,
    negatives: torch.Tensor,
    threshold: float = 0.5,
) -> NameRoundTrip:
    """Name-by-name round-trip check: the LERF relevancy (``langscene_core.language.relevancy``, the query
    path's formula) of each feature's right name against the negatives, before and after
    decode(encode(x)). Mean cosine hides a name whose features all decode near another name's; this
    does not.

    features: [N, F]; labels: [N] int64 row of ``names`` each feature shows; names: [T, F] and
    negatives: [K, F] text embeddings.
    """
    if labels.shape != (features.shape[0],) or (len(labels) and (labels.min() < 0 or labels.max() >= len(names))):
        raise ValueError(
            f"labels must be [N={features.shape[0]}] rows of names [T={len(names)}], got {tuple(labels.shape)}"
        )
    decoded = model.decode(model.encode(features))
    count = torch.bincount(labels, minlength=len(names))
    clip = torch.full((len(names),), float("nan"))
    round_trip = clip.clone()
    for t in torch.nonzero(count).flatten().tolist():
        rows = labels == t
        clip[t] = (relevancy(features[rows], names[t], negatives) > threshold).float().mean()
        round_trip[t] = (relevancy(decoded[rows], names[t], negatives) > threshold).float().mean()
    return NameRoundTrip(count, clip, round_trip)


def save_lqc(model: LQC, path: str | Path) -> Path:
    """Write ``model`` as one safetensors file with its config in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": FORMAT, "config": json.dumps(to_dict(model.config))})
    return path


def load_lqc(path: str | Path, device: str | torch.device = "cpu") -> LQC:
    """Load a compressor from a file written by :func:`save_lqc`, or ``bundled:NAME``
    (``langscene_core/assets/NAME/lqc.safetensors``). Returns the model in eval mode."""
    spec = str(path)
    path = resolve(spec) / CHECKPOINT_FILE if spec.startswith(BUNDLED_PREFIX) else resolve(spec)
    if not path.is_file():
        raise ModelNotFoundError(f"LQC checkpoint {spec!r} not found (looked for {path})")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ModelError(f"{path} is not a langscene LQC checkpoint (format {metadata.get('format')!r})")
        config = from_dict(LqcTrainConfig, json.loads(metadata["config"]))
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    model = LQC(config)
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()
