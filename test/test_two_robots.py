"""Two robots on one ROS domain (#20): two `langscene run` processes in /robot1 and /robot2, each with
its own scene (node.scene_dir + node.initial_scene), each answering only about its own objects."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_until
from world_scene import SPEC, make_scene

from langscene.srv import QueryObject
from langscene_core.config import LangsceneConfig
from langscene_core.engine import LangScene
from langscene_core.reconstruction.scene import save_scene
from langscene_core.sim import build_world, parse_spec
from langscene_ros import interface as api
from langscene_ros.client import NodeClient, query_request

pytestmark = [pytest.mark.ros, pytest.mark.slow]

# robot2's table: the bundled tiny models answer "orange cone" on it and nothing for "red box"
SPEC2 = {
    "objects": [
        {"name": n, "shape": s, "color": c, "size": 0.07, "position": [-0.3 + 0.15 * i, 0.1 * (i % 2)]}
        for i, (n, s, c) in enumerate(
            [
                ("green ball", "ball", "green"),
                ("blue box", "box", "blue"),
                ("yellow cylinder", "cylinder", "yellow"),
                ("red mug", "mug", "red"),
                ("orange cone", "cone", "orange"),
            ]
        )
    ]
}


def test_each_namespaced_node_answers_about_its_own_scene(tmp_path, node_process):
    models = LangScene(LangsceneConfig()).load_models()
    worlds = {"robot1": build_world(parse_spec(SPEC)), "robot2": build_world(parse_spec(SPEC2))}
    for robot, world in worlds.items():
        (tmp_path / robot).mkdir()
        save_scene(make_scene(world, models), tmp_path / robot / "scene.ply")
        node_process(
            "--namespace",
            robot,
            "--ros-args",
            "-p",
            f"node.scene_dir:={tmp_path / robot}",
            "-p",
            "node.initial_scene:=scene",
        )
    own = {"robot1": "red box", "robot2": "orange cone"}
    clients = {robot: NodeClient(f"{robot}_client", target=f"/{robot}/{api.NODE_NAME}") for robot in worlds}
    try:
        for robot, client in clients.items():
            assert wait_until(lambda c=client: c.statuses and c.statuses[-1].state == "ready", 180), robot
            for prompt in own.values():
                answer = client.call(QueryObject, api.QUERY_OBJECT, query_request(prompt), timeout_s=60)
                assert answer.success, (robot, prompt, answer.message)
                if prompt == own[robot]:
                    assert answer.status == QueryObject.Response.FOUND, (robot, prompt, answer.message)
                    p = answer.object_pose.pose.position
                    truth = worlds[robot].meshes[worlds[robot].instance_id(prompt)].get_axis_aligned_bounding_box()
                    assert np.linalg.norm(np.array([p.x, p.y, p.z]) - truth.get_center()) < 0.02, (robot, prompt)
                else:
                    assert answer.status == QueryObject.Response.NO_OBJECT, (robot, prompt, answer.message)
    finally:
        for client in clients.values():
            client.close()
