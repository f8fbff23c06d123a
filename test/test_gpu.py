"""CUDA paths against their CPU twins (marked cuda; they skip without a GPU). scripts/gpu_check.sh runs them
on the GPU machine; on a workstation with a GPU: ``pytest -m cuda test/test_gpu.py``.

1. ``rasterize`` through gsplat (CUDA) against the CPU compositor on the rasteriser bench's 10k-Gaussian
   scene: values and gradients within 1e-4 (gradients relative to each parameter's largest).
2. The demo scene reconstructed on CUDA and on the CPU (config/demo.yaml): every object the CPU run finds
   is found on CUDA, its centre at most 1.5 cm farther from the true one (measured on an H200, see
   docs/gpu_results.json: CUDA centres 0.5-2 mm from the CPU's, the mug's 1.1 cm: 150 steps leave it
   10 mm off on CUDA, 1 mm on the CPU; with the default budget all four are within 4 mm). Needs open3d (world and queries), so it skips on
   the GPU machine of this project, where scripts/gpu_check.py's ``grade`` does the same from the
   carried keyframes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rasterize_cuda_matches_cpu_compositor():
    check = _gpu_check()
    bench = check._rasterizer_scene()
    params, viewmats, Ks = bench.scene()
    cpu = check._forward_backward(params, viewmats, Ks, bench.WIDTH, bench.HEIGHT)
    gpu = check._forward_backward([p.cuda() for p in params], viewmats.cuda(), Ks.cuda(), bench.WIDTH, bench.HEIGHT)
    errors = check._errors(*gpu, *cpu)
    assert errors["max_value_error"] <= 1e-4, errors
    assert max(errors["max_relative_grad_error"].values()) <= 1e-4, errors


@pytest.mark.slow
def test_demo_reconstruction_cuda_matches_cpu():
    pytest.importorskip("open3d", reason="the world and the queries need open3d")
    check = _gpu_check()
    from langscene_core.eval.evaluate import mode_keyframes
    from langscene_core.sim import build_world, render_dataset
    from langscene_core.sim.spec import load_spec

    world = build_world(load_spec(check.DEMO_SPEC))
    config = check._config(check.DEMO_PARAMS, "cpu")
    keyframes = mode_keyframes(render_dataset(world), "dense", config.keyframe)
    answers = {}
    for device in ("cpu", "cuda"):
        scene, _ = check._reconstruct(keyframes, check.DEMO_PARAMS, device)
        answers[device] = check._answers(world, scene.means, scene.colors, scene.normals, scene.codes, config)
    for name, cpu in answers["cpu"].items():
        if cpu["centre"] is None:
            continue
        cuda = answers["cuda"][name]
        assert cuda["centre"] is not None, f"{name}: found on the CPU, not on CUDA"
        assert cuda["center_error_m"] <= cpu["center_error_m"] + 0.015, (name, cuda, cpu)
