"""`query_roundtrip_200k`: QueryObject round trip over ROS (DDS included) on a 200k-Gaussian scene.

The scene: Gaussians sampled on the surfaces of a synthetic world (bench/query_core.py's
sample_scene), each with the LQC latent of its instance's CLIP feature in rendered views, saved with
save_scene, loaded by a `langscene run` node in another process through ~/load_scene. Each object
is then queried by name repeatedly; the line gives the median round trip and, measured in this
process on the same scene, the split: text relevancy through the code table, query_object stages
(select, cloud, cluster, box, grasps), the open-set check (rivals) and message packing.

The round trips run twice, node and client each in its own process: with Fast DDS's default profile
(``query_roundtrip_200k``, ``..._skip_cloud``) and with config/fastdds_large_messages.xml exported to
both (``query_roundtrip_200k_large_message_profile``, #20).
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

import numpy as np
import torch
from large_messages import PROFILE, dds_env
from query_core import SPEC, sample_scene
from rclpy.serialization import serialize_message
from std_msgs.msg import Header

from langscene.srv import QueryObject, SceneFile
from langscene_core.config import DEFAULT_CONFIG_PATH, load_config
from langscene_core.engine import QueryableScene
from langscene_core.field.gaussians import Gaussians
from langscene_core.language.features import mask_features
from langscene_core.query.answer import TextEmbeddingCache
from langscene_core.query.grasp.gripper import Gripper
from langscene_core.reconstruction.models import load_models
from langscene_core.reconstruction.scene import build_scene, save_scene
from langscene_core.sim import build_world, capture_poses, intrinsics_of, parse_spec, render
from langscene_ros import interface as api
from langscene_ros.client import NodeClient, query_request, stop_process
from langscene_ros.query_response import fill_query_response

REPO = Path(__file__).resolve().parent.parent
REPEATS = 10


def instance_latents(models, views: int = 4) -> torch.Tensor:
    """[1 + O, 3] LQC latent of the table and of each object of the bench world, as a reconstruction
    gets them: CLIP features of instance-mask crops of rendered views (mean over views), compressed."""
    world = build_world(parse_spec(SPEC))
    frames = render(world, intrinsics_of(world.spec.camera), capture_poses(world.spec.camera)[:views])
    count = len(world.spec.objects) + 1
    total = 0
    for frame in frames:
        masks = np.repeat(frame.ids[None], 3, axis=0)  # -1 background, 0 table, k objects: mask ids as they are
        table = mask_features(models.clip, frame.rgb, masks).table[:count]  # level 0 rows = instance ids
        total = total + table
    with torch.no_grad():
        return models.lqc.encode(torch.nn.functional.normalize(total, dim=-1).to(models.device)).cpu()


def build_bench_scene(models, config, count: int):
    """A Scene of ``count`` Gaussians whose latents are those of their instances (instance_latents)."""
    means, normals, owner, names = sample_scene(count)
    latent_of_label = instance_latents(models)
    gaussians = Gaussians.from_points(means, np.full_like(means, 0.5), normals)
    with torch.no_grad():
        gaussians.params["latents"][:] = latent_of_label[torch.from_numpy(owner)][:, None, :]
    info = {"lqc": config.models.lqc.checkpoint, "clip": config.models.clip.weights, "bench": "synthetic"}
    return build_scene(gaussians, models.lqc, config.node.scene_frame, info), names


def in_process_split(scene, models, config, names) -> dict[str, float]:
    """Median ms per stage for the same queries, without ROS, on the scene as the node holds it (a
    QueryableScene with a TextEmbeddingCache kept across queries: relevancy_cached, the query_object
    stages and rivals) and, for relevancy, on one that encodes every phrase afresh."""
    stages: dict[str, list[float]] = {}
    cached = QueryableScene.build(scene, models, config.query, config.grasp, TextEmbeddingCache(models.clip))
    fresh = QueryableScene.build(scene, models, config.query, config.grasp)
    gripper = Gripper.from_config(config.grasp)
    for name in names:
        result = cached.answer(name)
        packed = time.perf_counter()
        fill_query_response(QueryObject.Response(), result, Header(frame_id=scene.frame_id), gripper)
        pack_ms = (time.perf_counter() - packed) * 1000.0
        timings = {"relevancy_cached" if k == "relevancy" else k: v for k, v in result.timings.items()}
        timings["relevancy"] = fresh.answer(name).timings["relevancy"]
        for stage, seconds in {**timings, "pack": pack_ms / 1000.0}.items():
            stages.setdefault(stage, []).append(seconds * 1000.0)
    return {f"{stage}_ms": round(statistics.median(v), 2) for stage, v in stages.items()}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def client_round_trips(path: str, names: list[str]) -> dict:
    """In the client's process: load the scene at ``path`` into the running node, warm up, then time
    each name's query REPEATS times with its relevancy cloud and without (skip_cloud)."""
    client = NodeClient("query_roundtrip_bench")
    try:
        loaded = client.call(SceneFile, api.LOAD_SCENE, SceneFile.Request(path=path), timeout_s=120.0)
        if not loaded.success:
            raise SystemExit(f"query_roundtrip: the node could not load the scene: {loaded.message}")
        client.call(QueryObject, api.QUERY_OBJECT, query_request(names[0]), timeout_s=60.0)  # warm-up
        out = {"round_trips": [], "slim_trips": [], "points": [], "found": 0, "bytes": [], "slim_bytes": []}
        for _ in range(REPEATS):
            for name in names:
                start = time.perf_counter()
                answer = client.call(QueryObject, api.QUERY_OBJECT, query_request(name), timeout_s=60.0)
                out["round_trips"].append((time.perf_counter() - start) * 1000.0)
                out["points"].append(answer.relevancy_cloud.width)
                out["found"] += int(answer.object_extent.x > 0)
                out["bytes"].append(len(serialize_message(answer)))
                start = time.perf_counter()
                slim = client.call(QueryObject, api.QUERY_OBJECT, query_request(name, skip_cloud=True), 60.0)
                out["slim_trips"].append((time.perf_counter() - start) * 1000.0)
                out["slim_bytes"].append(len(serialize_message(slim)))
        return out
    finally:
        client.close()


