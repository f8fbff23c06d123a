"""Benchmarks the transform buffer (``tf_lookup_chain4``, ``tf_store``, microseconds per call).

A 4-edge chain map -> odom -> base_link -> tool -> camera_optical (three dynamic edges with 10 s of
history at 100 Hz, one static), looked up at random stamps between samples (interpolated), as the
synchronizer does once per image; and storing one /tf sample (translation + quaternion). Target:
well under a 30 Hz image period per lookup on a loaded CPU.
"""

import json
import time

import numpy as np
from scipy.spatial.transform import Rotation

from langscene_core.geometry.transforms import TransformBuffer


def main() -> None:
    rng = np.random.default_rng(0)
    stamps = np.arange(0.0, 10.0, 0.01)
    samples = [
        (parent, child, t, rng.normal(size=3), Rotation.random(random_state=rng).as_quat())
        for t in stamps
        for parent, child in (("map", "odom"), ("odom", "base_link"), ("base_link", "tool"))
    ]
    buffer = TransformBuffer(cache_s=10.0)
    buffer.set_transform("tool", "camera_optical", 0.0, np.eye(4), static=True)
    start = time.perf_counter()
    for parent, child, t, translation, quaternion in samples:
        buffer.set_transform(parent, child, t, translation=translation, quaternion=quaternion)
    store_us = (time.perf_counter() - start) / len(samples) * 1e6
    queries = rng.uniform(stamps[0], stamps[-1], 2000)
    start = time.perf_counter()
    for t in queries:
        buffer.lookup("map", "camera_optical", float(t))
    lookup_us = (time.perf_counter() - start) / len(queries) * 1e6
    print(json.dumps({"bench": "tf_lookup_chain4", "value": round(lookup_us, 1), "unit": "us", "target": 1000}))
    print(json.dumps({"bench": "tf_store", "value": round(store_us, 1), "unit": "us", "target": 200}))


if __name__ == "__main__":
    main()
