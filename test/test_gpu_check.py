"""scripts/gpu_check.py on the CPU: its open3d k-NN stand-in agrees with open3d, and its ``run`` (quick
sizes) records every step, running what needs no CUDA and skipping the rest with a reason."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_knn_shim_matches_open3d(gpu_check):
    points = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    reference = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(points))
    reference.knn_index()
    ref_idx, ref_sq = reference.knn_search(o3d.core.Tensor(points), 6)
    shim = gpu_check._NearestNeighborSearch(gpu_check._KnnTensor(points))
    shim.knn_index()
    idx, sq = shim.knn_search(gpu_check._KnnTensor(points), 6)
    assert idx.numpy().dtype == np.int64 and sq.numpy().dtype == np.float32
    np.testing.assert_array_equal(idx.numpy(), ref_idx.numpy())
    np.testing.assert_allclose(sq.numpy(), ref_sq.numpy(), rtol=1e-5, atol=1e-7)


def test_stand_ins_stay_out_when_the_packages_are_installed(gpu_check):
    assert gpu_check.install_stand_ins() == []
    assert sys.modules["open3d"] is o3d


def test_absent_module_says_what_is_missing(gpu_check):
    module = gpu_check._absent_module("pycolmap", "no SfM here")
    with pytest.raises(ModuleNotFoundError, match="pycolmap is not installed here"):
        module.incremental_mapping  # noqa: B018 - the access is what raises


@pytest.mark.slow  # ViT-B-16 and the tiny TriMap on 2 cores: 2-3 min
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback; with CUDA the full run is the check")
def test_run_without_cuda_records_every_step(gpu_check, tmp_path, one_torch_thread):
    work = tmp_path / "inputs"
    work.mkdir()
    rgb = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)  # no keyframes: demo skips
    np.savez_compressed(work / "inputs.npz", view640_rgb=rgb, count=np.array(0))
    failed = gpu_check.run(work, tmp_path / "out", budget_s=600.0, quick=True)
    records = {r["step"]: r for r in map(json.loads, (tmp_path / "out" / gpu_check.RESULTS).read_text().splitlines())}
    assert failed == 0, records
    assert list(records) == [
        "env",
        "clip_crops",
        "lqc_search",
        "trimap_5b",
        "gsplat_compile",
        "rasterize",
        "demo_reconstruct",
        "pytest_cuda",
    ]
    assert records["clip_crops"]["status"] == "ok" and records["clip_crops"]["crops"] == 8
    assert records["trimap_5b"]["status"] == "ok" and records["trimap_5b"]["runs"]["none"]["per_step_s"] > 0
    assert records["rasterize"]["cpu_fwd_bwd_s"] > 0 and "no CUDA" in records["rasterize"]["reason"]
    for step in ("gsplat_compile", "demo_reconstruct", "pytest_cuda", "lqc_search"):
        assert records[step]["status"] == "skipped" and "no CUDA" in records[step]["reason"], records[step]
