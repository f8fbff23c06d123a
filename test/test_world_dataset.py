"""Dataset directory round trip and LERF-OVS labels of the eval views."""

import json

import numpy as np
import open3d as o3d
import pytest

from langscene_core.geometry.camera import project_points
from langscene_core.sim import build_world, load_dataset, random_spec, render_dataset, write_dataset
from langscene_core.sim.labels import polygon_mask


@pytest.fixture(scope="module")
def world():
    return build_world(random_spec(5, count=6, eval_views=3))


@pytest.fixture(scope="module")
def dataset(world):
    return render_dataset(world)


def test_write_and_load_round_trip(dataset, tmp_path):
    out = write_dataset(dataset, tmp_path / "ds", with_contact_sheet=True)
    for name in (
        "spec.json",
        "cameras.json",
        "contact_sheet.png",
        "images/capture_0000.png",
        "ids/eval_0002.png",
        "depth/capture_0023.npy",
        "normals/eval_0000.npy",
        "labels/eval_0001.json",
    ):
        assert (out / name).is_file(), name
    loaded = load_dataset(out)
    assert loaded.spec == dataset.spec and loaded.intrinsics == dataset.intrinsics
    assert [f.name for f in loaded.capture] == [f.name for f in dataset.capture]
    assert [f.name for f in loaded.eval] == ["eval_0000", "eval_0001", "eval_0002"]
    for a, b in zip(loaded.capture + loaded.eval, dataset.capture + dataset.eval):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.ids, b.ids)
        assert np.array_equal(a.depth, b.depth) and np.array_equal(a.normals, b.normals)
        np.testing.assert_array_equal(a.cam_to_world, b.cam_to_world)
    assert loaded.labels == dataset.labels
    cameras = json.loads((out / "cameras.json").read_text())
    assert cameras["instances"]["0"] == "table" and cameras["instances"]["1"] == dataset.spec.objects[0].name


def test_load_rejects_a_directory_that_is_not_a_dataset(tmp_path):
    with pytest.raises(ValueError, match="not a langscene world dataset"):
        load_dataset(tmp_path)


def _visible_vertices(world, frame, instance_id):
    """World vertices of the instance's mesh that the frame's camera sees (first hit is that mesh, there)."""
    vertices = np.asarray(world.meshes[instance_id].vertices)
    eye = frame.cam_to_world[:3, 3]
    uv, z = project_points(vertices, frame.intrinsics, frame.cam_to_world)
    inside = (
        (z > 0)
        & (uv[:, 0] >= 0)
        & (uv[:, 0] < frame.intrinsics.width)
        & (uv[:, 1] >= 0)
        & (uv[:, 1] < frame.intrinsics.height)
    )
    rays = np.concatenate([np.broadcast_to(eye, vertices.shape), vertices - eye], axis=1).astype(np.float32)
    hit = world.raycaster.cast_rays(o3d.core.Tensor(rays))
    seen = (hit["t_hit"].numpy() > 1 - 1e-4) & (hit["geometry_ids"].numpy() == instance_id)
    return uv[inside & seen]


def test_labels_follow_the_lerf_ovs_layout_and_boxes_contain_projections(world, dataset):
    checked = 0
    for frame in dataset.eval:
        labels = dataset.labels[frame.name]
        assert labels["info"] == {"name": f"{frame.name}.png", "width": 160, "height": 120}
        for k, obj in enumerate(dataset.spec.objects, start=1):
            entries = [e for e in labels["objects"] if e["category"] == obj.name]
            uv = _visible_vertices(world, frame, k)
            if len(uv) == 0:
                continue
            assert entries, (frame.name, obj.name)
            boxes = np.array([e["bbox"] for e in entries])
            in_some_box = (
                (uv[:, None, 0] >= boxes[None, :, 0] - 1)
                & (uv[:, None, 0] <= boxes[None, :, 2] + 1)
                & (uv[:, None, 1] >= boxes[None, :, 1] - 1)
                & (uv[:, None, 1] <= boxes[None, :, 3] + 1)
            )
            assert in_some_box.any(axis=1).all(), (frame.name, obj.name)
            checked += 1
            truth = frame.ids == k
            drawn = np.zeros_like(truth)
            for e in entries:
                drawn |= polygon_mask(e["segmentation"], 120, 160)
            iou = (drawn & truth).sum() / (drawn | truth).sum()
            assert iou > 0.75, (frame.name, obj.name, iou)
            box_area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
            assert truth.sum() <= box_area
    assert checked >= 3 * len(dataset.spec.objects) - 2


def test_rendered_frame_converts_to_the_pipeline_frame(dataset):
    rendered = dataset.capture[0]
    frame = rendered.to_camera_frame(stamp=12.5)
    assert frame.stamp == 12.5 and frame.intrinsics == rendered.intrinsics
    assert np.array_equal(np.isnan(frame.depth), rendered.ids == -1)
    assert np.array_equal(frame.depth[rendered.ids >= 0], rendered.depth[rendered.ids >= 0])
