"""The node's ROS interface in one place: its name, topic and service names, QoS profiles (DESIGN.md 3).

Inputs are relative names (remap them in a launch file); outputs and services are private to the node
(``~/name``; a client reaches them as ``/<node>/<name>``, :func:`node_path`).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

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


def camera_qos(choice: str) -> QoSProfile:
    """The camera inputs' QoS for ``node.camera_qos``: 'sensor_data' (best effort) or 'reliable'."""
    if choice == "sensor_data":
        return qos_profile_sensor_data
    if choice == "reliable":
        return RELIABLE
    raise ValueError(f"node.camera_qos must be 'sensor_data' or 'reliable', got {choice!r}")
