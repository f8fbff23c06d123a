"""Training of the language surface field (paper section 3.4).

Stage A (``FieldConfig.geometry_steps``): colour (L1/L2 mix), depth L1 where the views have depth,
flattening (smallest scale) and the progressive normal loss of Eq. 7-8; densification and pruning by
``gsplat.strategy.DefaultStrategy``. Stage B (``FieldConfig.language_steps``): geometry frozen, only the
per-level latents learn: L2 to the LQC latent maps, L_s2d inside each mask and L_s3d over each
Gaussian's k nearest neighbours (Eq. 9). With the geometry frozen, a view's latent map is a fixed linear
function of the latents: on the CPU, stage B builds each view's sparse compositing matrix once
(``FieldConfig.language_cache_mb`` bounds their memory) instead of rasterising every step.

Public API (the reconstruction job calls ``train_field``)::

    gaussians = train_field(views, config.field, init_points=None, progress=lambda f, msg: ...)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from gsplat.strategy import DefaultStrategy

from langscene_core.config import FieldConfig
from langscene_core.field import losses
from langscene_core.field.composite import CompositingMatrix
from langscene_core.field.gaussians import Gaussians, knn
from langscene_core.field.render import compositing_operator, render, render_latents
from langscene_core.field.views import TrainView

# Steps between progress reports. A report is also where a cancel takes effect (the engine raises
# Cancelled from it), so this bounds how long a cancel or a node's shutdown waits: 10 CPU steps are a
# few seconds, where 50 were up to half a minute; loss.item() every 10 steps costs little on a GPU.
PROGRESS_EVERY = 10

ProgressFn = Callable[[float, str], None]  # (fraction done 0..1, message)


def train_field(
    views: Sequence[TrainView],
    config: FieldConfig,
    init_points: np.ndarray | None = None,
    init_colors: np.ndarray | None = None,
    init_normals: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    device: str | torch.device = "cpu",
) -> Gaussians:
    """Build a language-embedded Gaussian field from posed views.

    views: training frames (see TrainView); stage B runs on the views that carry ``latents``.
    init_points: optional [N, 3] world-frame points (e.g. SfM) with init_colors [N, 3] 0..1 (grey when
    None) and optional init_normals [N, 3]; without them the views' depth maps are unprojected.
    progress: called now and then with (fraction 0..1, message).
    Returns the trained Gaussians on ``device``.
    """
    if not views:
        raise ValueError("train_field needs at least one view")
    torch.manual_seed(config.seed)
    if init_points is not None:
        colors = init_colors if init_colors is not None else np.full_like(init_points, 0.5)
        gaussians = Gaussians.from_points(init_points, colors, init_normals, sh_degree=config.sh_degree)
    else:
        gaussians = Gaussians.from_rgbd(
            views,
            stride=config.init_stride,
            max_points=config.init_max_points,
            sh_degree=config.sh_degree,
            seed=config.seed,
        )
    gaussians = gaussians.to(device)
    total = max(config.geometry_steps + config.language_steps, 1)
    train_geometry(gaussians, views, config, _scaled(progress, 0.0, config.geometry_steps / total))
    train_language(gaussians, views, config, _scaled(progress, config.geometry_steps / total, 1.0))
    return gaussians


def _scaled(progress: ProgressFn | None, start: float, end: float) -> ProgressFn | None:
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


def scene_scale(views: Sequence[TrainView], gaussians: Gaussians) -> float:
    """Scene radius (3DGS convention): 1.1 x the largest camera distance from the cameras' centroid,
    or the point cloud's radius when the cameras do not spread."""
    centres = np.stack([np.asarray(v.cam_to_world)[:3, 3] for v in views])
    radius = float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) * 1.1
    if radius < 1e-3:
        means = gaussians.means.detach()
        radius = float((means - means.mean(0)).norm(dim=-1).max())
    return max(radius, 1e-3)


def _views_order(n_views: int, steps: int, generator: torch.Generator) -> list[int]:
    """View index per step: shuffled epochs."""
    order: list[int] = []
    while len(order) < steps:
        order.extend(torch.randperm(n_views, generator=generator).tolist())
    return order[:steps]


def _tensor(array: np.ndarray | None, device, dtype=torch.float32) -> torch.Tensor | None:
    return None if array is None else torch.as_tensor(np.asarray(array), dtype=dtype, device=device)


