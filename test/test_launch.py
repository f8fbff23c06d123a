"""The launch file cannot run here (no `launch` package in the pip ROS 2): check its structure instead."""

import ast
from pathlib import Path

from langscene_core.config import DEFAULT_CONFIG_PATH
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
    node_src = (Path(__file__).resolve().parent.parent / "langscene_ros" / "node.py").read_text()
    for topic in topics:
        assert f'"{topic}"' in node_src, f"the node does not subscribe to {topic}"
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert {"params_file", "namespace"} <= declared
    keywords = {
        kw.arg: kw.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Node"
        for kw in node.keywords
    }
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
