"""The node's parameter declarations (langscene_ros.params) on an in-process rclpy node."""

from pathlib import Path

import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from langscene_core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    InputQos,
    LangsceneConfig,
    describe_settings,
    load_config,
)
from langscene_ros import params

pytestmark = pytest.mark.ros

DEMO_PARAMS = str(Path(__file__).resolve().parent.parent / "config" / "demo.yaml")


@pytest.fixture
def make_node():
    """A function making a node named ``langscene`` (the parameter files' key) with extra ROS arguments,
    in a private rclpy context."""
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(*ros_args: str) -> Node:
        nodes.append(Node("langscene", context=context, cli_args=["--ros-args", *ros_args] if ros_args else None))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def test_every_setting_is_declared_with_its_descriptor(make_node):
    node = make_node()
    config = params.declare_and_read(node)
    assert config == LangsceneConfig() and config.node.pose_source == "tf"
    infos = describe_settings()
    descriptors = dict(zip(infos, node.describe_parameters(list(infos))))
    assert [name for name, d in descriptors.items() if not d.description.strip()] == []
    assert all(d.read_only for name, d in descriptors.items() if name.startswith(("models.", "node.", "field.")))
    assert not any(d.read_only for name, d in descriptors.items() if name.startswith(("query.", "grasp.")))

    threshold = descriptors["query.relevancy_threshold"].floating_point_range[0]
    assert (threshold.from_value, threshold.to_value) == (0.0, 1.0)
    assert descriptors["field.sh_degree"].integer_range[0].from_value == 0
    assert descriptors["field.sh_degree"].integer_range[0].to_value == 4
    assert descriptors["grasp.gripper_max_width"].additional_constraints == "> 0"
    assert descriptors["densify.mode"].additional_constraints == "one of: off, trimap, auto"
    assert descriptors["node.qos.camera.reliability"].additional_constraints == "one of: best_effort, reliable"
    assert descriptors["node.qos.markers.depth"].integer_range[0].from_value == 1


def test_ros_refuses_what_the_descriptors_forbid(make_node):
    node = make_node()
    params.declare_and_read(node)
    (read_only,) = node.set_parameters([Parameter("models.device", value="cpu")])
    assert not read_only.successful and "read-only" in read_only.reason
    (out_of_range,) = node.set_parameters([Parameter("query.relevancy_threshold", value=1.5)])
    assert not out_of_range.successful and "out of range" in out_of_range.reason
    (live,) = node.set_parameters([Parameter("query.relevancy_threshold", value=0.6)])
    assert live.successful


def test_a_parameter_file_reads_like_load_config(make_node):
    node = make_node("--params-file", DEMO_PARAMS)
    assert params.declare_and_read(node) == load_config(DEMO_PARAMS)


def test_flow_mappings_of_langscene_yaml_read_alike(make_node, tmp_path):
    """config/langscene.yaml writes the node.qos groups as YAML flow mappings: rcl's parser and
    load_config read them alike (a changed group, so defaults cannot pass for it)."""
    text = DEFAULT_CONFIG_PATH.read_text()
    assert "camera: {reliability: best_effort, depth: 5}" in text
    path = tmp_path / "langscene.yaml"
    path.write_text(
        text.replace("camera: {reliability: best_effort, depth: 5}", "camera: {reliability: reliable, depth: 4}")
    )
    config = params.declare_and_read(make_node("--params-file", str(path)))
    assert config == load_config(path) and config.node.qos.camera == InputQos("reliable", 4)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("densify:\n      mode: trimapp", r"bad parameter: densify.mode: 'trimapp' is not one of: off, trimap, auto"),
        (
            "node:\n      qos:\n        pose:\n          reliability: best",
            r"bad parameter: node.qos.pose.reliability: 'best' is not one of: best_effort, reliable",
        ),
        ("query:\n      relevancy_threshold: 1.5", r"bad parameter: .*query.relevancy_threshold.* out of range"),
        (
            "grasp:\n      gripper_max_width: 0.0",
            r"bad parameter: grasp.gripper_max_width: 0.0 is out of range: expected > 0",
        ),
        ("node:\n      auto_reconstruct: true", r"bad parameter: unknown setting 'node.auto_reconstruct'"),
        (
            "node:\n      pose_source: odometry",
            r"bad parameter: node.pose_source: 'odometry' is not one of: tf, topic",
        ),
    ],
)
def test_a_bad_parameter_file_is_refused_naming_the_key(make_node, tmp_path, body, message):
    path = tmp_path / "params.yaml"
    path.write_text(f"langscene:\n  ros__parameters:\n    {body}\n")
    with pytest.raises(ConfigError, match=message):
        params.declare_and_read(make_node("--params-file", str(path)))
