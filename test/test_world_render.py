"""Ray-cast renderer: depth, normals and ids agree with the true meshes; trajectories see the objects."""

import numpy as np
import open3d as o3d
import pytest

from langscene_core.geometry.camera import look_at, project_points, unproject_depth
from langscene_core.sim import (
    CameraSpec,
    build_world,
    capture_poses,
    eval_poses,
    intrinsics_of,
    parse_spec,
    random_spec,
    render,
)
from langscene_core.sim.spec import COLORS

SPEC = parse_spec(
    {
        "seed": 3,
        "objects": [
            {"name": "red mug", "shape": "mug", "color": "red", "size": 0.10, "position": [0.10, -0.05], "yaw": 30},
            {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.08, "position": [-0.15, 0.10]},
            {"name": "green bowl", "shape": "bowl", "color": "green", "size": 0.14, "position": [-0.10, -0.15]},
            {"name": "yellow torus", "shape": "torus", "color": "yellow", "size": 0.10, "position": [0.20, 0.15]},
            {"name": "purple cone", "shape": "cone", "color": "purple", "size": 0.10, "position": [0.00, 0.12]},
            {
                "name": "orange box",
                "shape": "box",
                "color": "orange",
                "size": 0.10,
                "position": [0.25, -0.15],
                "yaw": 20,
            },
        ],
    }
)


@pytest.fixture(scope="module")
def world():
    return build_world(SPEC)


@pytest.fixture(scope="module")
def frames(world):
    return render(world, intrinsics_of(SPEC.camera), capture_poses(SPEC.camera)[::3])


def _mesh_scene(mesh):
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    return scene


def test_unprojected_depth_lies_on_the_mesh_of_its_instance_id(world, frames):
    per_mesh = [_mesh_scene(m) for m in world.meshes]
    for frame in frames:
        points = unproject_depth(frame.depth, frame.intrinsics, frame.cam_to_world)
        hit = frame.depth > 0
        assert hit.mean() > 0.5
        assert np.array_equal(hit, frame.ids >= 0)
        for instance_id in np.unique(frame.ids[hit]):
            pts = points[frame.ids == instance_id].astype(np.float32)
            distance = per_mesh[instance_id].compute_distance(o3d.core.Tensor(pts)).numpy()
            assert distance.max() < 2e-4, (frame.name, instance_id, distance.max())  # sub-mm, on its own mesh


def test_normals_agree_with_mesh_and_analytic_normals(world, frames):
    ball = SPEC.objects[1]
    ball_centre = np.array([*ball.position, ball.size / 2])
    for frame in frames:
        points = unproject_depth(frame.depth, frame.intrinsics, frame.cam_to_world)
        hit = frame.ids >= 0
        n = frame.normals[hit].astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
        closest = world.raycaster.compute_closest_points(o3d.core.Tensor(points[hit].astype(np.float32)))
        mesh_normals = closest["primitive_normals"].numpy()
        assert np.percentile(np.abs(np.sum(n * mesh_normals, axis=1)), 1) > 0.999
        to_camera = frame.cam_to_world[:3, 3] - points[hit]
        assert np.all(np.sum(n * to_camera, axis=1) > 0)  # facing the camera
        table = (frame.ids == 0) & (points[..., 2] > -1e-4)  # the top face, not the slab's sides
        np.testing.assert_allclose(
            frame.normals[table], np.broadcast_to([0, 0, 1], frame.normals[table].shape), atol=1e-6
        )
        on_ball = frame.ids == 2
        radial = points[on_ball] - ball_centre
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        assert np.min(np.sum(frame.normals[on_ball] * radial, axis=1)) > 0.97  # faceted sphere


