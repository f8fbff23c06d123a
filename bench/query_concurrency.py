"""`query_concurrency_20`: 20 planner processes query the node continuously while it reconstructs (#21).

A `langscene run` node in its own process loads a 200k-Gaussian scene (query_roundtrip's bench scene)
through ~/load_scene, is fed keyframes of the bench world (reliable camera QoS) and starts a
reconstruction of them (~/reconstruct). While that runs, CLIENTS client processes each call
~/query_object back to back (every object of the scene by name, in turn) for DURATION_S seconds, and
this process calls ~/reconstruct (answered 'already running' by the control callback group) every
2 s to see whether the services other than queries still answer. The node runs with its default
``query.answer_cache``: the planners repeat the same few prompts, so after the first answer of each
they get kept answers, as polling planners on a robot do. The line: the 99th percentile of
the query round trips (ms) with p50 / p95 / max, how many calls got no answer within 60 s (none may
be lost; a planner re-sends a query unanswered for RESEND_AFTER_S, ``resent`` counts those calls), how many were answered while the reconstruction ran, and the slowest control answer.
``--no-rebuild``: the same without the reconstruction (line ``query_concurrency_20_no_rebuild``).
``--skip-cloud``: the planners ask with ``skip_cloud`` (suffix ``_skip_cloud``), as a planner that wants
the pose and grasps only does: with kept answers most of a round trip is the 200k-point relevancy cloud
serialised, sent and parsed 20 times over on the same 2 cores.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENTS = 20
DURATION_S = 30.0
CALL_TIMEOUT_S = 60.0
RESEND_AFTER_S = 10.0  # a planner re-sends a query unanswered for this long (NodeClient.call)
GAUSSIANS = 200_000
KEYFRAMES = 16
REPO = Path(__file__).resolve().parent.parent


def client_main(duration_s: float, skip_cloud: bool, names: list[str]) -> None:
    """One planner: query ``names`` in turn for ``duration_s``; print one JSON object of its calls."""
    from langscene.srv import QueryObject
    from langscene_ros import interface as api
    from langscene_ros.client import NodeClient, ServiceUnavailable, query_request

    calls = []  # [start (epoch s), round trip ms or None when unanswered, answer success, call index]
    with NodeClient(f"planner_{os.getpid()}") as client:
        end = time.monotonic() + duration_s
        i = 0
        while time.monotonic() < end:
            start, wall = time.perf_counter(), time.time()
            request = query_request(names[i % len(names)], skip_cloud=skip_cloud)
            try:
                answer = client.call(QueryObject, api.QUERY_OBJECT, request, CALL_TIMEOUT_S, RESEND_AFTER_S)
                calls.append([wall, (time.perf_counter() - start) * 1000.0, bool(answer.success), i])
            except ServiceUnavailable:
                calls.append([wall, None, False, i])
            i += 1
    print(json.dumps(calls))


def reconstruction_end_time(statuses) -> float:
    """Epoch seconds of the first status after the reconstruction began that no longer reports it
    (inf while it still runs)."""
    began = next((i for i, s in enumerate(statuses) if s.state == "reconstructing"), None)
    if began is None:
        return float("inf")
    after = next((s for s in statuses[began:] if s.state != "reconstructing"), None)
    return float("inf") if after is None else after.stamp.sec + after.stamp.nanosec * 1e-9


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


def main() -> None:
    import torch
    from query_core import SPEC
    from query_roundtrip import build_bench_scene
    from std_srvs.srv import Trigger

    from langscene.srv import SceneFile
    from langscene_core.config import DEFAULT_CONFIG_PATH, load_config
    from langscene_core.reconstruction.models import load_models
    from langscene_core.reconstruction.scene import save_scene
    from langscene_core.sim import build_world, capture_poses, intrinsics_of, parse_spec, render
    from langscene_ros import interface as api
    from langscene_ros.client import NodeClient, stop_process
    from langscene_ros.player import Player

    rebuild = "--no-rebuild" not in sys.argv
    skip_cloud = "--skip-cloud" in sys.argv
    torch.set_num_threads(2)
    config = load_config(DEFAULT_CONFIG_PATH)
    models = load_models(config.models, config.densify)
    scene, names = build_bench_scene(models, config, GAUSSIANS)
    world = build_world(parse_spec(SPEC))
    frames = render(world, intrinsics_of(world.spec.camera), capture_poses(world.spec.camera)[:KEYFRAMES])
    env = dict(os.environ, ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", str(1 + os.getpid() % 100)))
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    with tempfile.TemporaryDirectory() as tmp:
        path = save_scene(scene, Path(tmp) / "bench_scene.ply")
        node = subprocess.Popen(
            [sys.executable, "-m", "langscene_ros.cli", "run", "--ros-args"]
            + ["-p", f"node.scene_dir:={tmp}", "-p", "node.qos.camera.reliability:=reliable"],
            cwd=REPO,
            env=env,
            stdout=(node_log := open(Path(tmp) / "node.log", "w")),
            stderr=subprocess.STDOUT,
        )
        client = NodeClient("concurrency_bench")
        planners: list[subprocess.Popen] = []
        try:
            loaded = client.call(SceneFile, api.LOAD_SCENE, SceneFile.Request(path=str(path)), timeout_s=120.0)
            if not loaded.success:
                raise SystemExit(f"query_concurrency: the node could not load the scene: {loaded.message}")
            player = Player(client.node)
            if not player.wait_for_subscribers(30.0):
                raise SystemExit("query_concurrency: the node did not subscribe to its camera inputs")
            player.play(iter(frames), rate_hz=5.0)
            deadline = time.monotonic() + 30.0
            while (not client.statuses or client.statuses[-1].keyframes < 2) and time.monotonic() < deadline:
                time.sleep(0.1)
            started = client.call(Trigger, api.RECONSTRUCT, Trigger.Request(), timeout_s=30.0) if rebuild else None
            if started is not None and not started.success:
                raise SystemExit(f"query_concurrency: no reconstruction: {started.message}")
            planners = [
                subprocess.Popen(
                    [sys.executable, __file__, "--client", str(DURATION_S), str(int(skip_cloud)), *names],
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(CLIENTS)
            ]
            control_ms = []
            while any(p.poll() is None for p in planners):
                start = time.perf_counter()
                client.call(Trigger, api.RECONSTRUCT, Trigger.Request(), timeout_s=CALL_TIMEOUT_S)
                control_ms.append((time.perf_counter() - start) * 1000.0)
                time.sleep(2.0)
            calls = [call for p in planners for call in json.loads(p.communicate()[0])]
            reconstruction_end = reconstruction_end_time(client.statuses)
            keyframes = max(s.keyframes for s in client.statuses)
        finally:
            for p in planners:
                if p.poll() is None:
                    p.kill()
            client.close()
            stop_process(node)  # SIGTERM: a clean shutdown exits 0
            node_log.close()
            node_log_lines = (Path(tmp) / "node.log").read_text().splitlines()
            node_log_tail = node_log_lines[-5:] if node.returncode else []
            unsent = [line for line in node_log_lines if "failed to send response" in line]
    answered = [ms for _, ms, *_ in calls if ms is not None]
    print(
        json.dumps(
            {
                "bench": f"query_concurrency_{CLIENTS}"
                + ("" if rebuild else "_no_rebuild")
                + ("_skip_cloud" if skip_cloud else ""),
                "value": round(percentile(answered, 99), 1),
                "unit": "ms",
                "target": 100,
                "p50_ms": round(statistics.median(answered), 1),
                "p95_ms": round(percentile(answered, 95), 1),
                "max_ms": round(max(answered), 1),
                "calls": len(calls),
                "unanswered": len(calls) - len(answered),
                "resent": sum(1 for ms in answered if ms > RESEND_AFTER_S * 1000.0),
                "unanswered_call_indices": sorted(i for _, ms, _, i in calls if ms is None),
                "responses_not_sent": len(unsent),  # rmw could not deliver (the client's reader not matched)
                "responses_not_sent_log": unsent[:3],
                "failed_answers": sum(1 for _, ms, ok, _ in calls if ms is not None and not ok),
                "answered_while_reconstructing": sum(
                    1 for t, ms, *_ in calls if ms is not None and t < reconstruction_end
                ),
                "keyframes_reconstructed": keyframes,
                "control_calls": len(control_ms),
                "control_max_ms": round(max(control_ms), 1) if control_ms else None,
                "gaussians": GAUSSIANS,
                "answer_cache": config.query.answer_cache,
                "skip_cloud": skip_cloud,
                "node_exit_code": node.returncode,
                "node_log_tail": node_log_tail,  # why the node did not exit 0 on SIGTERM
                "clients": CLIENTS,
                "duration_s": DURATION_S,
                "note": "round trips of back-to-back queries from separate processes on a shared 2-core machine",
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--client":  # one planner process (started by main)
        client_main(float(sys.argv[2]), bool(int(sys.argv[3])), sys.argv[4:])
    else:
        main()
