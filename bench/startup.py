"""Start-up benchmarks. `cli_startup`: `langscene --help` in a fresh process, median s of RUNS runs
(the commands import torch and open3d inside run(), not while the parser is built)."""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 7


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


def main() -> None:
    print(json.dumps(cli_startup()), flush=True)


if __name__ == "__main__":
    main()
