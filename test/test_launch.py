"""The launch file cannot run here (no `launch` package in the pip ROS 2): check its structure instead."""

import ast
from pathlib import Path

from langscene_core.config import DEFAULT_CONFIG_PATH
from langscene_ros import interface as api
from langscene_ros.cli import build_parser
from langscene_ros.commands.run import ros_arguments

LAUNCH = Path(__file__).resolve().parent.parent / "launch" / "scene.launch.py"


def launch_tree():
    return ast.parse(LAUNCH.read_text())


def test_launch_file_parses_and_defines_generate_launch_description():
    names = {node.name for node in ast.walk(launch_tree()) if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in names


def test_launch_arguments_match_the_node_inputs_and_cli():
    tree = launch_tree()
    topics = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INPUT_TOPICS"
    )
    assert set(topics) == {"image", "camera_info", "depth", "camera_pose"}
    assert set(topics) == {api.IMAGE, api.CAMERA_INFO, api.DEPTH, api.CAMERA_POSE}  # the node's input names
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert {"params_file", "namespace", "rviz"} <= declared
    keywords = next(
        {kw.arg: kw.value for kw in node.keywords}
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "Node"
        and any(kw.arg == "package" and ast.literal_eval(kw.value) == "langscene" for kw in node.keywords)
    )
    assert ast.literal_eval(keywords["package"]) == "langscene" and ast.literal_eval(keywords["name"]) == "langscene"
    assert ast.literal_eval(keywords["arguments"]) == ["run"]  # the executable is the CLI; `run` starts the node


def test_cli_run_builds_the_same_ros_arguments_as_the_launch_file():
    args = build_parser().parse_args(["run", "--namespace", "robot", "--remap", "image:=/cam/image"])
    assert ros_arguments(DEFAULT_CONFIG_PATH, args.namespace, args.remap) == [
        "--params-file",
        str(DEFAULT_CONFIG_PATH),
        "-r",
        "__ns:=/robot",
        "-r",
        "image:=/cam/image",
    ]


def test_rviz_config_shows_what_the_node_publishes():
    """Every display of config/langscene.rviz names a topic the node publishes, with the matching message
    type and durability (a latched topic read as volatile would miss the last answer)."""
    import yaml

    rviz = yaml.safe_load((LAUNCH.parent.parent / "config" / "langscene.rviz").read_text())
    shown = {
        d["Topic"]["Value"]: (d["Class"].split("/")[1], d["Topic"]["Durability Policy"])
        for d in rviz["Visualization Manager"]["Displays"]
        if "Topic" in d
    }
    published = {  # the node's publishers (langscene_ros/node.py) as seen from /langscene
        api.node_path(api.SCENE_CLOUD): ("PointCloud2", "Transient Local"),
        api.node_path(api.RELEVANCY_CLOUD): ("PointCloud2", "Volatile"),
        api.node_path(api.MARKERS): ("MarkerArray", "Transient Local"),
        api.node_path(api.GRASPS): ("PoseArray", "Transient Local"),
    }
    assert shown == published
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "map"  # node.scene_frame default