def train_geometry(
    gaussians: Gaussians, views: Sequence[TrainView], config: FieldConfig, progress: ProgressFn | None = None
) -> None:
    """Stage A in place: colour, depth, flattening and progressive normal losses, with densification."""
    steps = config.geometry_steps
    if steps <= 0:
        return
    device = gaussians.means.device
    scale = scene_scale(views, gaussians)
    rates = {
        "means": config.lr_means * scale,
        "quats": config.lr_quats,
        "scales": config.lr_scales,
        "opacities": config.lr_opacities,
        "sh0": config.lr_sh0,
        "shN": config.lr_shN,
        "latents": 0.0,
    }
    params = gaussians.params
    optimizers = {k: torch.optim.Adam([params[k]], lr=lr, eps=1e-15) for k, lr in rates.items()}
    strategy = DefaultStrategy(
        prune_opa=config.prune_opacity,
        grow_grad2d=config.densify_grad_threshold,
        refine_start_iter=config.densify_start,
        refine_stop_iter=config.densify_stop,
        refine_every=config.densify_every,
        reset_every=10**9,
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=scale)
    use_normals = config.normal_weight > 0 and any(v.normal is not None for v in views)
    order = _views_order(len(views), steps, torch.Generator().manual_seed(config.seed))
    for step, index in enumerate(order):
        view = views[index]
        out = render(
            gaussians, view.intrinsics, view.cam_to_world, rgb=True, normal=use_normals and view.normal is not None
        )
        strategy.step_pre_backward(params, optimizers, state, step, out.meta)
        loss = losses.rgb_loss(out.rgb, _tensor(view.rgb, device), config.rgb_l2_weight)
        if view.depth is not None and config.depth_weight > 0:
            loss = loss + config.depth_weight * losses.depth_loss(out.depth, _tensor(view.depth, device))
        if config.flatten_weight > 0:
            loss = loss + config.flatten_weight * losses.flatten_loss(params["scales"])
        if out.normal is not None:
            loss = loss + config.normal_weight * losses.normal_loss(
                out.normal, _tensor(view.normal, device), step, config.normal_warmup_steps, config.normal_tau_thr_deg
            )
        loss = view.weight * loss
        loss.backward()
        for optimizer in optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if len(gaussians) < config.max_gaussians:
            strategy.step_post_backward(params, optimizers, state, step, out.meta, packed=False)
        if progress is not None and (step % PROGRESS_EVERY == 0 or step == steps - 1):
            progress(
                (step + 1) / steps,
                f"geometry step {step + 1}/{steps}: loss {loss.item():.4f}, {len(gaussians)} Gaussians",
            )


def train_language(
    gaussians: Gaussians, views: Sequence[TrainView], config: FieldConfig, progress: ProgressFn | None = None
) -> None:
    """Stage B in place: geometry frozen; latents fit the views' latent maps with L_s2d and L_s3d."""
    lang_views = [v for v in views if v.latents is not None]
    steps = config.language_steps
    if steps <= 0 or not lang_views:
        return
    if any(v.latents.shape[0] != gaussians.levels for v in lang_views):
        raise ValueError(f"views' latents must have {gaussians.levels} levels")
    device = gaussians.means.device
    params = gaussians.params
    frozen = {k: p.requires_grad for k, p in params.items()}
    for key, param in params.items():
        param.requires_grad_(key == "latents")
    neighbours = knn(gaussians.means.detach(), config.s3d_k)[0]
    operators = _frozen_operators(gaussians, lang_views, config.language_cache_mb)
    optimizer = torch.optim.Adam([params["latents"]], lr=config.lr_latents)
    order = _views_order(len(lang_views), steps, torch.Generator().manual_seed(config.seed + 1))
    try:
        for step, index in enumerate(order):
            view = lang_views[index]
            if operators[index] is not None:
                rendered = render_latents(operators[index], gaussians, view.intrinsics)
            else:
                rendered = render(
                    gaussians, view.intrinsics, view.cam_to_world, rgb=False, normal=False, latents=True
                ).latents
            target = _tensor(view.latents, device)
            masks = _tensor(view.masks, device, torch.long)
            valid = None if masks is None else masks >= 0
            loss = config.latent_weight * losses.latent_loss(rendered, target, valid)
            if masks is not None and config.s2d_weight > 0:
                loss = (
                    loss
                    + config.s2d_weight
                    * torch.stack(
                        [losses.s2d_loss(rendered[level], masks[level]) for level in range(len(masks))]
                    ).mean()
                )
            if config.s3d_weight > 0:
                loss = loss + config.s3d_weight * losses.s3d_loss(params["latents"], neighbours)
            loss = view.weight * loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if progress is not None and (step % PROGRESS_EVERY == 0 or step == steps - 1):
                progress((step + 1) / steps, f"language step {step + 1}/{steps}: loss {loss.item():.4f}")
    finally:
        for key, param in params.items():
            param.requires_grad_(frozen[key])


def _frozen_operators(
    gaussians: Gaussians, views: Sequence[TrainView], budget_mb: float
) -> list[CompositingMatrix | None]:
    """Per view, its compositing for the frozen geometry of stage B (``compositing_operator``, built up
    front: about one rasterisation each) until the matrices hold ``budget_mb`` (0 disables the cache);
    None for the views past that (they rasterise every step) and for CUDA Gaussians (gsplat renders)."""
    operators: list[CompositingMatrix | None] = []
    used = 0.0
    for view in views:
        operator = None
        if not gaussians.means.is_cuda and used < budget_mb:
            operator = compositing_operator(gaussians, view.intrinsics, view.cam_to_world)
            used += operator.nbytes / 2**20
        operators.append(operator)
    return operators
