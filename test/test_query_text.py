"""Text prompt -> scene relevancy through the code table, with and without the text embedding cache; the
open-set check of an answer against the CLIP vocabulary (check_rivals)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from language_helpers import tiny_models_config

from langscene_core.config import LangsceneConfig, ModelsConfig
from langscene_core.language.clip import encode_text, load_vocabulary, save_vocabulary
from langscene_core.language.relevancy import relevancy
from langscene_core.query.answer import (
    CodeLevels,
    TextEmbeddingCache,
    answer_level,
    check_rivals,
    code_levels,
    scene_relevancy,
)
from langscene_core.query.objects import ObjectBox, QueryResult, relevancy_cloud
from langscene_core.reconstruction.models import load_models

NEGATIVES = ("object", "things", "stuff", "texture")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_models(tiny_models_config(tmp_path_factory.mktemp("models")), LangsceneConfig().densify)


def _reference(codes, models, prompt):
    """Every level gathered in full, the level with the highest maximum answers."""
    texts = encode_text(models.clip, [prompt, *NEGATIVES])
    table = relevancy(models.code_features, texts[0], texts[1:]).detach().numpy()
    per_level = table[codes]
    maxima = per_level.max(axis=0)
    level = 2 if maxima[2] >= maxima.max() else int(np.argmax(maxima))  # a tie goes to the large level
    return per_level[:, level], level


def test_relevancy_equals_the_full_gather_with_and_without_caches(models):
    k = models.code_features.shape[0]
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, k, 5000), rng.integers(0, k // 3, 5000), rng.integers(k // 2, k, 5000)], 1)
    cache = TextEmbeddingCache(models.clip, capacity=8)
    levels = code_levels(codes)  # once per scene, as the node does
    for prompt in ("red mug", "blue box", "red mug"):
        expected, level = _reference(codes, models, prompt)
        for answer in (
            scene_relevancy(codes, models, prompt, NEGATIVES, level_margin=0.0),
            scene_relevancy(codes, models, prompt, NEGATIVES, cache=cache, level_margin=0.0),
            scene_relevancy(levels, models, prompt, NEGATIVES, cache=cache, level_margin=0.0),
        ):
            assert answer.level == level
            assert answer.values.dtype == np.float32
            np.testing.assert_allclose(answer.values, expected, atol=1e-6)


def test_cache_is_bounded_and_reuses_embeddings(models, monkeypatch):
    cache = TextEmbeddingCache(models.clip, capacity=6)
    first = cache.embed(["a", "b", "c"]).clone()
    encoded = []
    import langscene_core.query.answer as text_query

    real = text_query.encode_text
    monkeypatch.setattr(text_query, "encode_text", lambda clip, texts: encoded.append(list(texts)) or real(clip, texts))
    again = cache.embed(["c", "a", "d"])
    assert encoded == [["d"]]  # only the new phrase is encoded
    torch.testing.assert_close(again[:2], first[[2, 0]])
    cache.embed(["e", "f", "g", "h"])
    assert len(cache) == 6  # the least recently used ("b", "c") were evicted
    encoded.clear()
    cache.embed(["b"])
    assert encoded == [["b"]]


def test_cache_of_another_model_and_bad_capacity_are_refused(models):
    with pytest.raises(ValueError, match="capacity"):
        TextEmbeddingCache(models.clip, capacity=0)
    other = TextEmbeddingCache(object(), capacity=4)
    with pytest.raises(ValueError, match="another CLIP model"):
        scene_relevancy(np.zeros((3, 3), np.int64), models, "red mug", NEGATIVES, cache=other, level_margin=0.0)


def test_large_level_answers_unless_a_smaller_one_is_clearly_better():
    assert answer_level(np.array([0.9, 0.7, 0.85]), 0.1) == 2  # s beats l by 0.05 only
    assert answer_level(np.array([0.9, 0.99, 0.85]), 0.1) == 1  # m by 0.14: the best smaller level
    assert answer_level(np.array([0.9, 0.7, 0.85]), 0.0) == 0  # LangSplat's rule: the highest maximum
    assert answer_level(np.array([0.99, 0.7, 0.1]), 1.0) == 2  # margin 1: always the large level
    assert answer_level(np.array([0.4]), 0.1) == 0
    with pytest.raises(ValueError, match="maxima"):
        answer_level(np.zeros(0), 0.1)


def test_level_margin_is_the_query_setting(models):
    k = models.code_features.shape[0]
    codes = np.random.default_rng(1).integers(0, k, size=(500, 3))
    always_large = scene_relevancy(codes, models, "red mug", NEGATIVES, level_margin=1.0)
    assert always_large.level == 2
    assert (
        scene_relevancy(codes, models, "red mug", NEGATIVES, level_margin=0.0).level
        == _reference(codes, models, "red mug")[1]
    )


def test_code_levels_arrange_each_level_once_and_refuse_bad_codes():
    levels = code_levels(np.array([[3, 0], [1, 0], [3, 2]]))
    np.testing.assert_array_equal(levels.codes, [[3, 1, 3], [0, 0, 2]])
    assert levels.codes.flags.c_contiguous
    assert [u.tolist() for u in levels.used] == [[1, 3], [0, 2]]
    with pytest.raises(ValueError, match="non-negative"):
        code_levels(np.array([[0, -1]]))
    with pytest.raises(ValueError, match=r"\[N, L\]"):
        code_levels(np.zeros(4, np.int64))


@pytest.fixture(scope="module")
def bundled():
    """The shipped tiny-clip + tiny-lqc, with tiny-clip's vocabulary (the names of the world)."""
    return load_models(ModelsConfig(device="cpu"), LangsceneConfig().densify)


