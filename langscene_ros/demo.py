"""End-to-end demo over ROS: a synthetic tabletop is rendered, played into a `langscene run` node in a
separate process, reconstructed, and every object is queried by name; answers are checked against the
world's truth (object centre, grasp validity with the world's grasp checker).

JSON output (DESIGN.md section 8): ``{"total_s", "stages": {name: s}, "queries": [{"prompt",
"success", "points", "max_relevancy", "center_error_m", "grasps", "grasps_valid", "best_grasp_valid",
"message"}],
"node_peak_rss_mb"}``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from langscene_core.config import GraspConfig, load_config
from langscene_core.eval.evaluate import grade_object
from langscene_core.sim import World, build_world, render_dataset
from langscene_core.sim.spec import WorldSpec


class DemoError(RuntimeError):
    """The demo could not run to the end (the node died, a service never appeared...)."""


@dataclass
class StageClock:
    """Seconds spent per named stage, in order."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        print(f"[demo] {name} ...", flush=True)
        yield
        self.stages[name] = round(time.perf_counter() - start, 3)
        print(f"[demo] {name} done in {self.stages[name]:.1f} s", flush=True)


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set size of a live process (VmHWM), MB; None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def grade_answer(world: World, prompt: str, response, grasp: GraspConfig) -> dict:
    """The demo's JSON record of one QueryObject answer, with errors measured against the world
    (:func:`langscene_core.eval.evaluate.grade_object`; "located": within its ``LOCATED_M``). A prompt
    naming no object of the world is graded by "absent_answered": an object was returned all the same."""
    from langscene_ros.client import query_response_to_dict
    from langscene_ros.convert import pose_to_matrix

    answer = query_response_to_dict(response)
    record = {
        "prompt": prompt,
        "success": answer["success"],
        "message": answer["message"],
        "points": answer["points"],
        "max_relevancy": answer["max_relevancy"],
        "center_error_m": None,
        "located": False,
        "grasps": len(answer["grasps"]),
        "grasps_valid": 0,
        "best_grasp_valid": None,
    }
    names = {o.name for o in world.spec.objects}
    if prompt not in names:
        record["absent_answered"] = "object" in answer
    if prompt in names and "object" in answer:
        record.update(
            grade_object(
                world,
                prompt,
                answer["object"]["position"],
                [(pose_to_matrix(g.pose.pose), float(g.width)) for g in response.grasps],
                grasp,
            )
        )
    return record


def wait_for_state(client, states: set[str], timeout_s: float, node: subprocess.Popen) -> str:
    """Poll the node's latched status until its state is in ``states``; returns that state."""
    deadline = time.monotonic() + timeout_s
    last_progress = -1.0
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise DemoError(f"the node exited with code {node.returncode}")
        if client.statuses:
            status = client.statuses[-1]
            if status.state in states:
                return status.state
            if status.progress >= last_progress + 0.1:
                last_progress = status.progress
                print(f"[demo]   {status.state} {100 * status.progress:.0f}%: {status.message}", flush=True)
        time.sleep(0.2)
    raise DemoError(f"the node did not reach {sorted(states)} within {timeout_s:.0f} s")


def run_demo(
    spec: WorldSpec,
    params_file: Path,
    work_dir: Path,
    extra_prompts: list[str],
    rate_hz: float = 10.0,
    reconstruct_timeout_s: float = 600.0,
) -> dict:
    """Run the whole demo; returns the JSON-ready result. Raises DemoError when a stage cannot finish."""
    from std_srvs.srv import Trigger

    from langscene.srv import QueryObject, SceneFile
    from langscene_ros import interface as api
    from langscene_ros.client import NodeClient, query_request, stop_process
    from langscene_ros.player import Player

    config = load_config(params_file)
    clock = StageClock()
    start = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    with clock.stage("world"):
        world = build_world(spec)
        dataset = render_dataset(world)

    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    log_path = work_dir / "node.log"
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "langscene_ros.cli", "run", "--params-file", str(params_file)]
            + ["--ros-args", "-p", f"node.scene_dir:={work_dir.resolve()}"],  # the demo saves its scene there
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    client = NodeClient("langscene_demo")
    try:
        with clock.stage("node_start"):
            player = Player(client.node, scene_frame=config.node.scene_frame)
            # importing torch and the models takes 20 s on 2 idle cores, over 60 s at load 15
            if not player.wait_for_subscribers(180.0):
                raise DemoError(f"the node did not subscribe to its inputs within 180 s (log: {log_path})")
        with clock.stage("capture"):
            sent = player.play(iter(dataset.capture), rate_hz)
            time.sleep(1.5)  # the last frames reach the node; status is published once a second
            status = client.statuses[-1] if client.statuses else None
            print(
                f"[demo]   sent {sent} frames; node: {status.keyframes if status else '?'} keyframes "
                f"({status.message if status else 'no status'})",
                flush=True,
            )
        with clock.stage("reconstruct"):
            answer = client.call(Trigger, api.RECONSTRUCT, Trigger.Request(), timeout_s=30.0)
            print(f"[demo]   ~/reconstruct: success={answer.success} {answer.message}", flush=True)
            if answer.success:
                state = wait_for_state(client, {"ready", "error"}, reconstruct_timeout_s, node)
                print(f"[demo]   state {state}: {client.statuses[-1].message}", flush=True)
                if state == "ready":
                    saved = client.call(SceneFile, api.SAVE_SCENE, SceneFile.Request(path="scene"))
                    print(f"[demo]   ~/save_scene: {saved.message}", flush=True)
        queries = []
        with clock.stage("queries"):
            for prompt in dict.fromkeys([o.name for o in spec.objects] + list(extra_prompts)):  # each once
                response = client.call(QueryObject, api.QUERY_OBJECT, query_request(prompt), timeout_s=60.0)
                record = grade_answer(world, prompt, response, config.grasp)
                queries.append(record)
                print(f"[demo]   {format_record(record)}", flush=True)
        rss = peak_rss_mb(node.pid)
    finally:
        client.close()
        stop_process(node)
    return {
        "total_s": round(time.perf_counter() - start, 3),
        "stages": clock.stages,
        "queries": queries,
        "node_peak_rss_mb": rss,
    }


def format_record(record: dict) -> str:
    """One line per query for the terminal."""
    if not record["success"]:
        return f"{record['prompt']!r}: no answer ({record['message']})"
    centre = "" if record["center_error_m"] is None else f", centre error {100 * record['center_error_m']:.1f} cm"
    return (
        f"{record['prompt']!r}: {record['points']} points, max relevancy {record['max_relevancy']:.2f}{centre}, "
        f"{record['grasps']} grasps ({record['grasps_valid']} valid)"
    )
