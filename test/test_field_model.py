"""Gaussian model initialisation, surface normals, losses and PLY save/load."""

import json

import numpy as np
import open3d as o3d
import pytest
import torch

from langscene_core.field import losses
from langscene_core.field.gaussians import Gaussians, knn, quat_from_z_axis
from langscene_core.field.ply import load_ply, read_sidecar, save_ply, sidecar_path
from langscene_core.field.render import compositing_operator, render, render_latents
from langscene_core.field.views import TrainView
from langscene_core.geometry.camera import Intrinsics, look_at


def _plane_views():
    """Two views looking straight down at the grey plane z = 0 from heights 1.0 and 0.9."""
    intr = Intrinsics.from_hfov(32, 24, 60.0)
    views = []
    for eye in ([0.0, 0.0, 1.0], [0.1, 0.05, 0.9]):
        pose = look_at(np.array(eye), np.array([eye[0], eye[1], 0.0]), up=np.array([0.0, 1.0, 0.0]))
        views.append(
            TrainView(
                rgb=np.full((24, 32, 3), 0.4, np.float32),
                intrinsics=intr,
                cam_to_world=pose,
                depth=np.full((24, 32), eye[2], np.float32),
                normal=np.broadcast_to(np.array([0.0, 0.0, 1.0], np.float32), (24, 32, 3)).copy(),
            )
        )
    return views


def test_quat_from_z_axis_maps_z_onto_normal():
    normals = torch.nn.functional.normalize(torch.randn(100, 3), dim=-1)
    g = Gaussians.from_points(torch.randn(100, 3).numpy(), np.full((100, 3), 0.5), normals.numpy())
    assert torch.allclose(g.quats, quat_from_z_axis(normals), atol=1e-6)
    cos = (g.surface_normals() * normals).sum(-1).abs()
    assert cos.min() > 1 - 1e-5  # the shortest axis is the normal (up to sign)


def test_rgbd_init_reproduces_the_view():
    views = _plane_views()
    g = Gaussians.from_rgbd(views[:1], stride=1)
    assert len(g) == 24 * 32
    assert torch.allclose(g.base_colors(), torch.full((len(g), 3), 0.4), atol=1e-5)
    assert torch.allclose(g.means[:, 2], torch.zeros(len(g)), atol=1e-5)  # the plane z = 0
    out = render(g, views[0].intrinsics, views[0].cam_to_world)
    inner = (slice(4, -4), slice(4, -4))
    # half-transparent surfels overlapping: mostly covered, colour 0.4 weighted by alpha, normal up
    assert out.alpha[inner].min() > 0.8
    assert torch.allclose(out.rgb[inner] / out.alpha[inner][..., None], torch.tensor(0.4), atol=1e-3)
    assert torch.allclose(out.depth[inner], torch.tensor(1.0), atol=1e-3)
    assert (out.normal[inner][..., 2] / out.alpha[inner]).min() > 0.999


def test_knn_finds_grid_neighbours():
    grid = torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij"), -1).reshape(-1, 2)
    points = torch.cat([grid, torch.zeros(25, 1)], 1)
    idx, dist = knn(points, 4)
    assert torch.allclose(dist[12], torch.ones(4))  # centre point: 4 neighbours at distance 1
    assert set(idx[12].tolist()) == {7, 11, 13, 17}
    with pytest.raises(ValueError, match="nearest"):
        knn(points[:3], 4)


def test_normal_loss_progressive_filter():
    prior = torch.zeros(2, 2, 3)
    prior[..., 2] = 1.0
    rendered = prior.clone()
    rendered[0, 0] = torch.tensor([1.0, 0.0, 0.0])  # 90 degrees off
    before = losses.normal_loss(rendered, prior, step=0, warmup_steps=10, tau_thr_deg=30.0)
    after = losses.normal_loss(rendered, prior, step=10, warmup_steps=10, tau_thr_deg=30.0)
    assert before.item() == pytest.approx(2.0 / 4)  # L1 of (1, 0, -1) averaged over 4 pixels
    assert after.item() == pytest.approx(0.0)  # the 90-degree pixel is filtered out
    assert losses.normal_angle(rendered, prior)[0, 0].item() == pytest.approx(np.pi / 2)


