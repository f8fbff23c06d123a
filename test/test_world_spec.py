"""Scene spec validation, meshes and the random generator of the synthetic world."""

import copy

import numpy as np
import open3d as o3d
import pytest

from langscene_core.sim import SHAPES, SpecError, build_world, parse_spec, random_spec, spec_to_dict
from langscene_core.sim.meshes import object_mesh
from langscene_core.sim.spec import ObjectSpec

DESIGN_EXAMPLE = {
    "seed": 0,
    "table": {"size": [1.0, 0.7], "color": "gray"},
    "objects": [
        {"name": "red mug", "shape": "mug", "color": "red", "size": 0.10, "position": [0.10, -0.05], "yaw": 30}
    ],
    "camera": {
        "width": 160,
        "height": 120,
        "hfov_deg": 60,
        "trajectory": "orbit",
        "views": 24,
        "radius": 0.7,
        "elevation_deg": 35,
    },
    "eval_views": 4,
}


def test_design_example_parses_and_round_trips():
    spec = parse_spec(DESIGN_EXAMPLE)
    assert spec.objects[0].name == "red mug" and spec.objects[0].yaw == 30.0
    assert spec.camera.views == 24 and spec.table.size == (1.0, 0.7)
    assert parse_spec(spec_to_dict(spec)) == spec


def test_defaults_fill_everything_but_objects():
    spec = parse_spec({"objects": DESIGN_EXAMPLE["objects"]})
    assert spec == parse_spec(DESIGN_EXAMPLE)
    assert parse_spec({"objects": DESIGN_EXAMPLE["objects"], "camera": {"trajectory": "two_view"}}).camera.views == 2


def _with(path, value):
    data = copy.deepcopy(DESIGN_EXAMPLE)
    node = data
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, key",
    [
        (("objects",), _DELETE, "objects"),
        (("objects",), [], "objects"),
        (("colour",), 1, "colour"),
        (("objects", 0, "shape"), "pyramid", "objects[0].shape"),
        (("objects", 0, "color"), "teal", "objects[0].color"),
        (("objects", 0, "size"), -0.1, "objects[0].size"),
        (("objects", 0, "size"), "big", "objects[0].size"),
        (("objects", 0, "position"), [0.1], "objects[0].position"),
        (("objects", 0, "position"), [0.9, 0.0], "objects[0].position[0]"),
        (("objects", 0, "name"), _DELETE, "objects[0].name"),
        (("objects", 0, "weight"), 3, "objects[0].weight"),
        (("camera", "trajectory"), "spiral", "camera.trajectory"),
        (("camera", "views"), 2.5, "camera.views"),
        (("camera", "width"), True, "camera.width"),
        (("table", "size"), [1.0, 0.0], "table.size[1]"),
        (("eval_views",), -1, "eval_views"),
    ],
)
def test_bad_spec_error_names_the_key(path, value, key):
    with pytest.raises(SpecError) as info:
        parse_spec(_with(path, value))
    message = str(info.value)
    assert message.startswith(key + ":") or message.startswith(key + " "), message
    assert "\n" not in message


def test_repeated_name_and_two_view_views_are_rejected():
    data = copy.deepcopy(DESIGN_EXAMPLE)
    data["objects"].append(dict(data["objects"][0], position=[-0.2, 0.1]))
    with pytest.raises(SpecError, match=r"^objects\[1\]\.name"):
        parse_spec(data)
    with pytest.raises(SpecError, match=r"^camera\.views"):
        parse_spec(_with(("camera", "trajectory"), "two_view"))


@pytest.mark.parametrize("shape", SHAPES)
def test_mesh_size_placement_and_closedness(shape):
    obj = ObjectSpec(name="x", shape=shape, color="red", size=0.12, position=(0.1, -0.2), yaw=0.0)
    mesh = object_mesh(obj)
    lo, hi = mesh.get_min_bound(), mesh.get_max_bound()
    assert np.max(hi - lo) == pytest.approx(0.12, abs=1e-9)
    assert lo[2] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose((lo[:2] + hi[:2]) / 2, [0.1, -0.2], atol=1e-9)
    if shape != "mug":  # the mug is two closed parts (body + handle ring) that overlap in the wall
        assert mesh.is_watertight()
    turned = object_mesh(ObjectSpec(name="x", shape=shape, color="red", size=0.12, position=(0.1, -0.2), yaw=90.0))
    quarter_turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # yaw 90 about the position
    centre = np.array([0.1, -0.2, 0.0])
    np.testing.assert_allclose(
        np.asarray(turned.vertices) - centre, (np.asarray(mesh.vertices) - centre) @ quarter_turn.T, atol=1e-9
    )


def test_mug_is_hollow_and_handle_sticks_out():
    mug = object_mesh(ObjectSpec(name="m", shape="mug", color="red", size=0.1, position=(0.0, 0.0)))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mug))
    # straight down the axis: first hit is the inner bottom (wall 6 % of size), not the rim height
    ray = o3d.core.Tensor([[0.0, 0.0, 1.0, 0.0, 0.0, -1.0]], dtype=o3d.core.float32)
    hit_z = 1.0 - scene.cast_rays(ray)["t_hit"].numpy()[0]
    assert 0.003 < hit_z < 0.01
    lo, hi = mug.get_min_bound(), mug.get_max_bound()
    assert hi[0] - lo[0] > 1.3 * (hi[1] - lo[1])  # handle on +x makes it longer in x than in y


def test_random_spec_is_deterministic_distinct_and_without_overlaps():
    a, b = random_spec(11, count=7), random_spec(11, count=7)
    assert a == b and a != random_spec(12, count=7)
    assert len(a.objects) == 7 and len({o.name for o in a.objects}) == 7
    build_world(a)  # raises on overlaps
    assert parse_spec(spec_to_dict(a)) == a
    with pytest.raises(ValueError, match="count"):
        random_spec(0, count=0)


def test_build_world_rejects_overlapping_objects():
    data = copy.deepcopy(DESIGN_EXAMPLE)
    data["objects"].append(
        {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.08, "position": [0.13, -0.05]}
    )
    with pytest.raises(ValueError, match=r"objects\[1\].*blue ball.*overlaps.*red mug"):
        build_world(parse_spec(data))
