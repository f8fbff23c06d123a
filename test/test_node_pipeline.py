"""The node over ROS with the whole pipeline (tiny random models): frames in, ~/reconstruct in the
background, QueryObject answers, save / load of the scene, and clear failures on bad requests."""

import dataclasses

import pytest
import yaml
from action_msgs.msg import GoalStatus
from conftest import wait_until
from geometry_msgs.msg import PoseArray
from language_helpers import tiny_models_config
from rclpy.action import ActionClient
from sensor_msgs.msg import PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from langscene.action import Reconstruct
from langscene.srv import QueryObject, SceneFile
from langscene_core.config import FieldConfig, LangsceneConfig, NodeConfig, to_dict
from langscene_core.sim import build_world, parse_spec, render_dataset
from langscene_ros import interface as api
from langscene_ros.client import NodeClient, query_request
from langscene_ros.player import Player

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SPEC = {
    "objects": [{"name": "red box", "shape": "box", "color": "red", "size": 0.07, "position": [0.08, 0.0]}],
    "camera": {"width": 64, "height": 48, "views": 5, "radius": 0.6},
    "eval_views": 1,
}


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("node_pipeline")
    config = dataclasses.replace(
        LangsceneConfig(),
        node=NodeConfig(scene_dir=str(root / "scenes")),
        models=tiny_models_config(root),
        field=FieldConfig(geometry_steps=15, language_steps=5, densify_start=1000, init_max_points=2000),
    )
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"langscene": {"ros__parameters": to_dict(config)}}))
    return path


def test_reconstruct_query_save_load_over_ros(params_file, node_process):
    node = node_process("--params-file", str(params_file))
    client = NodeClient("pipeline_test_client")
    # RViz's view of a query: the node publishes it only to subscribers (before discovery ends, none)
    rviz = {api.RELEVANCY_CLOUD: [], api.GRASPS: [], api.MARKERS: []}
    for topic, msg_type in zip(rviz, (PointCloud2, PoseArray, MarkerArray)):
        client.node.create_subscription(msg_type, api.node_path(topic), rviz[topic].append, 10)
    try:
        player = Player(client.node)
        assert player.wait_for_subscribers(90.0), "the node did not subscribe to its inputs"
        early = client.call(Trigger, api.RECONSTRUCT, Trigger.Request())
        assert not early.success and "at least 2 keyframes" in early.message

        dataset = render_dataset(build_world(parse_spec(SPEC)))
        player.play(iter(dataset.capture), rate_hz=20.0)
        assert wait_until(lambda: client.statuses and client.statuses[-1].keyframes == 5, 30), client.statuses[-1:]

        started = client.call(Trigger, api.RECONSTRUCT, Trigger.Request())
        assert started.success, started.message
        again = client.call(Trigger, api.RECONSTRUCT, Trigger.Request())
        assert not again.success and "already running" in again.message
        assert wait_until(lambda: client.statuses[-1].state in ("ready", "error"), 300, 0.5)
        status = client.statuses[-1]
        assert status.state == "ready" and status.gaussians > 0 and status.progress == 1.0, status

        answer = client.call(QueryObject, api.QUERY_OBJECT, query_request("red box"))
        assert answer.success, answer.message
        assert answer.relevancy_cloud.width > 0 and answer.relevancy_cloud.header.frame_id == "map"
        assert wait_until(lambda: all(rviz.values()), 10), {topic: len(got) for topic, got in rviz.items()}
        assert rviz[api.RELEVANCY_CLOUD][-1].width == answer.relevancy_cloud.width
        assert len(rviz[api.GRASPS][-1].poses) == len(answer.grasps)
        assert rviz[api.MARKERS][-1].markers, "no query markers"
        bad = client.call(QueryObject, api.QUERY_OBJECT, query_request("red box", relevancy_threshold=1.5))
        assert not bad.success and "relevancy_threshold" in bad.message

        scenes = params_file.parent / "scenes"  # node.scene_dir
        saved = client.call(SceneFile, api.SAVE_SCENE, SceneFile.Request(path="scene"))
        assert saved.success and str(scenes / "scene.ply") in saved.message, saved.message
        nowhere = client.call(SceneFile, api.SAVE_SCENE, SceneFile.Request(path="no/dir/s.ply"))
        assert not nowhere.success and "does not exist" in nowhere.message
        missing = client.call(SceneFile, api.LOAD_SCENE, SceneFile.Request(path="missing.ply"))
        assert not missing.success and "no such file" in missing.message
        loaded = client.call(SceneFile, api.LOAD_SCENE, SceneFile.Request(path=str(scenes / "scene.ply")))
        assert loaded.success, loaded.message
        assert str(status.gaussians) in loaded.message

        # ~/reconstruct_scene: feedback never decreasing, success with the Gaussian count, a concurrent
        # goal rejected; then a goal cancelled after its first feedback leaves the loaded scene answering
        action = ActionClient(client.node, Reconstruct, api.node_path(api.RECONSTRUCT_SCENE))
        assert action.wait_for_server(timeout_sec=30)
        feedback: list[float] = []
        first = done(
            action.send_goal_async(Reconstruct.Goal(), feedback_callback=lambda f: feedback.append(f.feedback.progress))
        )
        assert first.accepted
        second = done(action.send_goal_async(Reconstruct.Goal()))
        assert not second.accepted  # one reconstruction at a time
        outcome = done(first.get_result_async(), 300)
        assert outcome.status == GoalStatus.STATUS_SUCCEEDED and outcome.result.success, outcome.result.message
        assert outcome.result.gaussians > 0 and feedback and feedback == sorted(feedback), feedback

        cancelled: list[float] = []
        third = done(
            action.send_goal_async(
                Reconstruct.Goal(), feedback_callback=lambda f: cancelled.append(f.feedback.progress)
            )
        )
        assert third.accepted and wait_until(lambda: cancelled, 120)
        done(third.cancel_goal_async())
        outcome = done(third.get_result_async(), 120)
        assert outcome.status == GoalStatus.STATUS_CANCELED and not outcome.result.success, outcome.result.message
        still = client.call(QueryObject, api.QUERY_OBJECT, query_request("red box"))
        assert still.success, still.message
        bad_mode = done(done(action.send_goal_async(Reconstruct.Goal(mode="fast"))).get_result_async())
        assert bad_mode.status == GoalStatus.STATUS_ABORTED and "densify.mode" in bad_mode.result.message
        assert node.poll() is None
    finally:
        client.close()