def _object_of(models, name: str, count: int = 60) -> tuple[QueryResult, CodeLevels]:
    """An answer whose object is ``count`` Gaussians carrying, at every level, the 20 codes nearest to
    ``name``'s text embedding (what a reconstructed object of that name decodes to)."""
    text = encode_text(models.clip, [name])[0]
    nearest = torch.argsort(models.code_features @ text, descending=True)[:20].numpy()
    codes = np.repeat(nearest[np.arange(count) % 20][:, None], 3, axis=1)
    members = np.arange(count, dtype=np.int64)
    cloud = relevancy_cloud(
        np.zeros((count, 3), np.float32), np.full((count, 3), 0.5, np.float32), np.full(count, 0.9, np.float32), members
    )
    result = QueryResult(cloud, members, 0.9, ObjectBox(np.eye(4), np.full(3, 0.05)), members, (), "found")
    return result, code_levels(codes)


def test_check_rivals_keeps_the_named_object_and_rejects_a_name_the_vocabulary_beats(bundled):
    assert "red ball" in bundled.vocabulary and len(bundled.vocabulary) == 81
    result, codes = _object_of(bundled, "red ball")
    kept = check_rivals(result, codes, bundled, "red ball", 0.3)
    assert kept.object_box is result.object_box and kept.message == "found" and "rivals" in kept.timings
    # the vocabulary entry the object resembles least: "red ball" beats it by far
    text = encode_text(bundled.clip, list(bundled.vocabulary))
    feature = torch.nn.functional.normalize(
        bundled.code_features[torch.from_numpy(codes.codes.reshape(-1))].mean(0), dim=0
    )
    unlike = bundled.vocabulary[int(torch.argmin(text @ feature))]
    rejected = check_rivals(result, codes, bundled, unlike, 0.3)
    assert rejected.object_box is None and len(rejected.object_indices) == 0 and rejected.grasps == ()
    assert rejected.cloud is result.cloud  # the relevancy cloud is still the answer's
    assert "no object" in rejected.message and f"'{unlike}'" in rejected.message
    assert check_rivals(result, codes, bundled, unlike, 2.0).object_box is not None  # 2.0: off
    no_vocabulary = dataclasses.replace(bundled, vocabulary=())
    assert check_rivals(result, codes, no_vocabulary, unlike, 0.3) is result


def test_load_vocabulary_reads_the_model_directory_or_a_given_file(tmp_path):
    assert load_vocabulary(str(tmp_path)) == ()  # a directory without one
    save_vocabulary(["red mug", "", "blue box", "red mug"], tmp_path)
    assert load_vocabulary(str(tmp_path)) == ("red mug", "blue box")  # blanks and repeats dropped
    other = tmp_path / "names.txt"
    other.write_text("green cone\n")
    assert load_vocabulary("bundled:tiny-clip", str(other)) == ("green cone",)
    with pytest.raises(FileNotFoundError, match="vocabulary"):
        load_vocabulary("bundled:tiny-clip", str(tmp_path / "missing.txt"))
