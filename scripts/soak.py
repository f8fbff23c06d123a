"""`make soak`: the engine under a long RGB-D camera stream, its memory and every frame accounted (#21).

A camera orbits a table at ``--rate`` Hz (default 30) with 640x480 colour (rgb8) and depth (16UC1)
images, camera_info and a /tf message per frame (the scene frame -> the camera's frame at the frame's
stamp: the default ``node.pose_source: tf``). Each message goes through the node's own conversions
(langscene_ros.convert, langscene_ros.tf_listener) and into :class:`langscene_core.engine.LangScene`
as the node hands it over, in the order the node takes them, for ``--duration`` seconds (default 600).
DDS itself is not part of this run: what is measured is what the node's process keeps.

Every second the process's resident memory (VmRSS) is sampled. The report (JSON, printed and written
to ``--out``) gives the RSS curve's start, max and end, the frames sent and the rate reached, and the
engine's image accounting (Status.images): every image received is either a keyframe, skipped as
redundant (too_close, blurry), dropped or rejected by reason, or still pending. Exit 1 when an image
is unaccounted for or when the RSS grew by more than ``--max-growth-mb`` over the run's second half
(when memory should be flat: the keyframe buffer is full by then).

The images are textured noise rendered once per orbit step (content does not matter here; sharpness
does, and noise is sharp), the depth a tilted plane 0.5-1.5 m away.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tf2_msgs.msg import TFMessage

from langscene_core.config import DEFAULT_CONFIG_PATH, ModelsConfig, load_config
from langscene_core.engine import LangScene
from langscene_core.geometry.camera import Intrinsics
from langscene_core.reconstruction.models import load_models
from langscene_core.sim.trajectory import orbit_pose
from langscene_ros import convert
from langscene_ros.tf_listener import store_transforms

UNIQUE_FRAMES = 60  # textures reused round the orbit (memory of the source stays fixed)


def rss_mb() -> float:
    """This process's resident set size, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def camera_at(t: float) -> np.ndarray:
    """[4, 4] camera-to-world at ``t`` seconds: 20 degrees/s round the table, elevation 20-50 degrees."""
    return orbit_pose(20.0 * t, 35.0 + 15.0 * np.sin(0.11 * t), 0.9)


def messages(width: int, height: int):
    """UNIQUE_FRAMES (Image rgb8, Image 16UC1) pairs and the CameraInfo of a 60-degree camera."""
    rng = np.random.default_rng(0)
    intrinsics = Intrinsics.from_hfov(width, height, 60.0)
    rows = np.linspace(500.0, 1500.0, height, dtype=np.float32)[:, None]
    depth_mm = np.broadcast_to(rows, (height, width)).astype(np.uint16)
    frames = [
        (
            convert.numpy_to_image(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), "rgb8"),
            convert.numpy_to_image(depth_mm, "16UC1"),
        )
        for _ in range(UNIQUE_FRAMES)
    ]
    return frames, convert.intrinsics_to_camera_info(intrinsics)


def run(duration_s: float, rate_hz: float, width: int, height: int) -> dict:
    config = load_config(DEFAULT_CONFIG_PATH)
    config = dataclasses.replace(config, models=ModelsConfig(device="cpu"))
    engine = LangScene(config, load_models(config.models, config.densify))
    scene_frame = config.node.scene_frame
    frames, info = messages(width, height)
    samples: list[tuple[float, float]] = []  # (seconds since start, RSS MiB)
    sent = 0
    done = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append((time.monotonic() - start, rss_mb()))

    def stream() -> None:
        nonlocal sent
        period = 1.0 / rate_hz
        i = 0
        while time.monotonic() - start < duration_s:
            t = i * period
            rgb_msg, depth_msg = frames[i % UNIQUE_FRAMES]
            # the node's order of work per message: convert, then hand over
            engine.set_intrinsics(convert.camera_info_to_intrinsics(info))
            stamp = convert.seconds_to_stamp(t)
            t = convert.stamp_to_seconds(stamp)  # as the node reads every header's stamp
            pose = convert.matrix_to_transform_stamped(camera_at(t), scene_frame, "camera", stamp)
            store_transforms(engine.transforms, TFMessage(transforms=[pose]), static=False)
            engine.transforms_updated()
            engine.add_depth(t, convert.image_to_depth(depth_msg))
            engine.add_image(t, convert.image_to_rgb(rgb_msg), "camera")
            sent += 1
            i += 1
            delay = start + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    samples.append((0.0, rss_mb()))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stream()
    elapsed = time.monotonic() - start
    done.set()
    sampler.join()
    samples.append((elapsed, rss_mb()))

    status = engine.status()
    images = status.images
    accounted = sum(v for k, v in images.items() if k != "received")
    second_half = [mb for t, mb in samples if t >= elapsed / 2]
    return {
        "duration_s": round(elapsed, 1),
        "frames_sent": sent,
        "rate_hz": round(sent / elapsed, 1),
        "target_rate_hz": rate_hz,
        "image_size": [width, height],
        "rss_mb": {
            "start": round(samples[0][1], 1),
            "max": round(max(mb for _, mb in samples), 1),
            "end": round(samples[-1][1], 1),
            "second_half_growth": round(second_half[-1] - second_half[0], 1),
        },
        "rss_curve_mb": [[round(t, 1), round(mb, 1)] for t, mb in samples],
        "images": images,
        "all_accounted": images.get("received", 0) == sent == accounted,
        "keyframes": status.keyframes,
        "rejected": status.rejected,
        "dropped": status.dropped,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of stream (default 600)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--max-growth-mb", type=float, default=50.0, help="allowed RSS growth over the second half")
    parser.add_argument("--out", type=Path, default=Path("build/soak.json"))
    args = parser.parse_args(argv)
    report = run(args.duration, args.rate, *args.size)
    report["max_growth_mb"] = args.max_growth_mb
    report["ok"] = report["all_accounted"] and report["rss_mb"]["second_half_growth"] <= args.max_growth_mb
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    summary = {k: v for k, v in report.items() if k != "rss_curve_mb"}
    print(json.dumps(summary))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