def done(future, timeout_s: float = 30.0):
    """The result of an rclpy future (the client's executor spins it in the background)."""
    assert wait_until(future.done, timeout_s), "no answer from the action server"
    return future.result()


@pytest.mark.parametrize("shutdown_wait_s", [3.0, 0.0])
def test_sigterm_during_a_reconstruction_shuts_down_cleanly(params_file, node_process, tmp_path, shutdown_wait_s):
    """#21: SIGTERM while a reconstruction runs stops it at its next step and exits 0 (it used to abort
    with 'terminate called without an active exception', exit -6, the worker still inside torch).
    ``node.shutdown_wait_s`` 0: the step outlasts the wait, as a long step on a loaded CPU does, and the
    node exits 0 without it (that path used to end in an RCLError, rclpy's SIGTERM handler having shut
    the context down already, then the same abort)."""
    from langscene_ros.client import stop_process

    config = yaml.safe_load(params_file.read_text())
    config["langscene"]["ros__parameters"]["field"]["geometry_steps"] = 100_000  # minutes: still running
    config["langscene"]["ros__parameters"]["node"]["shutdown_wait_s"] = shutdown_wait_s
    long_params = params_file.parent / "long_params.yaml"
    long_params.write_text(yaml.safe_dump(config))
    node = node_process("--params-file", str(long_params))
    client = NodeClient("sigterm_test_client")
    try:
        player = Player(client.node)
        assert player.wait_for_subscribers(90.0), "the node did not subscribe to its inputs"
        player.play(iter(render_dataset(build_world(parse_spec(SPEC))).capture), rate_hz=20.0)
        assert wait_until(lambda: client.statuses and client.statuses[-1].keyframes == 5, 30), client.statuses[-1:]
        assert client.call(Trigger, api.RECONSTRUCT, Trigger.Request()).success
        assert wait_until(lambda: "geometry step" in client.statuses[-1].message, 120), client.statuses[-1]
    finally:
        client.close()
    stop_process(node, timeout_s=15.0)  # the node waits shutdown_wait_s for the reconstruction, then exits
    log = (tmp_path / "node0.log").read_text()
    assert node.returncode == 0, f"exit {node.returncode} on SIGTERM during a reconstruction: {log[-2000:]}"
    assert ("did not stop within" in log) == (shutdown_wait_s == 0.0), log[-2000:]