def test_ids_match_projected_object_centres(world, frames):
    for frame in frames:
        for k, obj in enumerate(SPEC.objects, start=1):
            if obj.shape not in ("ball", "cone", "box"):  # convex: an inner point projects onto the object
                continue
            inner_point = np.array([[*obj.position, world.meshes[k].get_max_bound()[2] / 2]])
            uv, z = project_points(inner_point, frame.intrinsics, frame.cam_to_world)
            u, v = np.floor(uv[0]).astype(int)
            assert frame.ids[v, u] == k, (frame.name, obj.name)


def test_rgb_shows_the_object_colours_and_is_deterministic(world, frames):
    again = render(world, frames[0].intrinsics, frames[0].cam_to_world)[0]
    assert np.array_equal(again.rgb, frames[0].rgb)
    frame = frames[0]
    for k, obj in enumerate(SPEC.objects, start=1):
        pixels = frame.rgb[frame.ids == k].astype(float)
        if len(pixels) < 20:
            continue
        channel = int(np.argmax(COLORS[obj.color]))
        assert np.median(pixels[:, channel]) > np.median(np.delete(pixels, channel, axis=1)), obj.name
    table = frame.rgb[frame.ids == 0].astype(float)
    assert 2.0 < table.std() < 40.0  # texture noise and shading, but still one grey table
    background = frame.rgb[frame.ids == -1]
    assert len(background) > 0 and np.all(background == background[0])  # flat sky, no noise


def test_shadow_darkens_the_table_behind_an_object(world):
    """The light comes from +x -y above; the table just opposite (towards -x +y) of the ball is in shadow."""
    ball = SPEC.objects[1]
    centre = np.array([*ball.position, 0.0])
    intrinsics = intrinsics_of(SPEC.camera)
    pose = look_at(centre + [-0.2, 0.3, 0.6], centre)  # from the shadow side, above
    frame = render(world, intrinsics, pose)[0]
    away_from_light = np.array([-0.6, 0.8, 0.0])  # horizontal part of -LIGHT_DIRECTION
    lit_point = (centre + 0.06 * np.array([0.8, 0.6, 0.0]))[None]
    shade_point = (centre + 0.052 * away_from_light)[None]  # ball radius 0.04, shadow reaches 0.065
    (lit_uv, _), (shade_uv, _) = (project_points(p, intrinsics, pose) for p in (lit_point, shade_point))
    lit = frame.rgb[int(lit_uv[0, 1]), int(lit_uv[0, 0])].astype(float).mean()
    shade = frame.rgb[int(shade_uv[0, 1]), int(shade_uv[0, 0])].astype(float).mean()
    assert frame.ids[int(shade_uv[0, 1]), int(shade_uv[0, 0])] == 0
    assert shade < 0.8 * lit


@pytest.mark.parametrize("trajectory", ["orbit", "arc", "two_view"])
def test_trajectories_look_at_the_table_and_eval_views_are_off_them(trajectory):
    camera = CameraSpec(trajectory=trajectory, views=2 if trajectory == "two_view" else 12)
    poses = capture_poses(camera)
    assert poses.shape == (camera.views, 4, 4)
    for pose in poses:
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
        assert pose[2, 2] < 0 and pose[2, 1] < 0  # looks down, image up is world up
        assert abs(np.linalg.norm(pose[:3, 3] - [0, 0, 0.03]) - camera.radius) < 1e-9
    evals = eval_poses(camera, 4)
    gaps = np.linalg.norm(evals[:, None, :3, 3] - poses[None, :, :3, 3], axis=-1)
    assert gaps.min() > 0.05


@pytest.mark.parametrize("seed", range(8))
def test_two_view_capture_sees_every_object(seed):
    spec = random_spec(seed, count=6, camera=CameraSpec(trajectory="two_view", views=2))
    world = build_world(spec)
    frames = render(world, intrinsics_of(spec.camera), capture_poses(spec.camera))
    for k, obj in enumerate(spec.objects, start=1):
        pixels = [int((f.ids == k).sum()) for f in frames]
        assert max(pixels) >= 20, (obj.name, pixels)
