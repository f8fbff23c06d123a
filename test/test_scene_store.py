"""Scene files: confined to the scene directory, never replacing a foreign file, a save leaving room on
the disk, the PLY + sidecar pair crash-consistent, and every corrupt file a clear SceneFileError."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langscene_core.config import LqcTrainConfig
from langscene_core.field import ply
from langscene_core.field.gaussians import Gaussians
from langscene_core.language.lqc import LQC
from langscene_core.reconstruction.scene import SceneFileError, build_scene, load_scene, save_scene
from langscene_core.reconstruction.store import SceneLocationError, SceneStore, default_scene_dir

LQC_NAME = "test-lqc"


@pytest.fixture(scope="module")
def lqc() -> LQC:
    torch.manual_seed(0)
    model = LQC(LqcTrainConfig(feature_dim=8, codebook_size=16, hidden_dims=(8,)))
    with torch.no_grad():
        model.codebook.uniform_(-1, 1)
    return model.eval()


def make_scene(lqc: LQC, seed: int, n: int = 40):
    rng = np.random.default_rng(seed)
    gaussians = Gaussians.from_points(rng.random((n, 3)), rng.random((n, 3)))
    with torch.no_grad():
        gaussians.params["latents"].uniform_(-1, 1)
    return build_scene(gaussians, lqc, "map", {"lqc": LQC_NAME, "seed": seed})


@pytest.fixture
def store(tmp_path) -> SceneStore:
    return SceneStore(tmp_path / "scenes", min_free_bytes=0)


def same(a, b) -> bool:
    return a.num_gaussians == b.num_gaussians and np.array_equal(a.means, b.means)


# ------------------------------------------------------------------------------------ confinement
def test_names_and_paths_inside_the_directory_resolve_to_absolute_ply_paths(store, lqc):
    root = store.root
    assert store.resolve("kitchen") == root / "kitchen.ply"
    assert store.resolve("kitchen.ply") == root / "kitchen.ply"
    assert store.resolve(str(root / "lab" / "bench")) == root / "lab" / "bench.ply"
    assert store.resolve("lab/../kitchen") == root / "kitchen.ply"  # '..' that stays inside is fine
    scene = make_scene(lqc, 0)
    saved = store.save(scene, "kitchen")
    assert saved == root / "kitchen.ply" and saved.is_absolute() and (root / "kitchen.json").is_file()
    loaded, path = store.load("kitchen", lqc, LQC_NAME)
    assert path == saved and same(loaded, scene) and loaded.frame_id == "map"


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../outside", "a/../../outside", "..", "", "  ", ".hidden", "x\x00y", "scene\n", "a\x1bb"]
)
def test_names_that_leave_the_directory_are_refused(store, lqc, name, tmp_path):
    with pytest.raises(SceneLocationError):
        store.resolve(name)
    with pytest.raises(SceneLocationError):
        store.save(make_scene(lqc, 0), name)
    with pytest.raises(SceneLocationError):
        store.load(name, lqc, LQC_NAME)
    assert not (tmp_path / "outside.ply").exists() and not (tmp_path / "outside.json").exists()


def test_symlinks_that_leave_the_directory_are_refused(store, lqc, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store.root / "out").symlink_to(outside)  # a directory link out
    (store.root / "file.ply").symlink_to(outside / "file.ply")  # a PLY link out (target missing)
    (store.root / "side.ply").write_bytes(b"")
    (store.root / "side.json").symlink_to(outside / "side.json")  # the sidecar links out
    scene = make_scene(lqc, 0)
    for name in ("out/scene", "file", "side"):
        with pytest.raises(SceneLocationError, match="outside the scene directory"):
            store.save(scene, name)
    assert list(outside.iterdir()) == []
    inside = store.root / "lab"
    inside.mkdir()
    (store.root / "lab_link").symlink_to(inside)  # a link that stays inside is followed
    assert store.save(scene, "lab_link/scene") == inside / "scene.ply"


def test_the_default_directory_is_per_user_under_ros_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "roshome"))
    assert default_scene_dir() == tmp_path / "roshome" / "langscene" / "scenes"
    monkeypatch.delenv("ROS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_scene_dir() == tmp_path / "home" / ".ros" / "langscene" / "scenes"
    store = SceneStore("", min_free_bytes=0)
    assert store.root == (tmp_path / "home" / ".ros" / "langscene" / "scenes").resolve() and store.root.is_dir()
    with pytest.raises(SceneFileError, match="absolute"):
        SceneStore("relative/scenes", min_free_bytes=0)


# ------------------------------------------------------------------------------------ foreign files
@pytest.mark.parametrize("suffix", [".json", ".ply"])
def test_a_file_langscene_did_not_write_is_never_replaced(store, lqc, suffix):
    foreign = store.root / f"settings{suffix}"
    content = b'{"robot": "arm", "speed": 1.0}' if suffix == ".json" else b"ply\nformat ascii 1.0\nend_header\n"
    foreign.write_bytes(content)
    with pytest.raises(SceneFileError, match="not written by langscene"):
        store.save(make_scene(lqc, 0), "settings")
    assert foreign.read_bytes() == content
    assert sorted(p.name for p in store.root.iterdir()) == [foreign.name]  # nothing written beside it


def test_our_scene_is_replaced_and_a_version_1_pair_still_loads_and_is_replaceable(store, lqc):
    first, second = make_scene(lqc, 1), make_scene(lqc, 2)
    store.save(first, "scene")
    store.save(second, "scene")
    assert same(store.load("scene", lqc, LQC_NAME)[0], second)
    assert sorted(p.name for p in store.root.iterdir()) == ["scene.json", "scene.ply"]
    # a pair as langscene wrote it before generations (version 1: no header comment, no generation)
    path = store.root / "scene.ply"
    raw = path.read_bytes()
    comment = raw[raw.index(b"comment ") : raw.index(b"\n", raw.index(b"comment ")) + 1]
    path.write_bytes(raw.replace(comment, b""))
    side = json.loads(ply.sidecar_path(path).read_text())
    del side["generation"]
    side["version"] = 1
    ply.sidecar_path(path).write_text(json.dumps(side))
    assert ply.written_by_langscene(path) and same(store.load("scene", lqc, LQC_NAME)[0], second)
    store.save(first, "scene")
    assert same(store.load("scene", lqc, LQC_NAME)[0], first)


def test_a_save_that_would_leave_too_little_free_space_is_refused(tmp_path, lqc):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    store = SceneStore(tmp_path / "scenes", min_free_bytes=free + 2**30)
    with pytest.raises(SceneFileError, match="must stay free"):
        store.save(make_scene(lqc, 0), "scene")
    assert list(store.root.iterdir()) == []


# ------------------------------------------------------------------------------------ crash consistency
@pytest.mark.parametrize("crash_at", range(4))
def test_a_save_interrupted_at_any_step_leaves_the_old_or_the_new_pair(store, lqc, monkeypatch, crash_at):
    """After writing the pending PLY a save makes two renames (the sidecar: the commit; the PLY into
    place); a crash just before or just after each leaves files on disk as they were at that instant."""
    old, new = make_scene(lqc, 1), make_scene(lqc, 2)
    path = store.save(old, "scene")
    calls = []
    real_replace = os.replace

    class Crash(BaseException):
        pass

    def crashing_replace(src, dst):
        step = len(calls)
        calls.append(dst)
        if crash_at == 2 * step:
            raise Crash
        real_replace(src, dst)
        if crash_at == 2 * step + 1:
            raise Crash

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(Crash):
        save_scene(new, path)
    monkeypatch.setattr(os, "replace", real_replace)
    loaded = load_scene(path, lqc, LQC_NAME)
    committed = crash_at >= 1  # the sidecar's rename (the first) is the commit
    assert same(loaded, new if committed else old), crash_at
    assert loaded.info["seed"] == (2 if committed else 1)
    store.save(old, "scene")  # the next save completes and cleans up what the crash left
    assert same(load_scene(path, lqc, LQC_NAME), old)
    assert sorted(p.name for p in store.root.iterdir()) == ["scene.json", "scene.ply"]


def test_a_save_failing_before_its_commit_leaves_the_old_pair_and_nothing_else(store, lqc, monkeypatch):
    import errno

    old = make_scene(lqc, 1)
    path = store.save(old, "scene")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the first fsync is the pending PLY's
    with pytest.raises(SceneFileError, match="No space left"):
        store.save(make_scene(lqc, 2), "scene")
    monkeypatch.undo()
    assert same(load_scene(path, lqc, LQC_NAME), old)
    assert sorted(p.name for p in store.root.iterdir()) == ["scene.json", "scene.ply"]


def test_concurrent_saves_of_one_scene_leave_a_matching_pair(store, lqc):
    """Service callbacks may run in parallel: saves through the store are serialised."""
    from concurrent.futures import ThreadPoolExecutor

    scenes = [make_scene(lqc, seed) for seed in (1, 2, 3, 4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: store.save(scenes[i % 4], "scene"), range(24)))
    loaded = load_scene(store.root / "scene.ply", lqc, LQC_NAME)
    assert same(loaded, scenes[loaded.info["seed"] - 1])
    assert sorted(p.name for p in store.root.iterdir()) == ["scene.json", "scene.ply"]


# ------------------------------------------------------------------------------------ corrupt files
def _sidecar_edit(edit):
    def apply(path):
        side = json.loads(ply.sidecar_path(path).read_text())
        edit(side)
        ply.sidecar_path(path).write_text(json.dumps(side))

    return apply


def _ply_edit(edit):
    def apply(path):
        path.write_bytes(edit(path.read_bytes()))

    return apply


CORRUPTIONS = {
    "truncated body": _ply_edit(lambda raw: raw[:-7]),
    "truncated header": _ply_edit(lambda raw: raw[:40]),
    "empty ply": _ply_edit(lambda raw: b""),
    "not a ply": _ply_edit(lambda raw: b"solid cube\nendsolid\n"),
    "binary header": _ply_edit(lambda raw: raw.replace(b"element vertex", b"element \xff\xfeertex")),
    "vertex count words": _ply_edit(lambda raw: raw.replace(b"element vertex 40", b"element vertex forty")),
    "count mismatch": _ply_edit(lambda raw: raw.replace(b"element vertex 40", b"element vertex 39")),
    "properties renamed": _ply_edit(lambda raw: raw.replace(b"property float x\n", b"property float q\n")),
    "nan body": _ply_edit(lambda raw: raw[: -4 * 5] + np.full(5, np.nan, "<f4").tobytes()),
    "other generation": _ply_edit(lambda raw: raw.replace(b" generation ", b" generation 0", 1)),
    "bad json": lambda path: ply.sidecar_path(path).write_text('{"format": "langscene-gaussians", '),
    "json list": lambda path: ply.sidecar_path(path).write_text("[1, 2]"),
    "json not utf-8": lambda path: ply.sidecar_path(path).write_bytes(b'{"a": "\xff"}'),
    "sidecar missing": lambda path: ply.sidecar_path(path).unlink(),
    "sidecar a directory": lambda path: (ply.sidecar_path(path).unlink(), ply.sidecar_path(path).mkdir()),
    "count as text": _sidecar_edit(lambda s: s.update(count="40")),
    "count as bool": _sidecar_edit(lambda s: s.update(count=True)),
    "sh_degree huge": _sidecar_edit(lambda s: s.update(sh_degree=10**9)),
    "levels a number": _sidecar_edit(lambda s: s.update(levels=3)),
    "levels empty": _sidecar_edit(lambda s: s.update(levels=[])),
    "metadata a list": _sidecar_edit(lambda s: s.update(metadata=[])),
    "info a string": _sidecar_edit(lambda s: s["metadata"].update(info="x")),
    "frame_id a number": _sidecar_edit(lambda s: s["metadata"].update(frame_id=3)),
    "frame_id missing": _sidecar_edit(lambda s: s["metadata"].pop("frame_id")),
    "not a scene": _sidecar_edit(lambda s: s["metadata"].pop("scene")),
    "version 3": _sidecar_edit(lambda s: s.update(version=3)),
    "generation path": _sidecar_edit(lambda s: s.update(generation="../../x")),
    **{f"{key} missing": _sidecar_edit(lambda s, key=key: s.pop(key)) for key in ("count", "sh_degree", "levels")},
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_or_hand_edited_scene_is_a_clear_scene_file_error(store, lqc, corruption):
    path = store.save(make_scene(lqc, 0), "scene")
    CORRUPTIONS[corruption](path)
    with pytest.raises(SceneFileError) as error:
        store.load("scene", lqc, LQC_NAME)
    assert str(error.value)


@pytest.fixture(scope="module")
def valid_pair(tmp_path_factory, lqc):
    directory = tmp_path_factory.mktemp("valid_pair")
    path = save_scene(make_scene(lqc, 3, n=8), directory / "scene")
    return path.read_bytes(), ply.sidecar_path(path).read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_mutations_give_a_valid_scene_or_a_scene_file_error(tmp_path_factory, valid_pair, lqc, data):
    """Bytes of either file overwritten, inserted or cut anywhere: never an exception of another type."""
    directory = tmp_path_factory.mktemp("fuzz")
    raw_ply, raw_json = valid_pair
    target = data.draw(st.sampled_from(["ply", "json", "json_value"]))
    if target == "json_value":  # a value of the sidecar replaced by any JSON value
        side = json.loads(raw_json)
        scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
        value = data.draw(
            st.recursive(
                scalar,
                lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                max_leaves=6,
            )
        )
        keys = data.draw(
            st.sampled_from(
                [
                    ["count"],
                    ["sh_degree"],
                    ["levels"],
                    ["version"],
                    ["generation"],
                    ["metadata"],
                    ["metadata", "info"],
                    ["metadata", "frame_id"],
                    ["metadata", "info", "lqc"],
                ]
            )
        )
        node = side
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        raw_json = json.dumps(side).encode()
    else:
        raw = bytearray(raw_ply if target == "ply" else raw_json)
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(raw)))
            action = data.draw(st.sampled_from(["set", "insert", "cut"]))
            chunk = data.draw(st.binary(min_size=1, max_size=6))
            if action == "set":
                raw[at : at + len(chunk)] = chunk
            elif action == "insert":
                raw[at:at] = chunk
            else:
                del raw[at : at + len(chunk)]
        raw_ply, raw_json = (bytes(raw), raw_json) if target == "ply" else (raw_ply, bytes(raw))
    (directory / "scene.ply").write_bytes(raw_ply)
    (directory / "scene.json").write_bytes(raw_json)
    try:
        scene = load_scene(directory / "scene.ply", lqc, LQC_NAME)
    except SceneFileError as exc:
        assert str(exc)
    else:
        assert scene.num_gaussians == 8 and np.isfinite(scene.means).all()


SAVER = """
import sys
import numpy as np, torch
from langscene_core.field.gaussians import Gaussians
from langscene_core.field.ply import save_ply
path = sys.argv[1]
scenes = []
for seed in (1, 2):
    rng = np.random.default_rng(seed)
    scenes.append(Gaussians.from_points(rng.random((5000, 3)), rng.random((5000, 3))))
