"""QueryObject v2 over ROS, the node in its own process with the bundled models (DESIGN section 3):
statuses FOUND / NO_OBJECT / NOT_READY / BAD_REQUEST, object score, alternatives, pre-grasps,
skip_cloud, answers in a target frame from /tf_static, ~/clear_scene, and the last answer's grasps
latched for a late viewer."""

import dataclasses

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from conftest import wait_until
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from world_scene import make_scene

from langscene.srv import QueryObject, SceneFile
from langscene_core.config import LangsceneConfig, ModelsConfig, NodeConfig, to_dict
from langscene_core.eval.grasp_check import check_grasp
from langscene_core.geometry.transforms import make_transform
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.reconstruction.models import load_models
from langscene_core.reconstruction.scene import save_scene
from langscene_core.sim import build_world, parse_spec
from langscene_ros import convert
from langscene_ros import interface as api
from langscene_ros.client import NodeClient
from langscene_ros.tf_listener import TF_STATIC, TF_STATIC_QOS

pytestmark = pytest.mark.ros

Response = QueryObject.Response
SPEC = {
    "objects": [
        {"name": "red box", "shape": "box", "color": "red", "size": 0.07, "position": [0.1, 0.0]},
        {"name": "red ball", "shape": "ball", "color": "red", "size": 0.06, "position": [0.0, -0.15]},
        {"name": "red cylinder", "shape": "cylinder", "color": "red", "size": 0.07, "position": [-0.12, 0.1]},
    ]
}
# base_link in the scene frame: 0.5 m along x, turned 90 degrees about z
MAP_FROM_BASE = make_transform([0.5, 0.0, 0.0], [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)])


