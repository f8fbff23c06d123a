"""Bags in and out (#20): `langscene world --bag` writes an MCAP other tools read, `langscene ingest`
reconstructs from it offline with the node's names, remaps, parameters and input code; bad bags end
in one line and exit 2."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from langscene_core.config import LangsceneConfig, NodeConfig, load_config
from langscene_core.engine import LangScene
from langscene_core.sim import build_world, parse_spec, render_dataset
from langscene_ros.bag import BagError, BagReader, write_bag
from langscene_ros.cli import main
from langscene_ros.commands.ingest import feed, topic_plan
from langscene_ros.inputs import Inputs
from langscene_ros.player import world_bag_records
from langscene_ros.ros_args import RosArgs, config_from_ros_args, parse_ros_args

REPO = Path(__file__).resolve().parent.parent
SPEC = {
    "seed": 1,
    "objects": [
        {"name": "red box", "shape": "box", "color": "red", "size": 0.07, "position": [0.1, 0.0]},
        {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.06, "position": [-0.12, 0.08]},
    ],
    "camera": {"width": 160, "height": 120, "views": 10, "radius": 0.7, "elevation_deg": 35},
    "eval_views": 1,
}
TOPICS = {
    "/tf_static": "tf2_msgs/msg/TFMessage",
    "/tf": "tf2_msgs/msg/TFMessage",
    "/camera_info": "sensor_msgs/msg/CameraInfo",
    "/camera_pose": "geometry_msgs/msg/PoseStamped",
    "/depth": "sensor_msgs/msg/Image",
    "/image": "sensor_msgs/msg/Image",
}


@pytest.fixture(scope="module")
def dataset():
    return render_dataset(build_world(parse_spec(SPEC)))


@pytest.fixture(scope="module")
def world_bag(tmp_path_factory):
    """`langscene world --spec SPEC --bag w.mcap`, as a user runs it."""
    root = tmp_path_factory.mktemp("world_bag")
    (root / "spec.json").write_text(json.dumps(SPEC))
    bag = root / "w.mcap"
    proc = subprocess.run(
        [sys.executable, "-m", "langscene_ros.cli", "world", "--spec", str(root / "spec.json")]
        + ["--out", str(root / "ds"), "--bag", str(bag)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bag"]["topics"] == {topic: 1 if topic == "/tf_static" else 10 for topic in TOPICS}
    return bag


def _engine(config: LangsceneConfig | None = None) -> tuple[LangScene, Inputs]:
    config = config or LangsceneConfig()
    engine = LangScene(config)  # no models: capture only
    return engine, Inputs(engine, config.node, lambda *a: None, lambda what: what)


def test_world_bag_is_read_by_mcap_ros2_support(world_bag, dataset):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    counts, schemas, stamps = {}, {}, []
    with open(world_bag, "rb") as stream:
        decoded = list(make_reader(stream, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    for schema, channel, message, ros_msg in decoded:
        topic = channel.topic
        counts[topic] = counts.get(topic, 0) + 1
        schemas[topic] = schema.name
        if topic == "/image":
            image = ros_msg
            stamps.append(image.header.stamp.sec + image.header.stamp.nanosec * 1e-9)
            assert (image.encoding, image.height, image.width) == ("rgb8", 120, 160)
            assert np.array_equal(
                np.frombuffer(bytes(image.data), np.uint8).reshape(120, 160, 3), dataset.capture[len(stamps) - 1].rgb
            )
            assert message.log_time == image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
    assert schemas == TOPICS
    assert counts == {topic: 1 if topic == "/tf_static" else 10 for topic in TOPICS}
    assert np.allclose(np.diff(stamps), 0.1)  # --bag-rate 10


@pytest.mark.parametrize("pose_source", ["topic", "tf"])
def test_bag_feeds_the_same_keyframes_and_poses_as_the_frames(world_bag, dataset, pose_source):
    """The bag through the node's input code gives the keyframes the rendered frames give directly,
    with camera_pose or with the /tf + /tf_static chain map -> camera_link -> camera_optical."""
    config = dataclasses.replace(LangsceneConfig(), node=NodeConfig(pose_source=pose_source))
    engine, inputs = _engine(config)
    with BagReader(world_bag) as bag:
        counts = feed(bag, topic_plan(config, RosArgs()), inputs)
    assert counts["/image"] == 10 and engine.status().keyframes == len(dataset.capture)
    direct = LangScene(config)
    for i, frame in enumerate(dataset.capture):
        assert direct.add_frame(_frame(frame, i)) == "accepted"
    got, want = engine.keyframes(), direct.keyframes()
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert np.array_equal(a.rgb, b.rgb) and np.allclose(a.cam_to_world, b.cam_to_world, atol=1e-6)
        assert np.allclose(a.depth, b.depth, equal_nan=True)


def _keyframes_fed(config: LangsceneConfig, messages) -> list:
    """The keyframes of an engine given ``messages`` ((topic, log time, message) of topic_plan's topics)
    through the node's input handlers in the order given."""
    engine, inputs = _engine(config)
    plan = topic_plan(config, RosArgs())
    for topic, _, message in messages:
        entry = plan[topic]
        if entry.handler == "transforms":
            inputs.transforms(message, static=entry.static)
        else:
            getattr(inputs, entry.handler)(message)
    return engine.keyframes()


def test_an_image_handled_before_its_depth_gives_the_keyframes_ingest_gives(world_bag):
    """The node's race (#20): its callbacks run on separate threads, so a frame's image may be handled
    before that frame's depth. The image waits for it (node.depth_wait_s), so every keyframe has its
    depth and the node keeps what ingest (the bag's order: depth first) keeps."""
    config = LangsceneConfig()
    with BagReader(world_bag) as bag:
        plan = topic_plan(config, RosArgs())
        in_log_order = list(bag.messages({topic: entry.type for topic, entry in plan.items()}))
    image_first = list(in_log_order)
    for i in [i for i, (topic, _, _) in enumerate(in_log_order) if topic == "/depth"]:
        assert in_log_order[i + 1][0] == "/image"  # each frame's image follows its depth: swap them
        image_first[i], image_first[i + 1] = in_log_order[i + 1], in_log_order[i]
    ingested, raced = _keyframes_fed(config, in_log_order), _keyframes_fed(config, image_first)
    assert len(raced) == len(ingested) == 10
    for a, b in zip(raced, ingested):
        assert a.stamp == b.stamp and a.depth is not None and np.array_equal(a.depth, b.depth, equal_nan=True)
    # without the wait the first image becomes a keyframe without depth (what the node did before)
    eager = dataclasses.replace(config, node=dataclasses.replace(config.node, depth_wait_s=0.0))
    assert _keyframes_fed(eager, image_first)[0].depth is None


def _frame(rendered, stamp):
    from langscene_core.capture.frames import Frame

    depth = np.where(rendered.depth > 0, rendered.depth, np.nan).astype(np.float32)
    return Frame(
        stamp=stamp, rgb=rendered.rgb, intrinsics=rendered.intrinsics, cam_to_world=rendered.cam_to_world, depth=depth
    )


def test_remapped_and_compressed_topics_are_found_as_the_node_finds_them(tmp_path, dataset):
    """A bag with the camera under /cam/color/image_raw/compressed and /cam/depth/image_raw/compressedDepth
    (what image_transport names them): found with -r image:=/cam/color/image_raw -p node.image_transport:=
    compressed ..., and then the same keyframes as raw (png colour is lossless, depth in millimetres)."""
    names = {
        "/image/compressed": "/cam/color/image_raw/compressed",
        "/depth/compressedDepth": "/cam/depth/image_raw/compressedDepth",
    }
    records = world_bag_records(dataset.capture[:4], 10.0, image_format="png", depth_format="compressedDepth")
    write_bag(tmp_path / "c.mcap", ((names.get(t, t), ns, m) for t, ns, m in records))
    ros = parse_ros_args(
        ["-r", "image:=/cam/color/image_raw", "-r", "langscene:depth:=/cam/depth/image_raw", "-r", "other:x:=y"]
        + ["-p", "node.image_transport:=compressed", "-p", "node.depth_transport:=compressedDepth"]
    )
    config = config_from_ros_args(ros)
    engine, inputs = _engine(config)
    with BagReader(tmp_path / "c.mcap") as bag:
        counts = feed(bag, topic_plan(config, ros), inputs)
    assert counts["/cam/color/image_raw/compressed"] == 4 and counts["/cam/depth/image_raw/compressedDepth"] == 4
    keyframes = engine.keyframes()
    assert len(keyframes) == 4 and engine.status().rejected == {}
    for keyframe, rendered in zip(keyframes, dataset.capture):
        assert np.array_equal(keyframe.rgb, rendered.rgb)
        assert np.nanmax(np.abs(keyframe.depth - rendered.depth)) <= 0.0005 + 1e-6  # mm rounding


def test_ros_args_resolve_as_rcl_does(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    node.scene_frame: odom\n    use_sim_time: true\n")
    ros = parse_ros_args(["-r", "__ns:=/robot1", "-r", "image:=cam/image", "--params-file", str(params)])
    assert ros.resolve("image") == "/robot1/cam/image" and ros.resolve("depth") == "/robot1/depth"
    assert ros.resolve("/tf") == "/tf" and ros.resolve("~/status") == "/robot1/langscene/status"
    assert config_from_ros_args(ros).node.scene_frame == "odom"
    assert config_from_ros_args(parse_ros_args(["-p", "field.geometry_steps:=7"])).field.geometry_steps == 7
    with pytest.raises(ValueError, match="unsupported ROS argument '--log-level'"):
        parse_ros_args(["--log-level", "debug"])
    with pytest.raises(ValueError, match="is not NAME:=VALUE"):
        parse_ros_args(["-r", "image"])


def _ingest_fails(capsys, *argv) -> str:
    assert main(["ingest", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_bags_end_in_one_line_and_exit_2(tmp_path, world_bag, dataset, capsys):
    out = str(tmp_path / "s.ply")
    assert "no such bag" in _ingest_fails(capsys, str(tmp_path / "none.mcap"), "--out", out)
    # missing topic: a bag without /tf, read with pose_source tf (the default) ...
    records = [r for r in world_bag_records(dataset.capture[:3], 10.0) if r[0] != "/tf"]
    write_bag(tmp_path / "notf.mcap", records)
    err = _ingest_fails(capsys, str(tmp_path / "notf.mcap"), "--out", out)
    assert "no topic /tf in the bag; it holds: /camera_info (sensor_msgs/msg/CameraInfo)" in err
    # ... and a bag without camera_pose, read with pose_source topic
    records = [r for r in world_bag_records(dataset.capture[:3], 10.0) if r[0] != "/camera_pose"]
    write_bag(tmp_path / "nopose.mcap", records)
    topic = ("--ros-args", "-p", "node.pose_source:=topic")
    err = _ingest_fails(capsys, str(tmp_path / "nopose.mcap"), "--out", out, *topic)
    assert "no topic /camera_pose in the bag; it holds: /camera_info (sensor_msgs/msg/CameraInfo)" in err
    # the remapped name is the one looked for
    err = _ingest_fails(capsys, str(world_bag), "--out", out, "--ros-args", "-r", "image:=/cam/image")
    assert "no topic /cam/image in the bag" in err
    # an input topic of another type than the node's
    from sensor_msgs.msg import CompressedImage

    write_bag(tmp_path / "type.mcap", [("/image", 0, CompressedImage(format="png"))])
    err = _ingest_fails(capsys, str(tmp_path / "type.mcap"), "--out", out)
    assert "topic /image holds sensor_msgs/msg/CompressedImage, expected sensor_msgs/msg/Image" in err
    # not a bag at all, and a corrupt chunk in the middle of a good one
    (tmp_path / "text.mcap").write_text("hello")
    assert "not a readable bag" in _ingest_fails(capsys, str(tmp_path / "text.mcap"), "--out", out)
    data = world_bag.read_bytes()
    (tmp_path / "truncated.mcap").write_bytes(data[: len(data) // 2])  # a recording killed mid-write
    assert "not a readable bag" in _ingest_fails(capsys, str(tmp_path / "truncated.mcap"), "--out", out)
    # garbage over the middle third (chunk and record headers): rosbags drops what it cannot parse, the
    # index counts tell. (rosbags writes no chunk CRCs: garbage inside one message's payload is found
    # only where the conversions refuse it.)
    third = len(data) // 3
    (tmp_path / "corrupt.mcap").write_bytes(
        data[:third] + bytes(range(256)) * (third // 256) + data[third + third // 256 * 256 :]
    )
    err = _ingest_fails(capsys, str(tmp_path / "corrupt.mcap"), "--out", out)
    assert "corrupt bag data: read only" in err
    assert "unsupported ROS argument" in _ingest_fails(capsys, str(world_bag), "--out", out, "--ros-args", "-e", "x")
    assert "bad parameter" in _ingest_fails(
        capsys, str(world_bag), "--out", out, "--ros-args", "-p", "node.pose_source:=gps"
    )


def test_unrelated_topics_of_unknown_types_are_skipped(tmp_path, dataset):
    """A topic the node does not read is never deserialized, whatever its type."""
    records = list(world_bag_records(dataset.capture[:3], 10.0))
    with BagReader(_with_foreign_topic(tmp_path, records)) as bag:
        assert bag.topics["/lidar"].type == "sensor_msgs/msg/PointCloud2"
        engine, inputs = _engine()
        assert "/lidar" not in feed(bag, topic_plan(LangsceneConfig(), RosArgs()), inputs)
    assert engine.status().keyframes == 3


def _with_foreign_topic(tmp_path, records):
    from sensor_msgs.msg import PointCloud2

    path = tmp_path / "foreign.mcap"
    write_bag(path, [*records, ("/lidar", records[-1][1], PointCloud2())])
    return path


def test_write_bag_refuses_to_overwrite(tmp_path, world_bag):
    with pytest.raises(BagError, match="exists already"):
        write_bag(world_bag, [])


@pytest.mark.slow
def test_ingest_reconstructs_a_scene_that_answers_within_2_cm(world_bag, tmp_path):
    """world -> --bag MCAP -> `langscene ingest` (the CPU demo budget) -> each object's answered
    centre within 2 cm of the truth."""
    from langscene_core.eval.evaluate import LOCATED_M, object_centre

    out = tmp_path / "scene.ply"
    proc = subprocess.run(
        [sys.executable, "-m", "langscene_ros.cli", "ingest", str(world_bag), "--out", str(out)]
        + ["--params-file", str(REPO / "config" / "demo.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["keyframes"] == 10 and summary["rejected"] == {} and summary["gaussians"] > 0
    config = load_config(REPO / "config" / "demo.yaml")
    engine = LangScene(dataclasses.replace(config, node=dataclasses.replace(config.node, scene_dir=str(tmp_path))))
    engine.load_models()
    engine.load("scene.ply")
    world = build_world(parse_spec(SPEC))
    for obj in SPEC["objects"]:
        answer = engine.query(obj["name"])
        assert answer.object_box is not None, answer.message
        error = np.linalg.norm(answer.object_box.pose[:3, 3] - object_centre(world, obj["name"]))
        assert error <= LOCATED_M, (obj["name"], error)


def test_a_bag_directory_is_written_and_read_like_ros2_bag_writes_it(tmp_path):
    """A path without .mcap: a rosbag2 directory (metadata.yaml + MCAP storage), which `play` also
    recognises as a bag."""
    from sensor_msgs.msg import CameraInfo

    from langscene_ros.commands.play import is_bag

    assert write_bag(tmp_path / "bag", [("/camera_info", i, CameraInfo(width=4, height=3)) for i in range(3)]) == {
        "/camera_info": 3
    }
    assert sorted(p.name for p in (tmp_path / "bag").iterdir()) == ["bag.mcap", "metadata.yaml"]
    with BagReader(tmp_path / "bag") as bag:
        assert [m.width for _, _, m in bag.messages({"/camera_info": CameraInfo})] == [4, 4, 4]
    assert is_bag(tmp_path / "bag") and not is_bag(tmp_path)
