"""Benchmarks `demo_total` (the end-to-end demo, s) and `node_rss_demo` (the node's peak RSS, MB).

Runs `langscene demo --json` in a subprocess, exactly as `make demo` does after setup.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo.json"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "langscene_ros.cli", "demo", "--json", str(out), "--work-dir", tmp],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.is_file():
            print(
                json.dumps(
                    {
                        "bench": "demo_total",
                        "value": None,
                        "unit": "s",
                        "target": 300,
                        "error": (proc.stdout + proc.stderr)[-500:],
                    }
                )
            )
            return
        result = json.loads(out.read_text())
    located = sum(q["located"] for q in result["queries"])  # centre within evaluate.LOCATED_M (2 cm)
    print(
        json.dumps(
            {
                "bench": "demo_total",
                "value": round(wall, 2),
                "unit": "s",
                "target": 300,
                "stages": result["stages"],
                "objects_located": located,
                "queries": len(result["queries"]),
            }
        )
    )
    print(json.dumps({"bench": "node_rss_demo", "value": result["node_peak_rss_mb"], "unit": "MB", "target": 3000}))


if __name__ == "__main__":
    main()