def test_query_object_v2(node_process, tmp_path):
    config = dataclasses.replace(LangsceneConfig(), models=ModelsConfig(device="cpu"))
    models = load_models(config.models, config.densify)
    world = build_world(parse_spec(SPEC))
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    save_scene(make_scene(world, models), scenes / "table")
    params = tmp_path / "params.yaml"
    config = dataclasses.replace(config, node=NodeConfig(scene_dir=str(scenes)))
    params.write_text(yaml.safe_dump({"langscene": {"ros__parameters": to_dict(config)}}))
    node = node_process("--params-file", str(params))
    client = NodeClient("contract_test_client")
    gripper = Gripper.from_config(config.grasp)
    centre = np.asarray(world.meshes[world.instance_id("red box")].get_axis_aligned_bounding_box().get_center())
    try:

        def query(prompt: str, **fields) -> QueryObject.Response:
            request = QueryObject.Request(prompt=prompt, **fields)
            return client.call(QueryObject, api.QUERY_OBJECT, request, timeout_s=120.0)

        not_ready = query("red box")
        assert (not_ready.success, not_ready.status) == (False, Response.NOT_READY), not_ready.message
        loaded = client.call(SceneFile, api.LOAD_SCENE, SceneFile.Request(path="table"), timeout_s=60.0)
        assert loaded.success, loaded.message

        found = query("red box")
        assert (found.success, found.status) == (True, Response.FOUND), found.message
        assert np.linalg.norm(convert.pose_to_matrix(found.object_pose.pose)[:3, 3] - centre) < 0.02
        assert 0.0 < found.object_score <= 1.0 and found.relevancy_cloud.width > 0 and found.alternatives == []
        assert found.grasps, found.message
        for grasp in found.grasps:
            pose, pregrasp = convert.pose_to_matrix(grasp.pose.pose), convert.pose_to_matrix(grasp.pregrasp_pose.pose)
            np.testing.assert_allclose(
                pregrasp[:3, 3], pose[:3, 3] - gripper.approach_distance * pose[:3, 2], atol=1e-6
            )
            np.testing.assert_allclose(pregrasp[:3, :3], pose[:3, :3], atol=1e-6)
            # nothing in the world is hit from the pre-grasp to the grasp (the checker's swept approach)
            assert not check_grasp(world, "red box", pose, grasp.width, gripper).reason.startswith("collision")

        # live parameters: a threshold no Gaussian reaches empties the next answer; bad sets are refused
        def set_parameter(name: str, value) -> tuple[bool, str]:
            request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            result = client.call(SetParameters, f"{client.target}/set_parameters", request, timeout_s=30.0).results[0]
            return result.successful, result.reason

        assert set_parameter("query.relevancy_threshold", 0.999) == (True, "")
        strict = query("red box")
        assert strict.status == Response.NO_OBJECT and "0.999" in strict.message, strict.message
        refused, reason = set_parameter("query.relevancy_threshold", 1.5)
        assert not refused and "relevancy_threshold" in reason, reason
        refused, reason = set_parameter("node.scene_frame", "odom")
        assert not refused and "read-only" in reason, reason
        assert set_parameter("query.relevancy_threshold", 0.55) == (True, "")
        assert query("red box").status == Response.FOUND

        absent = query("green cone")
        assert (absent.success, absent.status) == (True, Response.NO_OBJECT), absent.message
        assert absent.object_extent.x == 0.0 and absent.grasps == []
        for bad in (query("  "), query("red box", relevancy_threshold=1.5), query("red box", max_objects=1000)):
            assert (bad.success, bad.status) == (False, Response.BAD_REQUEST), bad.message

        slim = query("red box", skip_cloud=True)
        assert slim.status == Response.FOUND and slim.relevancy_cloud.width == 0
        assert len(serialize_message(slim)) <= len(serialize_message(found)) - len(found.relevancy_cloud.data)
        np.testing.assert_allclose(
            convert.pose_to_matrix(slim.object_pose.pose), convert.pose_to_matrix(found.object_pose.pose), atol=1e-9
        )

        several = query("red box", max_objects=3, relevancy_threshold=0.3)
        assert several.status == Response.FOUND and 1 <= len(several.alternatives) <= 2, several.message
        scores = [c.score for c in several.alternatives]
        assert scores == sorted(scores, reverse=True)
        others = [convert.pose_to_matrix(c.pose.pose)[:3, 3] for c in several.alternatives]
        assert all(np.linalg.norm(p - centre) > 0.05 for p in others)  # other objects, not the red box again

        static = client.node.create_publisher(TFMessage, TF_STATIC, TF_STATIC_QOS)
        static.publish(
            TFMessage(transforms=[convert.matrix_to_transform_stamped(MAP_FROM_BASE, "map", "base_link", Time())])
        )
        in_base = query("red box", target_frame="base_link")
        for _ in range(50):  # until the node's listener has the static transform
            if in_base.status == Response.FOUND:
                break
            in_base = query("red box", target_frame="base_link")
        assert in_base.status == Response.FOUND, in_base.message
        assert (
            in_base.object_pose.header.frame_id == "base_link" and in_base.grasps[0].pose.header.frame_id == "base_link"
        )
        expected = np.linalg.inv(MAP_FROM_BASE) @ convert.pose_to_matrix(found.object_pose.pose)
        np.testing.assert_allclose(convert.pose_to_matrix(in_base.object_pose.pose), expected, atol=1e-5)
        unknown = query("red box", target_frame="nowhere")
        assert unknown.status == Response.BAD_REQUEST and "nowhere" in unknown.message, unknown.message

        # the last answer's grasps are latched: a viewer that subscribes now still gets them
        late: list[PoseArray] = []
        client.node.create_subscription(PoseArray, api.node_path(api.GRASPS, client.target), late.append, api.LATCHED)
        assert wait_until(lambda: late, 10)
        assert late[-1].header.frame_id == "base_link" and len(late[-1].poses) == len(in_base.grasps)

        # /diagnostics: no camera ever sent (WARN), the scene answering (OK), the last query timed
        diagnostics: list[DiagnosticArray] = []
        client.node.create_subscription(DiagnosticArray, api.DIAGNOSTICS, diagnostics.append, 10)
        assert wait_until(lambda: diagnostics, 10)
        report = {s.name: s for s in diagnostics[-1].status}
        inputs, scene = report["/langscene: inputs"], report["/langscene: scene"]
        assert inputs.level == DiagnosticStatus.WARN and "image" in inputs.message, inputs.message
        assert scene.level == DiagnosticStatus.OK
        assert {kv.key for kv in scene.values} >= {"state", "gaussians", "last query ms"}

        cleared = client.call(Trigger, api.CLEAR_SCENE, Trigger.Request(), timeout_s=30.0)
        assert cleared.success and "cleared" in cleared.message
        assert query("red box").status == Response.NOT_READY
        assert node.poll() is None
    finally:
        client.close()


def test_an_initial_scene_answers_at_once_and_a_missing_one_stops_the_start(node_process, tmp_path):
    config = dataclasses.replace(LangsceneConfig(), models=ModelsConfig(device="cpu"))
    models = load_models(config.models, config.densify)
    world = build_world(parse_spec(SPEC))
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    save_scene(make_scene(world, models), scenes / "table")
    for name, scene in (("good.yaml", "table"), ("missing.yaml", "kitchen")):
        node = dataclasses.replace(config.node, scene_dir=str(scenes), initial_scene=scene)
        (tmp_path / name).write_text(
            yaml.safe_dump({"langscene": {"ros__parameters": to_dict(dataclasses.replace(config, node=node))}})
        )
    missing = node_process("--params-file", str(tmp_path / "missing.yaml"))
    assert missing.wait(timeout=120) == 2
    assert "node.initial_scene 'kitchen'" in (tmp_path / "node0.log").read_text()
    node_process("--params-file", str(tmp_path / "good.yaml"))
    client = NodeClient("initial_scene_client")
    try:
        request = QueryObject.Request(prompt="red box")
        answer = client.call(QueryObject, api.QUERY_OBJECT, request, timeout_s=120.0)  # no load, no reconstruct
        assert answer.status == Response.FOUND, answer.message
    finally:
        client.close()
