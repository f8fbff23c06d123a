"""`langscene play BAG` into a running node (#20): recorded stamps, /tf and /tf_static played, remaps,
compressed transports; and the round trip world -> bag -> play -> answers (slow)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import wait_until
from language_helpers import tiny_models_config
from test_bag import SPEC as BAG_SPEC

from langscene_core.config import InputQos, LangsceneConfig, NodeConfig, QosConfig, load_config, to_dict
from langscene_core.sim import build_world, parse_spec, render_dataset
from langscene_ros.bag import write_bag
from langscene_ros.client import NodeClient
from langscene_ros.player import world_bag_records

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parent.parent
SPEC = {
    "objects": [{"name": "red box", "shape": "box", "color": "red", "size": 0.07, "position": [0.08, 0.0]}],
    "camera": {"width": 64, "height": 48, "views": 5, "radius": 0.6},
    "eval_views": 1,
}


@pytest.fixture(scope="module")
def frames():
    return render_dataset(build_world(parse_spec(SPEC))).capture


def _params(root: Path, **node) -> Path:
    config = dataclasses.replace(
        LangsceneConfig(),
        node=NodeConfig(scene_dir=str(root / "scenes"), qos=QosConfig(camera=InputQos("reliable")), **node),
        models=tiny_models_config(root),
    )
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"langscene": {"ros__parameters": to_dict(config)}}))
    return path


def _play(bag: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "langscene_ros.cli", "play", str(bag), "--rate", "5", "--wait", "90", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param(("raw", "raw"), id="raw"),
        pytest.param(("png", "compressedDepth"), id="compressed"),
    ],
)
def test_played_bag_gives_every_keyframe_with_tf_poses(tmp_path, frames, node_process, transport):
    """A bag with the camera under /cam/... and poses only on /tf + /tf_static, played with a remap of
    its image topic onto the node's input: every frame becomes a keyframe (the poses are looked up at
    the recorded stamps). Compressed: the node subscribes to <image>/compressed and
    <depth>/compressedDepth, gets the same keyframes."""
    image_format, depth_format = transport
    compressed = image_format != "raw"
    records = [
        r
        for r in world_bag_records(frames, 10.0, image_format=image_format, depth_format=depth_format)
        if r[0] != "/camera_pose"
    ]
    renames = {"/image/compressed": "/cam/image/compressed", "/image": "/cam/image"}
    write_bag(tmp_path / "w.mcap", [(renames.get(t, t), ns, m) for t, ns, m in records])
    extra = ["-p", "node.image_transport:=compressed", "-p", "node.depth_transport:=compressedDepth"]
    node_process(
        "--params-file",
        str(_params(tmp_path, pose_source="tf")),
        "--ros-args",
        "-r",
        "image:=/cam/image",
        *(extra if compressed else []),
    )
    client = NodeClient("bag_play_client")
    try:
        assert wait_until(lambda: client.statuses, 90), "no status from the node"
        proc = _play(tmp_path / "w.mcap")
        assert proc.returncode == 0, proc.stderr
        assert wait_until(lambda: client.statuses[-1].keyframes == len(frames), 30), client.statuses[-1]
        assert "rejected 0" in client.statuses[-1].message, client.statuses[-1].message
    finally:
        client.close()


@pytest.mark.slow
def test_play_and_ingest_of_one_bag_answer_alike_and_within_2_cm(tmp_path, node_process):
    """world -> --bag -> play into a node (the CPU demo budget) posed by /tf + /tf_static alone (the
    default node.pose_source tf: the node takes no camera_pose), reconstruct, query: each object within
    2 cm of the truth, and the same query in base_link (a static map -> base_link) equal to the map
    answer moved by that transform; `langscene ingest` of the same bag too, and within 5 mm of the
    node's answer."""
    from builtin_interfaces.msg import Time
    from std_srvs.srv import Trigger
    from test_node_contract import MAP_FROM_BASE
    from tf2_msgs.msg import TFMessage

    from langscene.srv import QueryObject
    from langscene_core.engine import LangScene
    from langscene_core.eval.evaluate import LOCATED_M, object_centre
    from langscene_ros import convert
    from langscene_ros import interface as api
    from langscene_ros.client import query_request
    from langscene_ros.tf_listener import TF_STATIC, TF_STATIC_QOS

    spec = BAG_SPEC  # test_bag's world: 2 objects, 10 views at 160x120
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    bag = tmp_path / "w.mcap"
    cli = [sys.executable, "-m", "langscene_ros.cli"]
    world = subprocess.run(
        [*cli, "world", "--spec", str(tmp_path / "spec.json"), "--out", str(tmp_path / "ds"), "--bag", str(bag)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert world.returncode == 0, world.stderr
    demo = REPO / "config" / "demo.yaml"
    node_process("--params-file", str(demo), "--ros-args", "-p", "node.qos.camera.reliability:=reliable")
    client = NodeClient("bag_round_trip_client")
    truth = build_world(parse_spec(spec))
    try:
        assert wait_until(lambda: client.statuses, 120), "no status from the node"
        assert wait_until(lambda: client.node.count_subscribers("/image") > 0, 30), "no image subscription"
        assert client.node.count_subscribers("/camera_pose") == 0, "the node reads camera_pose, not /tf"
        assert _play(bag).returncode == 0
        assert wait_until(lambda: client.statuses[-1].keyframes == 10, 30), client.statuses[-1]
        assert client.call(Trigger, api.RECONSTRUCT, Trigger.Request()).success
        assert wait_until(lambda: client.statuses[-1].state in ("ready", "error"), 1500, 1.0)
        assert client.statuses[-1].state == "ready", client.statuses[-1].message
        played = {}
        for obj in spec["objects"]:
            answer = client.call(QueryObject, api.QUERY_OBJECT, query_request(obj["name"]))
            assert answer.success, answer.message
            assert answer.object_pose.header.frame_id == "map"
            p = answer.object_pose.pose.position
            played[obj["name"]] = np.array([p.x, p.y, p.z])
            assert np.linalg.norm(played[obj["name"]] - object_centre(truth, obj["name"])) <= LOCATED_M

        # the planner's frame: base_link, static in map (published now, latched: the node's listener
        # gets it once discovery has matched, so the first queries may still name an unknown frame)
        static = client.node.create_publisher(TFMessage, TF_STATIC, TF_STATIC_QOS)
        static.publish(
            TFMessage(transforms=[convert.matrix_to_transform_stamped(MAP_FROM_BASE, "map", "base_link", Time())])
        )
        name = spec["objects"][0]["name"]
        in_map = client.call(QueryObject, api.QUERY_OBJECT, query_request(name))
        answers = []

        def answered_in_base_link() -> bool:
            answers.append(client.call(QueryObject, api.QUERY_OBJECT, query_request(name, target_frame="base_link")))
            return answers[-1].status == QueryObject.Response.FOUND

        assert wait_until(answered_in_base_link, 30, 0.5), answers[-1].message
        in_base = answers[-1]
        assert in_base.object_pose.header.frame_id == "base_link"
        np.testing.assert_allclose(
            convert.pose_to_matrix(in_base.object_pose.pose),
            np.linalg.inv(MAP_FROM_BASE) @ convert.pose_to_matrix(in_map.object_pose.pose),
            atol=1e-6,
        )
    finally:
        client.close()
    ingest = subprocess.run(
        [*cli, "ingest", str(bag), "--out", str(tmp_path / "scene.ply"), "--params-file", str(demo)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert ingest.returncode == 0, ingest.stderr
    config = load_config(demo)
    engine = LangScene(dataclasses.replace(config, node=dataclasses.replace(config.node, scene_dir=str(tmp_path))))
    engine.load_models()
    engine.load("scene.ply")
    for name, centre in played.items():
        answer = engine.query(name)
        ingested = answer.object_box.pose[:3, 3]
        assert np.linalg.norm(ingested - object_centre(truth, name)) <= LOCATED_M, name
        # #20's 5 mm: the node's input threads race, and its first image may overtake the first depth; it
        # waits node.depth_wait_s for it (before that fix, a keyframe without depth: 6.0 mm measured once)
        print(f"ingest vs play {name}: {np.linalg.norm(ingested - centre) * 1000:.2f} mm")
        assert np.linalg.norm(ingested - centre) <= 0.005, (name, ingested, centre)