print("saving", flush=True)
i = 0
while True:
    save_ply(scenes[i % 2], path, {"seed": 1 + i % 2})
    print("saved", flush=True)  # this save committed and removed what earlier crashes left
    i += 1
"""


@pytest.mark.slow
def test_kill_9_during_saves_leaves_a_loadable_matching_pair(tmp_path):
    """A process saving two scenes in turn to one path is killed (SIGKILL) at random moments; each time
    the pair at the path loads, and the Gaussians are those of the save its sidecar names."""
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(0)
    path = tmp_path / "scene.ply"
    expected = {seed: np.random.default_rng(seed).random((5000, 3)).astype(np.float32) for seed in (1, 2)}
    crashes = 0  # crashes since the last save that got to its end
    for _ in range(8):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        assert saver.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0.0, 0.5))
        saver.kill()
        saver.wait()
        # a save that ended removed everything crashes before it left, so only this crash's pending PLY
        # and sidecar temporary file can stay; killed inside its first save (a slow disk's fsyncs), the
        # process removed nothing and the leftovers of consecutive crashes add up until a save ends
        crashes = 1 if "saved" in saver.stdout.read() else crashes + 1
        assert len([p for p in tmp_path.iterdir() if p.name.startswith(".")]) <= 2 * crashes
        if not ply.sidecar_path(path).exists():
            continue  # killed before its first commit
        seed = ply.read_sidecar(path)["metadata"]["seed"]
        gaussians = ply.load_ply(path)
        assert np.array_equal(gaussians.means.detach().numpy(), expected[seed])
