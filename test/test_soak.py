"""The 60 s version of `make soak` (scripts/soak.py): a 30 Hz 640x480 RGB-D stream into the engine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_minute_of_30hz_rgbd_keeps_memory_flat_and_accounts_for_every_image(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--duration", "60", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    report = json.loads(out.read_text())
    assert run.returncode == 0, run.stdout + run.stderr
    images = report["images"]
    assert images["received"] == report["frames_sent"] > 0
    assert images["received"] == sum(n for kind, n in images.items() if kind != "received")
    # the camera keeps moving, so the buffer fills (64 keyframes) and later views are judged and counted
    assert images["accepted"] == 64 and images["full"] > 0 and images["too_close"] > 0
    # memory: the keyframes, the depth history and the pending images, then flat
    assert report["rss_mb"]["second_half_growth"] <= report["max_growth_mb"]
    assert report["rss_mb"]["max"] - report["rss_mb"]["start"] < 400
