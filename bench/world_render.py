"""Benchmark world_render_24_views (DESIGN.md section 7): build a 6-object world and ray-cast 24 capture
views at 160x120 (RGB, depth, normals, ids, shadows). Prints one JSON line; value = median seconds."""

import json
import statistics
import time

from langscene_core.sim import build_world, capture_poses, intrinsics_of, random_spec, render

TARGET_S = 10.0
REPEATS = 5


def main() -> None:
    spec = random_spec(seed=0, count=6)
    times, build_times = [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        world = build_world(spec)
        built = time.perf_counter()
        frames = render(world, intrinsics_of(spec.camera), capture_poses(spec.camera))
        end = time.perf_counter()
        times.append(end - start)
        build_times.append(built - start)
    print(
        json.dumps(
            {
                "bench": "world_render_24_views",
                "value": round(statistics.median(times), 4),
                "unit": "s",
                "target": TARGET_S,
                "views": len(frames),
                "width": spec.camera.width,
                "height": spec.camera.height,
                "objects": len(spec.objects),
                "build_s": round(statistics.median(build_times), 4),
                "repeats": REPEATS,
                "includes": "world build + render of all views",
            }
        )
    )


if __name__ == "__main__":
    main()
