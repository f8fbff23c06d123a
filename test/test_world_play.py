"""`langscene play DIR` publishes a world dataset on the node's input topics (rclpy round trip)."""

import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_until

from langscene_core.geometry.transforms import TransformBuffer
from langscene_core.sim import build_world, load_dataset, parse_spec, render_dataset, write_dataset
from langscene_ros.cli import main
from langscene_ros.tf_listener import TF, TF_QOS, TF_STATIC, TF_STATIC_QOS, store_transforms

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parent.parent
SPEC = {
    "objects": [
        {"name": "red mug", "shape": "mug", "color": "red", "size": 0.1, "position": [0.1, -0.05]},
        {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.08, "position": [-0.1, 0.1]},
    ],
    "camera": {"views": 5},
    "eval_views": 1,
}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "ds"
    write_dataset(render_dataset(build_world(parse_spec(SPEC))), out)
    return out


class Recorder:
    """Subscribes to /image, /camera_info, /depth, /camera_pose, /tf and /tf_static (tf2_ros's QoS) in a
    private rclpy context."""

    def __init__(self):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from tf2_msgs.msg import TFMessage

        from langscene_ros import interface as api

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("world_play_recorder", context=self.context)
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.messages = {topic: [] for topic in (api.IMAGE, api.CAMERA_INFO, api.DEPTH, api.CAMERA_POSE, TF, TF_STATIC)}
        for topic, kind in (
            (api.IMAGE, Image),
            (api.CAMERA_INFO, CameraInfo),
            (api.DEPTH, Image),
            (api.CAMERA_POSE, PoseStamped),
        ):
            self.node.create_subscription(kind, f"/{topic}", self.messages[topic].append, qos)
        self.node.create_subscription(TFMessage, TF, self.messages[TF].append, TF_QOS)
        self.node.create_subscription(TFMessage, TF_STATIC, self.messages[TF_STATIC].append, TF_STATIC_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def counts(self) -> dict[str, int]:
        return {topic: len(m) for topic, m in self.messages.items()}

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def test_play_publishes_every_capture_frame_with_matching_stamps(dataset_dir):
    from langscene_ros import convert

    recorder = Recorder()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "langscene_ros.cli", "play", str(dataset_dir), "--rate", "10", "--wait", "20"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert proc.returncode == 0, proc.stderr
        assert "published 5 frames" in proc.stdout
        per_frame = [m for topic, m in recorder.messages.items() if topic != TF_STATIC]
        assert wait_until(lambda: all(len(m) == 5 for m in per_frame), timeout_s=20), recorder.counts()
        assert wait_until(lambda: recorder.messages[TF_STATIC], timeout_s=20), "no /tf_static"
    finally:
        recorder.close()
    dataset = load_dataset(dataset_dir)
    # the node's own buffer code (pose_source tf) reads the played tree back
    transforms = TransformBuffer()
    for message in recorder.messages[TF_STATIC]:
        assert not store_transforms(transforms, message, static=True)
    for message in recorder.messages[TF]:
        assert not store_transforms(transforms, message, static=False)
    stamps = []
    for i, frame in enumerate(dataset.capture):
        image, info, depth, pose, tf = (
            recorder.messages[t][i] for t in ("image", "camera_info", "depth", "camera_pose", TF)
        )
        assert image.header.stamp == info.header.stamp == depth.header.stamp == pose.header.stamp
        assert [(t.header.frame_id, t.header.stamp) for t in tf.transforms] == [("map", image.header.stamp)]
        np.testing.assert_allclose(
            transforms.lookup("map", image.header.frame_id, convert.stamp_to_seconds(image.header.stamp)),
            frame.cam_to_world,
            atol=1e-9,
        )
        stamps.append(image.header.stamp.sec + image.header.stamp.nanosec * 1e-9)
        assert image.encoding == "rgb8" and depth.encoding == "32FC1"
        assert np.array_equal(convert.image_to_rgb(image), frame.rgb)
        received_depth = convert.image_to_depth(depth)
        assert np.array_equal(np.nan_to_num(received_depth, nan=0.0), frame.depth)
        assert pose.header.frame_id == "map"
        np.testing.assert_allclose(convert.pose_to_matrix(pose.pose), frame.cam_to_world, atol=1e-9)
        assert convert.camera_info_to_intrinsics(info) == frame.intrinsics
    gaps = np.diff(stamps)  # --rate 10: a steady 0.1 s schedule (a late frame is followed by a quick one)
    assert np.all(gaps > 0) and 0.35 < stamps[-1] - stamps[0] < 1.0


def test_play_rejects_a_missing_dataset_and_a_bad_rate(tmp_path, capsys, dataset_dir):
    assert main(["play", str(tmp_path / "nothing")]) == 2
    assert "not a langscene world dataset" in capsys.readouterr().err
    assert main(["play", str(dataset_dir), "--rate", "0"]) == 2
    assert capsys.readouterr().err.strip() == "langscene play: --rate must be positive, got 0.0"


@pytest.mark.slow  # starts the node (imports the whole pipeline): about 30-45 s on a loaded 2-core machine
def test_the_node_takes_played_frames_as_keyframes(dataset_dir, node_process, tmp_path):
    """End to end: `langscene run` + `langscene play`; the 5 orbit views (72 deg apart) all become keyframes.

    The node subscribes reliably (``node.qos.camera.reliability: reliable``), so that `play` can wait until every
    frame is acknowledged before it exits: with the default best-effort camera QoS the frame still in
    flight when `play` exited was lost in 3 of 7 runs of this test alone (and in 1 of 4 fresh-clone suite
    runs), whatever `play` waited before publishing."""
    from langscene_ros.client import NodeClient

    params = tmp_path / "params.yaml"
    params.write_text(
        "langscene:\n  ros__parameters:\n    node:\n      qos:\n        camera:\n          reliability: reliable\n"
    )
    node = node_process("--params-file", str(params))
    peer = NodeClient(name="world_play_status")
    try:
        assert wait_until(lambda: peer.statuses, 90), "no status from the node within 90 s"
        proc = subprocess.run(
            [sys.executable, "-m", "langscene_ros.cli", "play", str(dataset_dir), "--rate", "5", "--wait", "30"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert wait_until(lambda: peer.statuses[-1].keyframes == 5, 20), peer.statuses[-1]
        assert re.search(r"rejected 0\b", peer.statuses[-1].message), peer.statuses[-1].message
        assert node.poll() is None
    finally:
        peer.close()
