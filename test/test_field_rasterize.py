"""CPU rasteriser vs the brute-force per-pixel oracle, render modes, SH colours, errors."""

import math

import pytest
import torch

from langscene_core.field.rasterize import rasterize
from langscene_core.field.reference import rasterize_brute_force


def _random_gaussians(n, seed=0, channels=5):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([2.4, 1.8, 1.0]) + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.06 + 0.005
    opacities = torch.rand(n, generator=g) * 0.95 + 0.04
    features = torch.rand(n, channels, generator=g)
    return means, quats, scales, opacities, features


def _cameras(width, height):
    """Two cameras: identity and one shifted/rotated; pinhole with 60 degree hfov."""
    f = 0.5 * width / math.tan(math.radians(30))
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2 + 3.0], [0, 0, 1.0]])
    second = torch.eye(4)
    angle = math.radians(10)
    second[:3, :3] = torch.tensor(
        [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    )
    second[:3, 3] = torch.tensor([0.2, -0.1, 0.3])
    return torch.stack([torch.eye(4), second]), torch.stack([K, K])


def test_matches_brute_force_values_and_gradients():
    width, height = 50, 38  # not a multiple of any tile size: edge tiles are partial
    params = _random_gaussians(1500)
    params[3][::10] = 1.0  # opaque ones: their alpha is clamped (0.999) near their centres
    viewmats, Ks = _cameras(width, height)
    weights = torch.rand(2, height, width, 6, generator=torch.Generator().manual_seed(1))

    def run(fn):
        leaves = [p.clone().requires_grad_(True) for p in params]
        colors, alphas = fn(*leaves, viewmats, Ks, width, height)[:2]
        (torch.cat([colors, alphas], -1) * weights).sum().backward()
        return colors.detach(), alphas.detach(), [leaf.grad for leaf in leaves]

    colors, alphas, grads = run(rasterize)
    ref_colors, ref_alphas, ref_grads = run(rasterize_brute_force)
    assert alphas.max() > 0.9 and (alphas < 0.05).any()  # the scene has opaque and empty pixels
    assert (colors - ref_colors).abs().max() <= 1e-4
    assert (alphas - ref_alphas).abs().max() <= 1e-4
    for name, grad, ref in zip(["means", "quats", "scales", "opacities", "features"], grads, ref_grads):
        scale = ref.abs().max()
        assert scale > 0, name
        assert (grad - ref).abs().max() <= 1e-4 * scale, name


def test_result_does_not_depend_on_tile_size():
    params = _random_gaussians(800, seed=3)
    viewmats, Ks = _cameras(40, 30)
    a = rasterize(*params, viewmats, Ks, 40, 30, tile_size=16)[0]
    b = rasterize(*params, viewmats, Ks, 40, 30, tile_size=3)[0]
    assert (a - b).abs().max() <= 1e-5


def test_expected_depth_background_and_meta():
    """One big opaque flat Gaussian at z=2: ED = 2 where it covers, background elsewhere."""
    viewmats, Ks = _cameras(32, 24)
    half_pixel = 0.5 * 2.0 / Ks[0, 0, 0].item()  # puts the mean on the centre of pixel (row 15, col 16)
    means = torch.tensor([[half_pixel, half_pixel, 2.0]], requires_grad=True)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    scales = torch.tensor([[0.3, 0.3, 0.01]])
    opacities = torch.tensor([1.0])
    features = torch.tensor([[1.0, 0.0, 0.0]])
    bg = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    colors, alphas, meta = rasterize(
        means,
        quats,
        scales,
        opacities,
        features,
        viewmats[:1],
        Ks[:1],
        32,
        24,
        backgrounds=bg[:1],
        render_mode="RGB+ED",
    )
    assert colors.shape == (1, 24, 32, 4) and alphas.shape == (1, 24, 32, 1)
    centre = colors[0, 15, 16]
    assert torch.allclose(centre[:3], torch.tensor([0.999, 0.0, 0.001]), atol=1e-5)  # alpha clamped at 0.999
    assert abs(centre[3].item() - 2.0) < 1e-4
    assert torch.allclose(colors[0, 0, 0, :3], bg[0], atol=1e-6)  # corner: nothing drawn
    colors[..., 3].sum().backward()
    assert meta["means2d"].grad is not None and meta["radii"].shape == (1, 1, 2)
    assert meta["radii"][0, 0].min() > 0


def test_sh_degree_zero_colour():
    means = torch.tensor([[0.0, 0.0, 2.0]])
    sh = torch.full((1, 1, 3), 0.5)
    viewmats, Ks = _cameras(16, 16)
    colors, _, _ = rasterize(
        means,
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.full((1, 3), 2.0),
        torch.tensor([1.0]),
        sh,
        viewmats[:1],
        Ks[:1],
        16,
        16,
        sh_degree=0,
    )
    expected = 0.999 * (0.5 * 0.28209479177387814 + 0.5)  # alpha clamped at 0.999
    assert abs(colors[0, 11, 8, 0].item() - expected) < 2e-3


def test_bad_shapes_raise():
    params = _random_gaussians(10)
    viewmats, Ks = _cameras(16, 16)
    with pytest.raises(ValueError, match="features"):
        rasterize(*params[:4], params[4][:5], viewmats, Ks, 16, 16)
    with pytest.raises(ValueError, match="render_mode"):
        rasterize(*params, viewmats, Ks, 16, 16, render_mode="XYZ")
