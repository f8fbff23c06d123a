"""The real LERF-OVS layout (langscene_core.eval.lerf_ovs): a small folder written here in that layout
(COLMAP text model written by hand from COLMAP's documented format, jpg images, label JSONs) is read
back with the poses, intrinsics, labels and points it was written with; `langscene eval --lerf-ovs`
reconstructs it from the COLMAP points (no depth) and scores the labelled frames; a folder out of
layout is one line and exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from langscene_core.eval.lerf_ovs import LerfOvsError, load_lerf_ovs
from langscene_core.sim import build_world, capture_poses, intrinsics_of, parse_spec, render
from langscene_core.sim.labels import frame_labels

REPO = Path(__file__).resolve().parent.parent
SPEC = {
    "objects": [
        {"name": "red box", "shape": "box", "color": "red", "size": 0.08, "position": [0.08, 0.0]},
        {"name": "blue ball", "shape": "ball", "color": "blue", "size": 0.07, "position": [-0.1, 0.05]},
    ],
    "camera": {"width": 64, "height": 48, "views": 8, "radius": 0.6},
}
LABELLED = (1, 5)


def _num(*values: float) -> str:
    """Numbers as COLMAP's text files hold them, at full precision."""
    return " ".join(f"{float(v):.17g}" for v in values)


def write_lerf_ovs(root: Path, scene: str = "tabletop") -> tuple[list, np.ndarray]:
    """A rendered world written as LERF-OVS: images/frame_0000i.jpg, sparse/0/{cameras,images,points3D}.txt
    (COLMAP text format: world-to-camera quaternion qw qx qy qz and translation), label/<scene>/*.json
    for LABELLED frames. Returns (rendered frames, points [N, 3])."""
    spec = parse_spec(SPEC)
    world = build_world(spec)
    k = intrinsics_of(spec.camera)
    frames = render(world, k, capture_poses(spec.camera))
    (root / scene / "images").mkdir(parents=True)
    (root / scene / "sparse" / "0").mkdir(parents=True)
    (root / "label" / scene).mkdir(parents=True)
    sparse = root / scene / "sparse" / "0"
    (sparse / "cameras.txt").write_text(f"1 PINHOLE {k.width} {k.height} {_num(k.fx, k.fy, k.cx, k.cy)}\n")
    lines = []
    for i, frame in enumerate(frames):
        name = f"frame_{i:05d}"
        Image.fromarray(frame.rgb).save(root / scene / "images" / f"{name}.jpg", quality=95)
        world_to_cam = np.linalg.inv(frame.cam_to_world)
        qx, qy, qz, qw = Rotation.from_matrix(world_to_cam[:3, :3]).as_quat()
        t = world_to_cam[:3, 3]
        lines += [f"{i + 1} {_num(qw, qx, qy, qz, *t)} 1 {name}.jpg", ""]
        if i in LABELLED:
            label = frame_labels(frame, spec, f"{name}.jpg")
            (root / "label" / scene / f"{name}.json").write_text(json.dumps(label))
    (sparse / "images.txt").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.2, -0.2, 0.0], [0.2, 0.2, 0.1], size=(300, 3))
    (sparse / "points3D.txt").write_text("".join(f"{j + 1} {_num(*p)} 200 100 50 0.5\n" for j, p in enumerate(points)))
    return frames, points


def test_load_reads_poses_intrinsics_labels_and_points(tmp_path):
    frames, points = write_lerf_ovs(tmp_path)
    data = load_lerf_ovs(tmp_path, "tabletop")
    assert len(data.capture) == len(frames) and data.capture[0].depth is None
    k = intrinsics_of(parse_spec(SPEC).camera)
    assert np.allclose([data.intrinsics.fx, data.intrinsics.cx], [k.fx, k.cx]) and data.intrinsics.width == 64
    for frame, truth in zip(data.capture, frames):
        assert np.allclose(frame.cam_to_world, truth.cam_to_world, atol=1e-9)
        assert np.abs(frame.rgb.astype(int) - truth.rgb.astype(int)).mean() < 5  # jpeg
    assert [v.name for v in data.eval] == ["frame_00001", "frame_00005"]
    assert np.allclose(data.eval[1].cam_to_world, frames[5].cam_to_world, atol=1e-9)
    assert {o["category"] for o in data.labels["frame_00001"]["objects"]} <= {"red box", "blue ball"}
    assert np.allclose(data.points, points) and np.allclose(data.colors[0], [200 / 255, 100 / 255, 50 / 255])


def test_layout_errors_name_the_problem(tmp_path):
    with pytest.raises(LerfOvsError, match="no such directory"):
        load_lerf_ovs(tmp_path, "tabletop")
    write_lerf_ovs(tmp_path)
    camera = tmp_path / "tabletop" / "sparse" / "0" / "cameras.txt"
    camera.write_text("1 OPENCV 64 48 50 50 32 24 0.1 0 0 0\n")
    with pytest.raises(LerfOvsError, match="OPENCV: only PINHOLE, SIMPLE_PINHOLE .*image_undistorter"):
        load_lerf_ovs(tmp_path, "tabletop")
    camera.write_text("1 SIMPLE_PINHOLE 64 48 50 32 24\n")
    assert load_lerf_ovs(tmp_path, "tabletop").intrinsics.fy == 50
    (tmp_path / "label" / "tabletop" / "frame_00099.json").write_text("{}")
    with pytest.raises(LerfOvsError, match="frame_00099.json: labels a frame the COLMAP model does not pose"):
        load_lerf_ovs(tmp_path, "tabletop")


def _eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "langscene_ros.cli", "eval", *args], capture_output=True, text=True, cwd=REPO
    )


def test_cli_refuses_a_folder_out_of_layout_in_one_line(tmp_path):
    result = _eval("--lerf-ovs", str(tmp_path), "--scene", "figurines", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "figurines/images: no such directory" in result.stderr


@pytest.mark.slow  # a short reconstruction from the COLMAP points and two labelled frames: about 60 s
def test_eval_reconstructs_from_the_points_and_scores_the_labelled_frames(tmp_path):
    write_lerf_ovs(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(
        "langscene:\n  ros__parameters:\n    field:\n      geometry_steps: 60\n      language_steps: 30\n"
    )
    out = tmp_path / "result.json"
    result = _eval(
        "--lerf-ovs", str(tmp_path), "--scene", "tabletop", "--json", str(out), "--params-file", str(params),
        "--save-maps", str(tmp_path / "maps"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(out.read_text())
    assert scores["mode"] == "lerf_ovs" and scores["views"] == 2 and scores["keyframes"] == 8
    assert 0.0 <= scores["loc_acc"] <= 1.0 and 0.0 <= scores["miou"] <= 1.0
    records = [r for r in scores["per_query"] if r["kind"] == "2d"]
    assert {r["view"] for r in records} == {"frame_00001", "frame_00005"}
    for r in records:
        assert np.load(tmp_path / "maps" / r["view"] / f"{r['name'].replace(' ', '_')}.npy").shape[1:] == (48, 64)
