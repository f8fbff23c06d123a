"""node.qos.* (#20): the node's subscriptions and publishers get the configured QoS, as the ROS graph
reports them and as their rclpy objects hold them (the graph does not carry history depth)."""

import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy, qos_profile_sensor_data

from langscene_core.config import InputQos, OutputQos, StreamOutputQos
from langscene_ros import interface as api

pytestmark = pytest.mark.ros

RELIABLE, BEST_EFFORT = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
VOLATILE, TRANSIENT_LOCAL = DurabilityPolicy.VOLATILE, DurabilityPolicy.TRANSIENT_LOCAL


def _policies(profile) -> tuple:
    return profile.reliability, profile.durability, profile.history, profile.depth


def test_default_groups_keep_the_profiles_the_node_had():
    """Defaults: inputs rclpy's sensor-data profile (the former node.camera_qos sensor_data), the scene
    cloud and the last answer's markers latched (depth 1), the relevancy cloud reliable volatile 10."""
    assert _policies(api.input_qos(InputQos())) == _policies(qos_profile_sensor_data)
    assert _policies(api.output_qos(OutputQos())) == _policies(api.LATCHED)
    assert _policies(api.output_qos(StreamOutputQos())) == (RELIABLE, VOLATILE, HistoryPolicy.KEEP_LAST, 10)


def test_subscriptions_and_publishers_get_the_configured_qos(node_with):
    node = node_with(
        "node.pose_source:=topic",
        "node.image_transport:=compressed",
        "node.qos.camera.reliability:=reliable",
        "node.qos.camera.depth:=7",
        "node.qos.pose.depth:=20",
        "node.qos.scene_cloud.durability:=volatile",
        "node.qos.scene_cloud.depth:=2",
        "node.qos.markers.durability:=volatile",
        "node.qos.markers.depth:=3",
        "node.qos.relevancy_cloud.durability:=transient_local",
        "node.qos.relevancy_cloud.depth:=1",
    )
    expected_inputs = {
        "/image/compressed": (RELIABLE, VOLATILE, 7),
        "/camera_info": (RELIABLE, VOLATILE, 7),
        "/depth": (RELIABLE, VOLATILE, 7),
        "/camera_pose": (BEST_EFFORT, VOLATILE, 20),
    }
    expected_outputs = {
        "/langscene/scene_cloud": (RELIABLE, VOLATILE, 2),
        "/langscene/markers": (RELIABLE, VOLATILE, 3),
        "/langscene/grasps": (RELIABLE, VOLATILE, 3),
        "/langscene/relevancy_cloud": (RELIABLE, TRANSIENT_LOCAL, 1),
        "/langscene/status": (RELIABLE, TRANSIENT_LOCAL, 1),  # contract: not configurable
    }
    held = {s.topic_name: s.qos_profile for s in node.subscriptions}
    held.update({p.topic_name: p.qos_profile for p in node.publishers})
    for topic, (reliability, durability, depth) in {**expected_inputs, **expected_outputs}.items():
        assert _policies(held[topic]) == (reliability, durability, HistoryPolicy.KEEP_LAST, depth), topic
    # what other participants see (the graph has no depth)
    for topic, (reliability, durability, _) in expected_inputs.items():
        (info,) = node.get_subscriptions_info_by_topic(topic)
        assert (info.qos_profile.reliability, info.qos_profile.durability) == (reliability, durability), topic
    for topic, (reliability, durability, _) in expected_outputs.items():
        (info,) = node.get_publishers_info_by_topic(topic)
        assert (info.qos_profile.reliability, info.qos_profile.durability) == (reliability, durability), topic


def test_defaults_and_bad_values(node_with):
    node = node_with("node.pose_source:=topic")
    (image,) = node.get_subscriptions_info_by_topic("/image")
    assert image.qos_profile.reliability == BEST_EFFORT
    (markers,) = node.get_publishers_info_by_topic("/langscene/markers")
    assert markers.qos_profile.durability == TRANSIENT_LOCAL
    from langscene_core.config import ConfigError

    with pytest.raises(ConfigError, match="node.qos.camera.depth"):
        node_with("node.qos.camera.depth:=0")
    with pytest.raises(
        ConfigError, match="node.qos.markers.durability: 'latched' is not one of: volatile, transient_local"
    ):
        node_with("node.qos.markers.durability:=latched")
    with pytest.raises(ConfigError, match="unknown setting 'node.camera_qos'; replaced by node.qos.camera.reliability"):
        node_with("node.camera_qos:=reliable")
