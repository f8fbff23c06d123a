"""langscene_core.eval.suite: seeded scenes and absent prompts, the suite's orchestration and pooled rows
(evaluate_mode stubbed: the real one is covered by test_evaluate), and `langscene eval-suite` bad input."""

import json

import pytest

from langscene_core.config import load_config
from langscene_core.eval import suite as suite_module
from langscene_core.eval.suite import (
    SPLITS,
    absent_prompts,
    markdown_table,
    run_suite,
    scene_spec,
    shape_table,
    write_suite,
)
from langscene_core.reconstruction.reconstruct import ReconstructionError
from langscene_core.sim.spec import COLORS, SHAPES
from langscene_ros.cli import main


def test_scene_spec_is_seeded_and_absent_prompts_name_nothing():
    for seed in (SPLITS["dev"], SPLITS["dev"] + 1, SPLITS["fresh"], SPLITS["fresh"] + 5):
        spec = scene_spec(seed)
        assert spec == scene_spec(seed) and 3 <= len(spec.objects) <= 6
        prompts = absent_prompts(spec, seed)
        assert [k for k, _ in prompts] == ["vocabulary", "table_colour", "outside_vocabulary"]
        names = {o.name for o in spec.objects}
        vocabulary = {f"{c} {s}" for c in COLORS for s in SHAPES}
        assert all(p not in names for _, p in prompts)
        assert prompts[0][1] in vocabulary and not prompts[0][1].startswith(spec.table.color)
        assert prompts[1][1].startswith(spec.table.color + " ") and prompts[1][1] in vocabulary
        assert prompts[2][1] not in vocabulary


def fake_result(mode: str, hit: bool, error_m: float | None) -> dict:
    """What evaluate_mode returns, reduced to the keys the suite reads."""
    per_query = [{"kind": "2d", "view": "eval_0000", "name": "red mug", "hit": hit, "iou": 0.5 if hit else 0.0}]
    if mode != "baseline_2d":
        per_query += [
            {
                "kind": "3d",
                "name": "red mug",
                "center_error_m": error_m,
                "located": error_m is not None and error_m <= 0.02,
                "grasps": 2,
                "grasps_valid": 1,
                "best_grasp_valid": True,
            },
            {"kind": "absent", "name": "laptop", "answered": not hit},
        ]
    return {
        "mode": mode,
        "per_query": per_query,
        "box_filter_px": 5,
        "loc_acc": float(hit),
        "miou": 0.5 if hit else 0.0,
        "located_rate": None,
        "absent_answered_rate": None,
        "reconstruct_s": 10.0 if mode != "baseline_2d" else 0.0,
        "generated_frames_used": 7 if mode == "sparse_trimap" else 0,
    }


def test_suite_rows_pool_each_split_and_mode(monkeypatch, tmp_path):
    calls, loads = [], []

    def evaluate_mode(dataset, mode, models, config, absent=(), scene_cache=None):
        assert scene_cache is None  # no cache asked for
        calls.append((dataset, mode, tuple(absent)))
        if dataset == SPLITS["fresh"] and mode == "sparse":
            raise ReconstructionError("too few points")
        return fake_result(
            mode, hit=dataset == SPLITS["dev"] + 1 or mode == "dense", error_m=0.01 if mode == "dense" else 0.05
        )

    monkeypatch.setattr(suite_module, "evaluate_mode", evaluate_mode)
    monkeypatch.setattr(suite_module, "build_world", lambda spec: spec.objects[0].name)
    seeds = iter([SPLITS["dev"], SPLITS["dev"] + 1, SPLITS["fresh"]])  # the stub dataset: its seed
    monkeypatch.setattr(suite_module, "render_dataset", lambda world: next(seeds))
    lines = []
    result = run_suite(
        {"dev": 2, "fresh": 1},
        ["dense", "sparse", "sparse_trimap", "baseline_2d"],
        load_config(),
        lambda c: loads.append(c.densify.mode) or c.densify.mode,
        log=lines.append,
    )
    assert sorted(loads) == ["off", "trimap"]  # models loaded once per densification mode
    assert len(calls) == 12 and len(lines) == 12 and all(len(a) == 3 for _, _, a in calls)
    assert "reconstruction failed (too few points)" in lines[9] and "7 generated frames" in lines[2]
    rows = {(r["split"], r["mode"]): r for r in result["rows"]}
    assert list(rows) == [(s, m) for s in ("dev", "fresh") for m in ("dense", "sparse", "sparse_trimap", "baseline_2d")]
    dense, sparse = rows[("dev", "dense")], rows[("dev", "sparse")]
    assert dense["scenes"] == 2 and dense["loc_acc"] == 1.0 and sparse["loc_acc"] == 0.5
    assert dense["absent_answered_rate"] == 0.0 and sparse["absent_answered_rate"] == 0.5
    assert (
        dense["located_rate"] == 1.0
        and sparse["located_rate"] == 0.0
        and rows[("dev", "sparse_trimap")]["generated_frames_used"] == 14
    )
    assert rows[("fresh", "sparse")]["failed"] == 1 and rows[("fresh", "sparse")]["loc_acc"] is None
    assert rows[("dev", "baseline_2d")]["located_rate"] is None and rows[("dev", "baseline_2d")]["box_filter_px"] == 5
    json_path, md_path = write_suite(result, tmp_path / "out")
    assert json.loads(json_path.read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    table = md_path.read_text()
    assert table == markdown_table(result) + "\n" + shape_table(result) and markdown_table(result).count("\n") == 2 + 8
    assert "| fresh | sparse | 1 (1 failed) | n/a |" in table


def test_suite_starts_and_cache(monkeypatch, tmp_path):
    """A split's start picks its first seed (a range no earlier run looked at); with a cache each
    reconstructed mode reads or writes <mode>_<seed>.ply there, the 2D baseline (no scene) none."""
    caches = []

    def evaluate_mode(dataset, mode, models, config, absent=(), scene_cache=None):
        caches.append((dataset, mode, scene_cache))
        return fake_result(mode, hit=True, error_m=0.01)

    monkeypatch.setattr(suite_module, "evaluate_mode", evaluate_mode)
    monkeypatch.setattr(suite_module, "build_world", lambda spec: spec.seed)
    monkeypatch.setattr(suite_module, "render_dataset", lambda seed: seed)
    result = run_suite(
        {"fresh": 2},
        ["dense", "baseline_2d"],
        load_config(),
        lambda c: None,
        log=lambda m: None,
        starts={"fresh": 100},
        cache=tmp_path,
    )
    first = SPLITS["fresh"] + 100
    assert result["seeds"] == {"fresh": [first, first + 1]}
    assert caches == [
        (first, "dense", tmp_path / f"dense_{first}.ply"),
        (first, "baseline_2d", None),
        (first + 1, "dense", tmp_path / f"dense_{first + 1}.ply"),
        (first + 1, "baseline_2d", None),
    ]
    with pytest.raises(ValueError, match="scene starts"):
        run_suite({"fresh": 1}, ["dense"], load_config(), lambda c: None, starts={"fresh": -1})


@pytest.mark.parametrize(
    "argv, fragment",
    [(["--modes", "dense,dens"], "--modes"), (["--dev", "0", "--fresh", "0"], "positive number")],
)
def test_eval_suite_bad_input_exits_2(tmp_path, capsys, argv, fragment):
    assert main(["eval-suite", "--out", str(tmp_path / "s"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and not (tmp_path / "s").exists()
