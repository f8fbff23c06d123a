"""The node's ROS interface in one place: its name, topic and service names, QoS profiles (DESIGN.md 3).

Inputs are relative names (remap them in a launch file); outputs and services are private to the node
(``~/name``; a client reaches them as ``/<node>/<name>``, :func:`node_path`).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from langscene_core.config import InputQos, OutputQos

NODE_NAME = "langscene"

# inputs (relative)
IMAGE = "image"
CAMERA_INFO = "camera_info"
DEPTH = "depth"
CAMERA_POSE = "camera_pose"

# outputs (private)
STATUS = "status"
SCENE_CLOUD = "scene_cloud"
RELEVANCY_CLOUD = "relevancy_cloud"
GRASPS = "grasps"
MARKERS = "markers"

# services (private)
QUERY_OBJECT = "query_object"
RECONSTRUCT = "reconstruct"
RESET = "reset"
CLEAR_SCENE = "clear_scene"
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray, the robot-wide topic
RECONSTRUCT_SCENE = "reconstruct_scene"  # action langscene/action/Reconstruct
SAVE_SCENE = "save_scene"
LOAD_SCENE = "load_scene"

# the latest message kept for late subscribers (status, scene cloud)
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def service_qos(depth: int) -> QoSProfile:
    """QoS of the node's services: rclpy's default keeps the last 10 requests, so when more clients
    call at once than a callback drains, the oldest requests are overwritten unanswered (10 of 20
    planners' calls were lost that way in bench/query_concurrency.py). ``depth``: node.service_queue_depth."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def private(name: str) -> str:
    """The node-private name of a topic or service, as the node creates it (``~/name``)."""
    return f"~/{name}"


def node_path(name: str, node: str = f"/{NODE_NAME}") -> str:
    """The fully qualified name of the node's private topic or service ``name`` (``/langscene/name``)."""
    return f"{node.rstrip('/')}/{name}"


def input_qos(qos: InputQos) -> QoSProfile:
    """The QoS of a group of the node's subscriptions (``node.qos.camera``, ``node.qos.pose``): keep
    last ``depth``, volatile, ``reliability``; the defaults (best_effort, 5) are rclpy's
    ``qos_profile_sensor_data``."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=qos.depth,
        reliability=ReliabilityPolicy[qos.reliability.upper()],
        durability=DurabilityPolicy.VOLATILE,
    )


def output_qos(qos: OutputQos) -> QoSProfile:
    """The QoS of a group of the node's publishers (``node.qos.scene_cloud``, ``.markers``,
    ``.relevancy_cloud``): reliable (which best-effort subscribers match too), keep last ``depth``,
    ``durability``; the default OutputQos is :data:`LATCHED`."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=qos.depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy[qos.durability.upper()],
    )
