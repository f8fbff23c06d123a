"""Shared fixtures: a private ROS domain per test session and a node running in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def private_ros_domain():
    """A ROS_DOMAIN_ID of our own (0..101 are valid on Linux with default ports), localhost discovery."""
    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    yield


@pytest.fixture
def one_torch_thread():
    """Small models run many times faster on one torch thread than on two contended ones (the two cores
    are shared with the rest of the suite); the previous setting is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def node_with(tmp_path):
    """A function starting the langscene node in this process (a private rclpy context, nothing spun)
    with ``-p`` overrides."""
    import rclpy

    from langscene_ros.node import LangsceneNode

    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []

    def make(*overrides: str):
        args = ["--ros-args", "-p", f"node.scene_dir:={tmp_path}"]
        for override in overrides:
            args += ["-p", override]
        nodes.append(LangsceneNode(context=context, cli_args=args))
        return nodes[-1]

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


@pytest.fixture
def node_process(tmp_path):
    """Start `langscene run` in a subprocess; yields a function that starts it with extra CLI args."""
    processes: list[subprocess.Popen] = []

    def start(*extra_args: str) -> subprocess.Popen:
        log = open(tmp_path / f"node{len(processes)}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "langscene_ros.cli", "run", *extra_args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(proc)
        return proc

    yield start
    from langscene_ros.client import stop_process

    # a node still running when its test ends must shut down cleanly on SIGTERM (exit 0), as under a
    # launch file or systemd; one that ended by itself (a refused start: exit 2) is left as it is
    running = [proc for proc in processes if proc.poll() is None]
    for proc in processes:
        stop_process(proc)
    assert [proc.returncode for proc in running] == [0] * len(running), "a node did not exit cleanly on SIGTERM"


def wait_until(predicate, timeout_s: float = 20.0, period_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return predicate()
