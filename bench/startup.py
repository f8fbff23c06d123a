"""Start-up benchmarks.

`cli_startup`: `langscene --help` in a fresh process, median s of RUNS runs (the commands import torch
and open3d inside run(), not while the parser is built).

`node_ready_s`: from the start of a `langscene run` process (default configuration) to the node's
models being loaded, as its latched ``~/status`` reports it: the stamp of the first status whose
message says "models loaded", minus the wall-clock time just before the process was started (median
of a few starts; target 5 s). The node loads its models at start, so this is also how long a planner
waits before the node can reconstruct or load a scene.

Prints one JSON object per line (DESIGN.md section 7).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 7
MODELS_LOADED = "models loaded"  # how the engine's status message begins once the models are loaded


def cli_startup() -> dict:
    """`langscene --help` from process start to exit, as `make demo` starts the CLI."""
    seconds = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "langscene_ros.cli", "--help"], cwd=REPO, check=True, stdout=subprocess.DEVNULL
        )
        seconds.append(time.perf_counter() - start)
    return {
        "bench": "cli_startup",
        "value": round(statistics.median(seconds), 3),
        "unit": "s",
        "target": 0.5,
        "runs": RUNS,
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
    }


def node_ready(repeats: int = 3, timeout_s: float = 120.0) -> dict:
    """The `node_ready_s` line: ``repeats`` starts of `langscene run`, each stopped once ready."""
    from langscene_ros.client import NodeClient, stop_process

    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    client = NodeClient("startup_bench")  # discovery of the node, not of this client, is in the time
    seconds, reported = [], []
    try:
        for _ in range(repeats):
            client.statuses.clear()
            start = time.time()  # the status stamp is the node's wall clock (ROS time, system clock)
            node = subprocess.Popen(
                [sys.executable, "-m", "langscene_ros.cli", "run"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + timeout_s
                ready = []
                while not ready and time.monotonic() < deadline and node.poll() is None:
                    time.sleep(0.05)
                    ready = [s for s in list(client.statuses) if s.message.startswith(MODELS_LOADED)]
                if not ready:
                    raise SystemExit(f"node_ready: no '{MODELS_LOADED}' status within {timeout_s:.0f} s")
                first = min(ready, key=lambda s: (s.stamp.sec, s.stamp.nanosec))
                seconds.append(first.stamp.sec + first.stamp.nanosec * 1e-9 - start)
                reported.append(float(first.message.split()[3]))  # "models loaded in X s; ..."
            finally:
                stop_process(node)
    finally:
        client.close()
    return {
        "bench": "node_ready_s",
        "value": round(statistics.median(seconds), 2),
        "unit": "s",
        "target": 5.0,
        "max_s": round(max(seconds), 2),
        "load_models_s": round(statistics.median(reported), 2),
        "starts": len(seconds),
        "note": "process start to the status saying the models are loaded (default config, bundled models); "
        "load_models_s: the load itself as the node reports it; the rest is imports and ROS start-up",
    }


def main() -> None:
    print(json.dumps(cli_startup()), flush=True)
    print(json.dumps(node_ready()), flush=True)


if __name__ == "__main__":
    main()