def round_trips(path: Path, names: list[str], profile: Path | None) -> dict:
    """client_round_trips in a child process against a `langscene run` node in another, both with Fast
    DDS's default profile (None) or the XML ``profile``."""
    env = dds_env(profile)
    env.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    node = subprocess.Popen(
        # answer_cache 0: every round trip does the whole query (repeats would be kept answers)
        [sys.executable, "-m", "langscene_ros.cli", "run", "--ros-args", "-p", f"node.scene_dir:={path.parent}"]
        + ["-p", "query.answer_cache:=0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = subprocess.run(
            [sys.executable, __file__, "--client", str(path), *names],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        stop_process(node)
    if client.returncode != 0:
        last = (client.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"query_roundtrip: the client failed ({profile or 'default profile'}): {last}")
    return json.loads(client.stdout.strip().splitlines()[-1])


def main() -> None:
    torch.set_num_threads(2)
    config = load_config(DEFAULT_CONFIG_PATH)
    models = load_models(config.models, config.densify)
    scene, names = build_bench_scene(models, config, 200_000)
    split = in_process_split(scene, models, config, names)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_scene(scene, Path(tmp) / "bench_scene.ply")
        default = round_trips(path, names, None)
        large = round_trips(path, names, PROFILE)
    print(
        json.dumps(
            {
                "bench": "query_roundtrip_200k",
                "value": _median(default["round_trips"]),
                "unit": "ms",
                "target": 50,
                "max_ms": round(max(default["round_trips"]), 2),
                "queries": len(default["round_trips"]),
                "objects_found_fraction": round(default["found"] / len(default["round_trips"]), 3),
                "median_points": int(statistics.median(default["points"])),
                **split,
                "median_answer_bytes": int(statistics.median(default["bytes"])),
                "dds_profile": "default",
                "note": "split measured in-process on the same scene; wall times on a shared 2-core machine are noisy",
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "query_roundtrip_200k_skip_cloud",
                "value": _median(default["slim_trips"]),
                "unit": "ms",
                "target": 50,
                "max_ms": round(max(default["slim_trips"]), 2),
                "queries": len(default["slim_trips"]),
                "median_answer_bytes": int(statistics.median(default["slim_bytes"])),
                "median_answer_bytes_with_cloud": int(statistics.median(default["bytes"])),
                "dds_profile": "default",
                "note": "the same queries with skip_cloud: the answer without its relevancy cloud",
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "query_roundtrip_200k_large_message_profile",
                "value": _median(large["round_trips"]),
                "unit": "ms",
                "target": 50,
                "max_ms": round(max(large["round_trips"]), 2),
                "queries": len(large["round_trips"]),
                "objects_found_fraction": round(large["found"] / len(large["round_trips"]), 3),
                "median_answer_bytes": int(statistics.median(large["bytes"])),
                "skip_cloud_ms": _median(large["slim_trips"]),
                "default_profile_ms": _median(default["round_trips"]),
                "dds_profile": str(PROFILE.relative_to(REPO)),
                "note": "query_roundtrip_200k's queries, node and client with the large-message profile exported",
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        print(json.dumps(client_round_trips(sys.argv[2], sys.argv[3:])))
    else:
        main()
