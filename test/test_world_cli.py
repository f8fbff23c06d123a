"""`langscene world`: writes a dataset and exits 0; a bad spec exits 2 with one line naming the problem."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from langscene_core.sim import load_dataset
from langscene_ros.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_seed_writes_a_loadable_dataset_with_contact_sheet(tmp_path, capsys):
    assert main(["world", "--seed", "4", "--objects", "3", "--out", str(tmp_path / "ds"), "--contact-sheet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["objects"]) == 3 and summary["capture"] == 24
    dataset = load_dataset(tmp_path / "ds")
    assert [o.name for o in dataset.spec.objects] == summary["objects"]
    assert (tmp_path / "ds" / "contact_sheet.png").stat().st_size > 10_000


def test_spec_file_is_rendered_as_given(tmp_path):
    spec = {
        "objects": [{"name": "red mug", "shape": "mug", "color": "red", "size": 0.1, "position": [0.1, -0.05]}],
        "camera": {"trajectory": "two_view"},
        "eval_views": 1,
    }
    (tmp_path / "s.json").write_text(json.dumps(spec))
    assert main(["world", "--spec", str(tmp_path / "s.json"), "--out", str(tmp_path / "ds")]) == 0
    dataset = load_dataset(tmp_path / "ds")
    assert len(dataset.capture) == 2 and len(dataset.eval) == 1
    assert not (tmp_path / "ds" / "contact_sheet.png").exists()


@pytest.mark.parametrize(
    "spec, fragment",
    [
        (
            {"objects": [{"name": "x", "shape": "pyramid", "color": "red", "size": 0.1, "position": [0, 0]}]},
            "objects[0].shape",
        ),
        ({"objects": [], "seed": 1}, "objects"),
        (
            {
                "objects": [
                    {"name": "a", "shape": "ball", "color": "red", "size": 0.1, "position": [0, 0]},
                    {"name": "b", "shape": "ball", "color": "blue", "size": 0.1, "position": [0.05, 0]},
                ]
            },
            "objects[1] ('b') overlaps",
        ),
        ("{not json", "cannot read spec"),
    ],
)
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, spec, fragment):
    path = tmp_path / "bad.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    assert main(["world", "--spec", str(path), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("langscene world: ") and fragment in err
    assert not (tmp_path / "ds").exists()


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["world", "--out", str(tmp_path)]) == 2
    assert main(["world", "--seed", "1", "--objects", "0", "--out", str(tmp_path)]) == 2
    assert "count" in capsys.readouterr().err.splitlines()[-1]


def test_real_process_exit_code(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"objects": [{"name": "x"}]}))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "langscene_ros.cli",
            "world",
            "--spec",
            str(tmp_path / "bad.json"),
            "--out",
            str(tmp_path / "ds"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["langscene world: objects[0].shape: missing"]
