"""`langscene export` / the demo's pictures (#20): answers as Foxglove MCAP, read back with the `mcap`
reader and a protobuf wire decoder of our own (no protobuf package here), and a top view PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from world_scene import SPEC, make_scene

from langscene_core.config import LangsceneConfig
from langscene_core.engine import LangScene
from langscene_core.reconstruction.scene import save_scene
from langscene_core.sim import build_world, parse_spec
from langscene_ros.cli import main
from langscene_ros.commands.export import export_answers
from langscene_ros.foxglove_export import TOPICS

PROMPTS = ["red box", "purple elephant"]  # found with grasps / nothing (an empty entity)


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def fields(data: bytes) -> dict[int, list]:
    """Protobuf wire format -> {field number: [values]} (varints as int, length-delimited as bytes)."""
    out: dict[int, list] = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:  # fixed32 (PointCloud.point_stride)
            value, i = int.from_bytes(data[i : i + 4], "little"), i + 4
        else:
            raise AssertionError(f"wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


# field numbers of the foxglove schemas (foxglove/schemas, proto): SceneUpdate.entities = 2;
# SceneEntity.arrows = 7, cubes = 8, texts = 13, id = 3; PosesInFrame.poses = 3; PointCloud.point_stride = 4,
# data = 6. Checked first on a message whose contents we choose.
SCENE_UPDATE_ENTITIES, ENTITY_ID, ENTITY_ARROWS, ENTITY_CUBES, ENTITY_TEXTS = 2, 3, 7, 8, 13
POSES, CLOUD_STRIDE, CLOUD_DATA = 3, 4, 6


def test_field_numbers_are_the_foxglove_schemas():
    from foxglove.messages import ArrowPrimitive, CubePrimitive, PosesInFrame, SceneEntity, SceneUpdate, TextPrimitive

    update = SceneUpdate(
        entities=[
            SceneEntity(id="x", arrows=[ArrowPrimitive()] * 2, cubes=[CubePrimitive()], texts=[TextPrimitive()] * 3)
        ]
    ).encode()
    (entity,) = fields(update)[SCENE_UPDATE_ENTITIES]
    got = fields(entity)
    assert got[ENTITY_ID] == [b"x"] and len(got[ENTITY_ARROWS]) == 2 and len(got[ENTITY_CUBES]) == 1
    assert len(got[ENTITY_TEXTS]) == 3
    assert len(fields(PosesInFrame(poses=[], frame_id="m").encode()).get(POSES, [])) == 0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    engine = LangScene(LangsceneConfig())
    scene = make_scene(build_world(parse_spec(SPEC)), engine.load_models())
    save_scene(scene, root / "scene.ply")
    summary = export_answers(root / "scene.ply", PROMPTS, None, root / "a.mcap", root / "a.png")
    return root, scene, summary


def test_mcap_holds_the_answers(exported):
    from mcap.reader import make_reader

    root, scene, summary = exported
    answers = {a["prompt"]: a for a in summary["answers"]}
    assert answers["red box"]["found"] and answers["red box"]["grasps"] > 0
    with open(root / "a.mcap", "rb") as stream:
        messages = list(make_reader(stream).iter_messages())
    assert {channel.topic: schema.name for schema, channel, _ in messages} == TOPICS
    assert all(schema.encoding == "protobuf" for schema, _, _ in messages)
    by_topic: dict[str, list] = {}
    for _, channel, message in messages:
        by_topic.setdefault(channel.topic, []).append(fields(message.data))
    assert {t: len(m) for t, m in by_topic.items()} == {"/scene_cloud": 1} | {
        t: len(PROMPTS) for t in ("/relevancy_cloud", "/answers", "/grasps")
    }
    (cloud,) = by_topic["/scene_cloud"]
    assert len(cloud[CLOUD_DATA][0]) // cloud[CLOUD_STRIDE][0] == scene.num_gaussians
    for prompt, update, poses, relevant in zip(
        PROMPTS, by_topic["/answers"], by_topic["/grasps"], by_topic["/relevancy_cloud"]
    ):
        answer = answers[prompt]
        (entity,) = [fields(e) for e in update[SCENE_UPDATE_ENTITIES]]
        assert entity[ENTITY_ID] == [prompt.encode()]
        assert len(entity.get(ENTITY_CUBES, [])) == int(answer["found"])
        assert len(entity.get(ENTITY_ARROWS, [])) == answer["grasps"] == len(poses.get(POSES, []))
        assert len(relevant.get(CLOUD_DATA, [b""])[0]) // relevant[CLOUD_STRIDE][0] == answer["points"]


def test_top_view_png_shows_the_found_answer_in_its_colour(exported):
    from langscene_ros.top_view import PALETTE

    root, _, summary = exported
    image = np.asarray(Image.open(root / "a.png").convert("RGB"))
    assert image.shape[1] == 800 and image.shape[0] > 100
    assert summary["answers"][0]["found"]
    assert np.all(image == PALETTE[0], axis=-1).sum() > 50  # the red box's outline and grasps


def test_export_refuses_to_overwrite_in_one_line(exported, capsys):
    root, _, _ = exported
    code = main(["export", str(root / "scene.ply"), "--query", "red box", "--out", str(root / "a.mcap")])
    err = capsys.readouterr().err
    assert code == 2 and "exists already" in err and err.count("\n") == 1