def test_s2d_and_s3d_are_zero_only_when_consistent():
    ids = torch.tensor([[0, 0, 1], [1, -1, 1]])
    same = torch.tensor([[[1.0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 0], [9, 9, 9], [0, 1, 0]]])
    assert losses.s2d_loss(same, ids).item() == pytest.approx(0.0)
    differ = same.clone()
    differ[0, 1] = torch.tensor([0.0, 0.0, 1.0])
    assert losses.s2d_loss(differ, ids).item() > 0.1
    lat = torch.tensor([[1.0, 2, 3], [1, 2, 3], [3, 2, 1]])
    nbrs = torch.tensor([[1], [0], [0]])
    assert losses.s3d_loss(lat[:2], nbrs[:2]).item() == pytest.approx(0.0, abs=1e-7)
    assert losses.s3d_loss(lat, nbrs).item() > 0.1


def test_s3d_over_levels_is_the_mean_of_the_levels():
    g = torch.Generator().manual_seed(0)
    latents, nbrs = torch.randn(50, 3, 3, generator=g), torch.randint(0, 50, (50, 5), generator=g)
    per_level = torch.stack([losses.s3d_loss(latents[:, level], nbrs) for level in range(3)]).mean()
    assert losses.s3d_loss(latents, nbrs).item() == pytest.approx(per_level.item(), rel=1e-6)
    assert per_level.item() > 0.1


def test_flatten_and_rgb_losses():
    assert losses.flatten_loss(torch.log(torch.tensor([[0.1, 0.02, 0.3]]))).item() == pytest.approx(0.02)
    a, b = torch.zeros(2, 2, 3), torch.full((2, 2, 3), 0.5)
    assert losses.rgb_loss(a, b, 0.5).item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.25)


def test_save_load_render_identical_and_open3d_reads(tmp_path):
    views = _plane_views()
    g = Gaussians.from_rgbd(views, stride=3, sh_degree=2)
    with torch.no_grad():
        g.params["latents"].normal_()
        g.params["shN"].normal_(std=0.1)
        g.params["quats"].normal_()
    path = save_ply(g, tmp_path / "scene.ply", {"scene_frame": "map"})
    loaded = load_ply(path)
    assert read_sidecar(path)["metadata"] == {"scene_frame": "map"} and loaded.sh_degree == 2 and len(loaded) == len(g)
    for key, value in g.state().items():
        assert torch.equal(value, loaded.state()[key]), key
    for view in views:
        a = render(g, view.intrinsics, view.cam_to_world, latents=True)
        b = render(loaded, view.intrinsics, view.cam_to_world, latents=True)
        for name in ("rgb", "normal", "depth", "alpha", "latents"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    cloud = o3d.io.read_point_cloud(str(path))
    assert len(cloud.points) == len(g) and cloud.has_normals()
    assert np.allclose(np.asarray(cloud.points), g.means.detach().numpy(), atol=1e-6)
    splats = o3d.t.io.read_point_cloud(str(path))  # open3d's 3DGS reader groups f_dc, rot, scale, ...
    assert np.allclose(splats.point["rot"].numpy(), g.params["quats"].detach().numpy())
    assert np.allclose(splats.point["f_dc"].numpy(), g.params["sh0"][:, 0].detach().numpy())
    assert json.loads(sidecar_path(path).read_text())["levels"] == ["s", "m", "l"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_load_rejects_mismatched_sidecar(tmp_path):
    g = Gaussians.from_points(np.random.rand(10, 3), np.random.rand(10, 3))
    path = save_ply(g, tmp_path / "a.ply")
    side = json.loads(sidecar_path(path).read_text())
    side["count"] = 11
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(ValueError, match="sidecar says"):
        load_ply(path)


def test_compositing_operator_renders_latents_like_render():
    """Frozen geometry: the sparse compositing map gives the rasteriser's latent maps and gradients."""
    views = _plane_views()
    g = Gaussians.from_rgbd(views[:1], stride=2)
    with torch.no_grad():
        g.params["latents"].copy_(torch.randn(len(g), g.levels, 3, generator=torch.Generator().manual_seed(0)))
        g.params["means"].add_(0.01 * torch.randn(len(g), 3, generator=torch.Generator().manual_seed(1)))
    view = views[1]
    weights = torch.rand(g.levels, 24, 32, 3, generator=torch.Generator().manual_seed(2))
    ref = render(g, view.intrinsics, view.cam_to_world, rgb=False, normal=False, latents=True).latents
    (ref * weights).sum().backward()
    ref_grad, g.params["latents"].grad = g.params["latents"].grad.clone(), None
    operator = compositing_operator(g, view.intrinsics, view.cam_to_world)
    out = render_latents(operator, g, view.intrinsics)
    (out * weights).sum().backward()
    assert ref.abs().max() > 0.5 and operator.nbytes > 0
    assert (out - ref).abs().max() <= 1e-5
    assert (g.params["latents"].grad - ref_grad).abs().max() <= 1e-5 * ref_grad.abs().max()
