"""GPU paths checked in one prepared run (issue 26): gsplat against the CPU compositor, the demo scene's
reconstruction on CUDA, the TriMap pipeline at CogVideoX-5B size, CLIP mask crops and the LQC code search.

Three subcommands, run in this order (``scripts/gpu_check.sh`` wraps ``run`` for the device machine):

``prepare --work DIR`` (a machine with open3d, the CPU): renders the demo scene's keyframes (as the demo
    picks them: every capture frame offered to a KeyframeBuffer) and one 640x480 view of it into
    ``DIR/inputs.npz``, reconstructs the demo on the CPU (config/demo.yaml) and writes its answers (one per
    object: the box centre, its error against the true mesh) to ``DIR/cpu_reference.json``.
``run --work DIR --out OUT`` (the GPU machine; on a CPU it runs what needs no CUDA and skips the rest
    with the reason): one JSON object per step in ``OUT/gpu_check.jsonl`` (``step``, ``status`` ok | failed
    | skipped, ``seconds``, the step's numbers), the CUDA scenes in ``OUT/demo_scenes_cuda.npz``. It
    needs neither open3d nor pycolmap (too big to carry): the field imports open3d only for its k-nearest-
    neighbour search, which scipy's exact cKDTree stands in for, and the TriMap package imports pycolmap
    for SfM, which the check never runs (:func:`install_stand_ins`).
``grade --work DIR --out OUT`` (with open3d again): answers every object's prompt on the CUDA scenes and
    appends ``demo_answers`` lines: each centre's error against the truth and against the CPU answer.

Steps of ``run`` (CUDA ones run while gsplat compiles its kernels in a subprocess, timed apart):
``env``, ``gsplat_compile``, ``clip_crops``, ``lqc_search``, ``trimap_5b``, ``rasterize``,
``demo_reconstruct``, ``pytest_cuda``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DEMO_SPEC = REPO / "config" / "demo_scene.json"
DEMO_PARAMS = REPO / "config" / "demo.yaml"
DEFAULT_PARAMS = REPO / "config" / "langscene.yaml"
RESULTS = "gpu_check.jsonl"
SCENES = "demo_scenes_cuda.npz"
GSPLAT_ALPHA_MAX = 0.999  # gsplat 1.5's clamp of one Gaussian's alpha (RasterizeToPixels3DGS*.cu)

# CogVideoX-5B (I2V) sizes: the transformer and the VAE of the real checkpoint; TinyTrimapConfig's fields.
COGVIDEOX_5B = dict(
    latent_channels=16,
    vae_channels=(128, 256, 256, 512),
    vae_layers_per_block=3,
    temporal_compression=4,
    heads=48,
    head_dim=64,
    layers=42,
    text_dim=4096,
    text_tokens=226,
    time_embed_dim=512,
    sample_height=480,
    sample_width=720,
    condition="keyframes",
)
# T5-XXL's encoder (CogVideoX's text encoder, 4.7B parameters) for transformers.T5Config.
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64)
T5_XXL_FEED_FORWARD = "gated-gelu"


# ----------------------------------------------------------------------------------------- stand-ins
class _KnnTensor:
    """The slice of ``open3d.core.Tensor`` that ``field.gaussians.knn`` uses: a wrapped array."""

    def __init__(self, array) -> None:
        self._array = np.asarray(array)

    def numpy(self) -> np.ndarray:
        return self._array


class _NearestNeighborSearch:
    """``open3d.core.nns.NearestNeighborSearch``'s exact k-NN (knn_index, knn_search) by scipy's cKDTree:
    indices int64 and squared distances float32, nearest first (the point itself first for its own query)."""

    def __init__(self, points: _KnnTensor) -> None:
        self._points = points.numpy()
        self._tree = None

    def knn_index(self) -> bool:
        import scipy.spatial

        self._tree = scipy.spatial.cKDTree(self._points.astype(np.float64))
        return True

    def knn_search(self, queries: _KnnTensor, k: int) -> tuple[_KnnTensor, _KnnTensor]:
        if self._tree is None:
            raise RuntimeError("knn_index() first")
        dist, idx = self._tree.query(queries.numpy().astype(np.float64), k=k)
        return _KnnTensor(idx.reshape(-1, k).astype(np.int64)), _KnnTensor(
            (dist.reshape(-1, k) ** 2).astype(np.float32)
        )


def _absent_module(name: str, why: str) -> types.ModuleType:
    """A placeholder module: importing it works, using any of its names raises ModuleNotFoundError."""

    def missing(attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise ModuleNotFoundError(f"{name} is not installed here ({why}); {name}.{attribute} is unavailable")

    module = types.ModuleType(name)
    module.__getattr__ = missing
    return module


def install_stand_ins() -> list[str]:
    """Stand-ins for the packages the GPU machine lacks and cannot be carried (over the 64 MB a run
    carries), registered only when missing; returns the names stood in.

    - ``open3d`` (a 100 MB wheel): only ``core.Tensor`` and ``core.nns.NearestNeighborSearch`` (scipy's
      exact cKDTree), enough to import and train the field (``field.gaussians.knn``); anything else
      raises AttributeError.
    - ``pycolmap`` (40 MB): importing ``langscene_core.trimap`` imports ``trimap.poses`` (SfM of
      generated frames), which the pipeline check never calls; using it raises ModuleNotFoundError.
    """
    installed = []
    if importlib.util.find_spec("open3d") is None:
        o3d = types.ModuleType("open3d")
        o3d.__doc__ = "scripts/gpu_check.py's stand-in: k-NN only (scipy cKDTree)"
        o3d.core = types.SimpleNamespace(
            Tensor=_KnnTensor, nns=types.SimpleNamespace(NearestNeighborSearch=_NearestNeighborSearch)
        )
        sys.modules["open3d"] = o3d
        installed.append("open3d (k-NN only)")
    if importlib.util.find_spec("pycolmap") is None:
        sys.modules["pycolmap"] = _absent_module("pycolmap", "the GPU check needs no SfM")
        installed.append("pycolmap (absent)")
    return installed


# ----------------------------------------------------------------------------------------- helpers
def _cuda() -> bool:
    return torch.cuda.is_available()


def _sync() -> None:
    if _cuda():
        torch.cuda.synchronize()


def _timed(fn: Callable, *args, **kwargs):
    """(result, seconds) with CUDA synchronised before and after."""
    _sync()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    _sync()
    return result, time.perf_counter() - start


def _gib(nbytes: int) -> float:
    return round(nbytes / 2**30, 2)


class Recorder:
    """Appends one JSON object per step to ``out/gpu_check.jsonl`` (and prints it)."""

    def __init__(self, out: Path, deadline: float) -> None:
        self.path = out / RESULTS
        self.deadline = deadline
        out.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        line = json.dumps(record, default=float)
        with open(self.path, "a") as f:
            f.write(line + "\n")
        print(line, flush=True)

    def step(self, name: str, fn: Callable[[], dict], needs_s: float = 0.0) -> dict:
        """Run one step; its dict (``status`` skipped with a ``reason``, or its numbers) is recorded with
        the wall time. An exception is recorded as failed with the traceback's tail; the run goes on."""
        left = self.deadline - time.monotonic()
        if left < needs_s:
            record = {
                "step": name,
                "status": "skipped",
                "reason": f"{left:.0f} s left of the run, needs ~{needs_s:.0f}",
            }
            self.write(record)
            return record
        start = time.perf_counter()
        try:
            result = fn()
            record = {"step": name, "status": result.pop("status", "ok"), **result}
        except Exception as exc:  # a failing step must not stop the others: the run is paid for
            record = {"step": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
            record["traceback"] = traceback.format_exc()[-3000:]
        record["seconds"] = round(time.perf_counter() - start, 3)
        if _cuda():
            torch.cuda.empty_cache()
        self.write(record)
        return record


def _skip(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


# ----------------------------------------------------------------------------------------- steps
def step_env() -> dict:
    versions = {}
    for name in (
        "torch",
        "gsplat",
        "diffusers",
        "open_clip",
        "transformers",
        "accelerate",
        "numpy",
        "scipy",
        "skimage",
    ):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except Exception as exc:  # noqa: BLE001 - a missing package is what this step reports
            versions[name] = f"missing ({type(exc).__name__})"
    record = {
        "python": sys.version.split()[0],
        "versions": versions,
        "cuda_available": _cuda(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if _cuda():
        props = torch.cuda.get_device_properties(0)
        record.update(
            gpu=props.name,
            gpu_memory_gib=_gib(props.total_memory),
            capability=f"{props.major}.{props.minor}",
            torch_cuda=torch.version.cuda,
        )
    return record


def start_gsplat_compile(out: Path) -> subprocess.Popen | None:
    """gsplat compiles its CUDA kernels on first use (torch JIT, ninja): start that in a subprocess so
    that the GPU steps run meanwhile. Its log goes to ``out/gsplat_build.log``."""
    if not _cuda():
        return None
    code = (
        "import json, time; t = time.perf_counter(); from gsplat.cuda._backend import _C; "
        "print(json.dumps({'compiled': _C is not None, 'seconds': round(time.perf_counter() - t, 1)}))"
    )
    env = dict(os.environ, MAX_JOBS=os.environ.get("MAX_JOBS", str(os.cpu_count() or 8)), VERBOSE="1")
    log = open(out / "gsplat_build.log", "w")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, env=env)


def step_gsplat_compile(proc: subprocess.Popen | None, out: Path, started: float, wait_s: float) -> dict:
    """Waits at most ``wait_s`` for the compiling subprocess (then kills it: failed)."""
    if proc is None:
        return _skip("no CUDA: gsplat's kernels are only compiled for a GPU")
    try:
        proc.wait(timeout=max(wait_s, 1.0))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    lines = (out / "gsplat_build.log").read_text().splitlines()
    result = next((json.loads(line) for line in reversed(lines) if line.startswith("{")), {})
    record = {
        "exit_code": proc.returncode,
        "compiled": bool(result.get("compiled")),
        "compile_s": result.get("seconds"),
        "wall_since_start_s": round(time.perf_counter() - started, 1),
        "max_jobs": os.environ.get("MAX_JOBS", str(os.cpu_count())),
        "note": "ran beside clip_crops, lqc_search and trimap_5b (GPU steps using one core)",
    }
    if not record["compiled"]:
        record["status"] = "failed"
        record["log_tail"] = "\n".join(lines[-40:])
    return record


def _rasterizer_scene():
    """The CPU rasteriser bench's 10k-Gaussian scene (bench/rasterizer.py), one definition."""
    spec = importlib.util.spec_from_file_location("bench_rasterizer", REPO / "bench" / "rasterizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _forward_backward(params, viewmats, Ks, width, height):
    """The bench's loss (colour sum + squared sum + alpha sum) through ``rasterize``: image [1, H, W, 4]
    (colours, alpha) and each parameter's gradient, on the CPU."""
    from langscene_core.field.rasterize import rasterize

    leaves = [p.clone().requires_grad_(True) for p in params]
    colors, alphas = rasterize(*leaves, viewmats, Ks, width, height)[:2]
    (colors.sum() + (colors**2).sum() + alphas.sum()).backward()
    return torch.cat([colors, alphas], -1).detach().cpu(), [leaf.grad.cpu() for leaf in leaves]


def _errors(image, grads, ref_image, ref_grads) -> dict:
    names = ("means", "quats", "scales", "opacities", "colors")
    return {
        "max_value_error": (image - ref_image).abs().max().item(),
        "max_relative_grad_error": {
            n: ((g - r).abs().max() / r.abs().max().clamp_min(1e-12)).item() for n, g, r in zip(names, grads, ref_grads)
        },
    }


def step_rasterize(repeats: int) -> dict:
    """gsplat (CUDA) against the CPU compositor on the bench's 10k scene at 160x120: values, gradients,
    times. Also an opaque variant (opacities 0.9-1) where the alpha clamp binds: the CPU compositor is
    compared with its own ALPHA_MAX and with gsplat's 0.999."""
    import langscene_core.field.composite as composite

    bench = _rasterizer_scene()
    params, viewmats, Ks = bench.scene()
    w, h = bench.WIDTH, bench.HEIGHT
    opaque = list(params)
    opaque[3] = torch.rand(bench.N, generator=torch.Generator().manual_seed(1)) * 0.1 + 0.9
    record: dict = {"gaussians": bench.N, "size": [w, h], "cpu_alpha_max": composite.ALPHA_MAX, "target": 1e-4}
    torch.set_num_threads(min(os.cpu_count() or 1, 16))
    _forward_backward(params, viewmats, Ks, w, h)  # warm-up
    times = [_timed(_forward_backward, params, viewmats, Ks, w, h)[1] for _ in range(repeats)]
    record["cpu_fwd_bwd_s"] = round(statistics.median(times), 4)
    record["cpu_threads"] = torch.get_num_threads()
    if not _cuda():
        record.update(status="skipped", reason="no CUDA: CPU compositor timed only")
        return record
    to_cuda = lambda ps: [p.cuda() for p in ps]
    (_, first_s) = _timed(_forward_backward, to_cuda(params), viewmats.cuda(), Ks.cuda(), w, h)
    record["gsplat_first_call_s"] = round(first_s, 4)  # kernels already compiled: module load + CUDA init
    gpu_times = [_timed(_forward_backward, to_cuda(params), viewmats.cuda(), Ks.cuda(), w, h)[1] for _ in range(20)]
    record["gsplat_fwd_bwd_s"] = round(statistics.median(gpu_times), 5)
    for name, scene_params in (("translucent", params), ("opaque", opaque)):
        gpu = _forward_backward(to_cuda(scene_params), viewmats.cuda(), Ks.cuda(), w, h)
        for alpha_max in (composite.ALPHA_MAX, GSPLAT_ALPHA_MAX):
            saved = composite.ALPHA_MAX
            composite.ALPHA_MAX = alpha_max
            try:
                cpu = _forward_backward(scene_params, viewmats, Ks, w, h)
            finally:
                composite.ALPHA_MAX = saved
            record[f"{name}_cpu_alpha_max_{alpha_max}"] = _errors(*gpu, *cpu)
    main = record[f"translucent_cpu_alpha_max_{composite.ALPHA_MAX}"]
    record["meets_target"] = main["max_value_error"] <= 1e-4 and max(main["max_relative_grad_error"].values()) <= 1e-4
    return record


def step_clip_crops(inputs: dict, max_crops: int | None) -> dict:
    """A random ViT-B-16 (open_clip's config) on the mask crops of the demo scene's 640x480 view: crops
    per second of the image encoder, and the whole mask_features call (crops made on the CPU)."""
    import open_clip

    from langscene_core.config import MasksConfig
    from langscene_core.language.clip import build_clip, encode_images
    from langscene_core.language.features import mask_crops, mask_features
    from langscene_core.language.masks import make_mask_mapper

    device = "cuda" if _cuda() else "cpu"
    clip, build_s = _timed(build_clip, open_clip.get_model_config("ViT-B-16"), device)
    rgb = inputs["view640_rgb"]
    masks, masks_s = _timed(make_mask_mapper(MasksConfig()), rgb)
    crops = torch.cat([mask_crops(rgb, labels, clip.image_size) for labels in masks])
    if max_crops is not None:
        crops = crops[:max_crops]
    encode_images(clip, crops[:32])  # warm-up (cuDNN / kernels)
    times = [_timed(encode_images, clip, crops, 32)[1] for _ in range(3)]
    record = {
        "device": device,
        "image": list(rgb.shape[:2]),
        "masks_per_level": [int(m.max()) + 1 for m in masks],
        "crops": int(crops.shape[0]),
        "encode_crops_per_s": round(crops.shape[0] / statistics.median(times), 1),
        "batch_size": 32,
        "felzenszwalb_masks_s": round(masks_s, 3),
        "build_model_s": round(build_s, 2),
    }
    if max_crops is None:
        _, total_s = _timed(mask_features, clip, rgb, masks, 32)
        record["mask_features_s"] = round(total_s, 3)  # crops (CPU) + unique + encode
    return record


def step_lqc_search(count: int) -> dict:
    """The LQC's nearest-code search (real sizes, random weights) for ``count`` latents: CUDA (chunked
    cdist) against the CPU's exact cKDTree, the codes' agreement and times."""
    from langscene_core.config import LqcTrainConfig
    from langscene_core.language.lqc import LQC

    torch.manual_seed(0)
    model = LQC(LqcTrainConfig()).eval()
    with torch.no_grad():
        model.codebook.uniform_(-1, 1)
    z = torch.rand(count, model.config.latent_dim) * 2 - 1
    cpu_codes, cpu_s = _timed(model.nearest, z)
    record = {"latents": count, "codebook": model.config.codebook_size, "cpu_kdtree_s": round(cpu_s, 4)}
    if not _cuda():
        record.update(status="skipped", reason="no CUDA: CPU search timed only")
        return record
    gpu_model, z_gpu = model.cuda(), z.cuda()
    gpu_model.nearest(z_gpu[:1000])  # warm-up
    gpu_codes, gpu_s = _timed(gpu_model.nearest, z_gpu)
    gpu_codes = gpu_codes.cpu()
    differ = gpu_codes != cpu_codes
    book = model.codebook.detach().cpu()
    # a differing code is a tie when both codes are equally near (float32 cdist vs float64 k-d tree)
    gap = ((z[differ] - book[gpu_codes[differ]]).norm(dim=1) - (z[differ] - book[cpu_codes[differ]]).norm(dim=1)).abs()
    record.update(
        cuda_cdist_s=round(gpu_s, 5),
        speedup=round(cpu_s / gpu_s, 1),
        codes_equal_fraction=1.0 - differ.float().mean().item(),
        differing=int(differ.sum()),
        differing_max_distance_gap=gap.max().item() if len(gap) else 0.0,
    )
    return record


def _trimap_pipeline(sizes: dict, text_encoder_config: dict | None):
    """A TrimapPipeline of ``sizes`` (TinyTrimapConfig fields) with random weights, built on the current
    default device; the text encoder replaced by a T5 encoder of ``text_encoder_config`` when given."""
    from langscene_core.trimap.loading import TinyTrimapConfig, build_tiny_pipeline

    pipe = build_tiny_pipeline(TinyTrimapConfig(**sizes))
    if text_encoder_config is not None:
        from transformers import T5Config, T5EncoderModel

        config = T5Config(**text_encoder_config, feed_forward_proj=T5_XXL_FEED_FORWARD)
        pipe.register_modules(text_encoder=T5EncoderModel(config).eval())
    return pipe


class _StepTimer:
    """Wraps a module's forward to time each call (CUDA synchronised): per-step transformer times, VAE
    encode / decode times. Installed after offload hooks, so a call's time includes their transfers."""

    def __init__(self, module: torch.nn.Module, method: str) -> None:
        self.times: list[float] = []
        original = getattr(module, method)
        self.restore = lambda: setattr(module, method, original)

        def timed(*args, **kwargs):
            _sync()
            start = time.perf_counter()
            result = original(*args, **kwargs)
            _sync()
            self.times.append(time.perf_counter() - start)
            return result

        setattr(module, method, timed)


def step_trimap(frames: int, height: int, width: int, steps: int, offloads: tuple[str, ...], big: bool) -> dict:
    """The TriMap pipeline with CogVideoX-5B-sized transformer and VAE (and T5-XXL text encoder), random
    bf16 weights created on the GPU; one generation of ``frames`` frames at ``height`` x ``width`` with
    ``steps`` denoising steps (classifier-free guidance) per offload mode: time per step (median of the
    steps after the first), extrapolated to 50 steps, VAE encode / decode times and peak memory.
    ``big`` False (the CPU): the tiny model, to exercise this code."""
    from accelerate.hooks import remove_hook_from_module

    device = torch.device("cuda" if _cuda() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    sizes = COGVIDEOX_5B if big else {}
    with torch.device(device):
        pipe, build_s = _timed(_trimap_pipeline, sizes, T5_XXL if big else None)
    pipe.to(dtype)
    pipe.set_progress_bar_config(disable=True)
    count = lambda m: sum(p.numel() for p in m.parameters())
    record: dict = {
        "device": device.type,
        "dtype": str(dtype).replace("torch.", ""),
        "transformer_params": count(pipe.transformer),
        "vae_params": count(pipe.vae),
        "text_encoder_params": count(pipe.text_encoder),
        "frames": frames,
        "size": [height, width],
        "steps": steps,
        "guidance": 6.0,
        "build_on_device_s": round(build_s, 2),
        "runs": {},
    }
    generator = torch.Generator().manual_seed(0)
    first, last = torch.rand(3, height, width, generator=generator), torch.rand(3, height, width, generator=generator)
    for offload in offloads:
        if offload != "none" and device.type != "cuda":
            record["runs"][offload] = "skipped: offload needs CUDA"
            continue
        for model in (pipe.text_encoder, pipe.transformer, pipe.vae):
            remove_hook_from_module(model, recurse=True)
        if offload == "none":
            pipe.to(device)
        elif offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
        # tiled VAE decoding (models.trimap.vae_tiling) with offload: the low-memory setup; off (the default)
        # without. Only at CogVideoX size: the tiny VAE's latents come out a cell larger when tiled.
        tiling = big and offload != "none"
        if tiling:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()
        timers = {
            "transformer": _StepTimer(pipe.transformer, "forward"),
            "vae_encode": _StepTimer(pipe.vae, "encode"),
            "vae_decode": _StepTimer(pipe.vae, "decode"),
            "text_encoder": _StepTimer(pipe.text_encoder, "forward"),
        }
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        _, total_s = _timed(
            pipe, first, last, num_frames=frames, num_inference_steps=steps, guidance_scale=6.0, generator=generator
        )
        step_times = timers["transformer"].times
        per_step = statistics.median(step_times[1:] if len(step_times) > 1 else step_times)
        rest = total_s - sum(step_times)
        run = {
            "vae_tiling": tiling,
            "total_s": round(total_s, 2),
            "step_s": [round(t, 3) for t in step_times],
            "per_step_s": round(per_step, 3),
            "vae_encode_s": round(sum(timers["vae_encode"].times), 3),
            "vae_decode_s": round(sum(timers["vae_decode"].times), 3),
            "text_encoder_s": round(sum(timers["text_encoder"].times), 3),
            "extrapolated_50_steps_s": round(rest + step_times[0] + per_step * 49, 1),
        }
        if device.type == "cuda":
            run["peak_memory_gib"] = _gib(torch.cuda.max_memory_allocated())
        record["runs"][offload] = run
        for timer in timers.values():  # unwrap: the next mode installs its own hooks
            timer.restore()
    if device.type == "cuda":
        tflop = _transformer_tflop(pipe, frames, height, width)
        record["tflop_per_step_estimate"] = round(tflop, 1)
        if isinstance(record["runs"].get("none"), dict):
            record["achieved_tflop_per_s"] = round(tflop / record["runs"]["none"]["per_step_s"])
    return record


def _transformer_tflop(pipe, frames: int, height: int, width: int) -> float:
    """Rough matmul work (TFLOP) of one guided transformer step, batch 2: per sample 2 x params x tokens
    plus attention's 4 x layers x tokens^2 x width."""
    config = pipe.transformer.config
    tokens = pipe.latent_frames(frames) * (height // 16) * (width // 16) + config.max_text_seq_length
    params = sum(p.numel() for p in pipe.transformer.parameters())
    width_ = config.num_attention_heads * config.attention_head_dim
    return 2 * (2 * params * tokens + 4 * config.num_layers * tokens**2 * width_) / 1e12


def _save_keyframes(path: Path, keyframes, view640) -> None:
    arrays = {"view640_rgb": view640.rgb, "count": np.array(len(keyframes))}
    for i, f in enumerate(keyframes):
        k = f.intrinsics
        arrays[f"kf{i}_rgb"] = f.rgb
        arrays[f"kf{i}_depth"] = f.depth.astype(np.float32)
        arrays[f"kf{i}_pose"] = f.cam_to_world
        arrays[f"kf{i}_intrinsics"] = np.array([k.fx, k.fy, k.cx, k.cy, k.width, k.height], dtype=np.float64)
        arrays[f"kf{i}_stamp"] = np.array(f.stamp)
    np.savez_compressed(path, **arrays)


def load_inputs(work: Path) -> dict:
    """``prepare``'s arrays: {"keyframes": [Frame], "view640_rgb": [480, 640, 3] uint8}."""
    from langscene_core.capture.frames import Frame
    from langscene_core.geometry.camera import Intrinsics

    data = np.load(work / "inputs.npz")
    keyframes = []
    for i in range(int(data["count"])):
        fx, fy, cx, cy, w, h = data[f"kf{i}_intrinsics"]
        keyframes.append(
            Frame(
                stamp=float(data[f"kf{i}_stamp"]),
                rgb=data[f"kf{i}_rgb"],
                intrinsics=Intrinsics(fx, fy, cx, cy, int(w), int(h)),
                cam_to_world=data[f"kf{i}_pose"],
                depth=data[f"kf{i}_depth"],
            )
        )
    return {"keyframes": keyframes, "view640_rgb": data["view640_rgb"]}


def _config(params_file: Path, device: str):
    from langscene_core.config import load_config

    config = load_config(params_file)
    return replace(config, models=replace(config.models, device=device))


def _reconstruct(keyframes, params_file: Path, device: str) -> tuple[object, dict]:
    """(scene, timings) of one reconstruction; timings: load, total, and per progress message kind."""
    from langscene_core.reconstruction.models import load_models
    from langscene_core.reconstruction.reconstruct import reconstruct

    config = _config(params_file, device)
    models, load_s = _timed(load_models, config.models, config.densify)
    marks: list[tuple[float, str]] = []
    progress = lambda fraction, message: marks.append((time.perf_counter(), message))
    start = time.perf_counter()
    scene, total_s = _timed(reconstruct, keyframes, models, config, progress)
    stages: dict[str, float] = {}
    previous = start
    for stamp, message in marks:  # time from the previous mark to this one, by the message's first 2 words
        kind = " ".join(message.split()[:2])
        stages[kind] = stages.get(kind, 0.0) + stamp - previous
        previous = stamp
    timings = {
        "load_models_s": round(load_s, 2),
        "reconstruct_s": round(total_s, 2),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "gaussians": scene.num_gaussians,
        "field_steps": [config.field.geometry_steps, config.field.language_steps],
    }
    return scene, timings


def step_demo_reconstruct(inputs: dict, out: Path) -> dict:
    """The demo scene's reconstruction with models.device cuda (bundled models): config/demo.yaml's
    budget (the CPU reference's) and config/langscene.yaml's default field budget. Scenes saved for
    ``grade``."""
    if not _cuda():
        return _skip("no CUDA: the CPU reconstruction is prepare's reference")
    keyframes = inputs["keyframes"]
    record: dict = {"keyframes": len(keyframes)}
    arrays = {}
    for name, params in (("demo", DEMO_PARAMS), ("default", DEFAULT_PARAMS)):
        scene, timings = _reconstruct(keyframes, params, "cuda")
        record[name] = timings
        for key in ("means", "colors", "normals", "codes"):
            arrays[f"{name}_{key}"] = getattr(scene, key)
    np.savez_compressed(out / SCENES, **arrays)
    return record


def step_pytest(out: Path) -> dict:
    """The tests marked cuda (test/test_gpu.py), in a subprocess; its log in ``out/pytest_cuda.log``."""
    if not _cuda():
        return _skip("no CUDA: the tests marked cuda skip themselves")
    log = out / "pytest_cuda.log"
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "test/test_gpu.py"]
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    lines = log.read_text().splitlines()
    return {"status": "ok" if proc.returncode == 0 else "failed", "exit_code": proc.returncode, "summary": lines[-6:]}


# ----------------------------------------------------------------------------------------- subcommands
def prepare(work: Path) -> None:
    """Keyframes and a 640x480 view of the demo scene, and the CPU reconstruction's answers."""
    from langscene_core.eval.evaluate import mode_keyframes
    from langscene_core.sim import build_world, render_dataset
    from langscene_core.sim.render import intrinsics_of, render
    from langscene_core.sim.spec import load_spec
    from langscene_core.sim.trajectory import capture_poses

    work.mkdir(parents=True, exist_ok=True)
    spec = load_spec(DEMO_SPEC)
    config = _config(DEMO_PARAMS, "cpu")
    world = build_world(spec)
    keyframes = mode_keyframes(render_dataset(world), "dense", config.keyframe)
    camera640 = replace(spec.camera, width=640, height=480)
    view640 = render(world, intrinsics_of(camera640), capture_poses(camera640)[0])[0]
    _save_keyframes(work / "inputs.npz", keyframes, view640)
    scene, timings = _reconstruct(load_inputs(work)["keyframes"], DEMO_PARAMS, "cpu")
    answers = _answers(world, scene.means, scene.colors, scene.normals, scene.codes, config)
    reference = {"params": str(DEMO_PARAMS.relative_to(REPO)), "torch_threads": torch.get_num_threads(), **timings}
    (work / "cpu_reference.json").write_text(json.dumps({**reference, "answers": answers}, indent=1))
    print(json.dumps({"prepared": str(work), "keyframes": len(keyframes), **reference}))


def _answers(world, means, colors, normals, codes, config) -> dict:
    """Per object name: the answered box centre [3] (None when not found) and the graded errors."""
    from langscene_core.eval.evaluate import grade_object
    from langscene_core.query.answer import answer_prompt, code_levels
    from langscene_core.query.objects import tabletop_of
    from langscene_core.reconstruction.models import load_models

    models = load_models(config.models, config.densify)
    tabletop, levels = tabletop_of(means, config.query), code_levels(codes)
    answers = {}
    for obj in world.spec.objects:
        result = answer_prompt(
            levels, means, colors, normals, models, obj.name, config.query, config.grasp, tabletop=tabletop
        )
        if result.object_box is None:
            answers[obj.name] = {"centre": None}
            continue
        centre = result.object_box.pose[:3, 3]
        graded = grade_object(world, obj.name, centre, [(g.pose, g.width) for g in result.grasps], config.grasp)
        answers[obj.name] = {"centre": [float(c) for c in centre], "grasps": len(result.grasps), **graded}
    return answers


def grade(work: Path, out: Path) -> None:
    """Answers on the CUDA scenes against the truth and the CPU reference's answers (a line per budget)."""
    from langscene_core.sim import build_world
    from langscene_core.sim.spec import load_spec

    reference = json.loads((work / "cpu_reference.json").read_text())
    scenes = np.load(out / SCENES)
    world = build_world(load_spec(DEMO_SPEC))
    config = _config(DEMO_PARAMS, "cpu")
    recorder = Recorder(out, math.inf)
    for name in ("demo", "default"):
        arrays = [scenes[f"{name}_{key}"] for key in ("means", "colors", "normals", "codes")]
        answers = _answers(world, *arrays, config)
        per_object = {}
        for obj, answer in answers.items():
            cpu = reference["answers"][obj]
            per_object[obj] = {
                "cuda_center_error_m": answer.get("center_error_m"),
                "cpu_center_error_m": cpu.get("center_error_m"),
                "cuda_vs_cpu_centre_m": None
                if answer["centre"] is None or cpu["centre"] is None
                else float(np.linalg.norm(np.subtract(answer["centre"], cpu["centre"]))),
                "cuda_best_grasp_valid": answer.get("best_grasp_valid"),
                "cpu_best_grasp_valid": cpu.get("best_grasp_valid"),
            }
        recorder.write(
            {
                "step": "demo_answers",
                "status": "ok",
                "budget": name,
                "cpu_reference": f"{reference['params']} field steps {reference['field_steps']}",
                "objects": per_object,
            }
        )


def run(work: Path, out: Path, budget_s: float, quick: bool) -> int:
    """All steps (see the module docstring); returns the number of failed steps."""
    stand_ins = install_stand_ins()
    recorder = Recorder(out, time.monotonic() + budget_s)
    started = time.perf_counter()
    recorder.step("env", lambda: {**step_env(), "stand_ins": stand_ins})
    compile_proc = start_gsplat_compile(out)
    inputs = load_inputs(work) if (work / "inputs.npz").is_file() else None
    no_inputs = lambda: _skip(f"no {work / 'inputs.npz'}: run 'prepare' first")
    records = [
        recorder.step(
            "clip_crops", lambda: step_clip_crops(inputs, 8 if quick else None) if inputs else no_inputs(), 20
        ),
        recorder.step("lqc_search", lambda: step_lqc_search(10_000 if quick else 1_000_000), 10),
        recorder.step(
            "trimap_5b",
            lambda: (
                step_trimap(49, 480, 720, 3, ("none", "model", "sequential"), True)
                if _cuda()
                else step_trimap(9, 64, 64, 2, ("none", "model"), False)
            ),
            60,
        ),
        recorder.step(
            "gsplat_compile",
            lambda: step_gsplat_compile(compile_proc, out, started, recorder.deadline - time.monotonic() - 60),
        ),
    ]
    # without gsplat's kernels a CUDA step would start compiling them again: skip those instead
    broken = _cuda() and records[-1]["status"] != "ok"
    gsplat = lambda fn: (lambda: _skip("gsplat's CUDA kernels did not compile (gsplat_compile)")) if broken else fn
    records += [
        recorder.step("rasterize", gsplat(lambda: step_rasterize(2 if quick else 5)), 20),
        recorder.step(
            "demo_reconstruct", gsplat(lambda: step_demo_reconstruct(inputs, out) if inputs else no_inputs()), 60
        ),
        recorder.step("pytest_cuda", gsplat(lambda: step_pytest(out)), 30),
    ]
    return sum(r["status"] == "failed" for r in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "run", "grade"):
        p = sub.add_parser(name)
        p.add_argument("--work", type=Path, default=REPO / ".gpucheck" / "inputs", help="prepare's folder")
        if name != "prepare":
            p.add_argument("--out", type=Path, required=True, help="results folder")
        if name == "run":
            p.add_argument("--budget-s", type=float, default=420.0, help="steps that would not fit are skipped")
            p.add_argument("--quick", action="store_true", help="small sizes (the CPU test of this script)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.work)
        return 0
    if args.command == "grade":
        grade(args.work, args.out)
        return 0
    return 1 if run(args.work, args.out, args.budget_s, args.quick) else 0


if __name__ == "__main__":
    sys.exit(main())
