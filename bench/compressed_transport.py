"""Benchmark compressed_keyframe_640x480 (#20): the bytes of one 640x480 RGB-D keyframe on the wire,
raw (Image rgb8 + Image 16UC1) against compressed (CompressedImage jpeg or png + compressedDepth png,
as image_transport's compressed and compressed_depth_image_transport's plugins send them), and the
node's decode time per frame (langscene_ros.convert). The frame is a rendered tabletop view. Prints
one JSON line per colour format; value = compressed bytes / raw bytes."""

import dataclasses
import json
import statistics
import time

import numpy as np

from langscene_core.sim import build_world, capture_poses, intrinsics_of, random_spec, render
from langscene_ros import convert

REPEATS = 20


def main() -> None:
    spec = random_spec(seed=0, count=6)
    spec = dataclasses.replace(spec, camera=dataclasses.replace(spec.camera, width=640, height=480, views=1))
    frame = render(build_world(spec), intrinsics_of(spec.camera), capture_poses(spec.camera))[0]
    depth_mm = np.round(frame.depth * 1000.0).clip(0, 65535).astype(np.uint16)
    raw = len(convert.numpy_to_image(frame.rgb, "rgb8").data) + len(convert.numpy_to_image(depth_mm, "16UC1").data)
    depth = convert.depth_mm_to_compressed(depth_mm)
    assert np.array_equal(
        convert.compressed_depth_to_depth(depth),
        convert.image_to_depth(convert.numpy_to_image(depth_mm, "16UC1")),
        equal_nan=True,
    )
    for kind in convert.COMPRESSED_FORMATS:
        colour = convert.rgb_to_compressed(frame.rgb, kind)
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            convert.compressed_to_rgb(colour)
            convert.compressed_depth_to_depth(depth)
            times.append(time.perf_counter() - start)
        compressed = len(colour.data) + len(depth.data)
        print(
            json.dumps(
                {
                    "bench": f"compressed_keyframe_640x480_{kind}",
                    "value": round(compressed / raw, 4),
                    "unit": "compressed/raw bytes",
                    "raw_bytes": raw,
                    "compressed_bytes": compressed,
                    "colour_bytes": len(colour.data),
                    "depth_bytes": len(depth.data),
                    "decode_ms": round(1000 * statistics.median(times), 2),
                    "repeats": REPEATS,
                    "includes": "colour decode + compressedDepth decode (header check, PNG, mm -> m)",
                }
            )
        )


if __name__ == "__main__":
    main()
