"""Text prompt -> scene relevancy through the code table, with and without the text embedding cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from langscene_core.clip import encode_text
from langscene_core.config import LangsceneConfig
from langscene_core.models import load_models
from langscene_core.relevancy import relevancy
from langscene_core.text_query import TextEmbeddingCache, code_levels, scene_relevancy
from language_helpers import tiny_models_config

NEGATIVES = ("object", "things", "stuff", "texture")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_models(tiny_models_config(tmp_path_factory.mktemp("models")), LangsceneConfig().densify)


def _reference(codes, models, prompt):
    """Every level gathered in full, the level with the highest maximum answers."""
    texts = encode_text(models.clip, [prompt, *NEGATIVES])
    table = relevancy(models.code_features, texts[0], texts[1:]).detach().numpy()
    per_level = table[codes]
    level = int(np.argmax(per_level.max(axis=0)))
    return per_level[:, level], level


def test_relevancy_equals_the_full_gather_with_and_without_caches(models):
    k = models.code_features.shape[0]
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, k, 5000), rng.integers(0, k // 3, 5000), rng.integers(k // 2, k, 5000)], 1)
    cache = TextEmbeddingCache(models.clip, capacity=8)
    levels = code_levels(codes)  # once per scene, as the node does
    for prompt in ("red mug", "blue box", "red mug"):
        expected, level = _reference(codes, models, prompt)
        for answer in (scene_relevancy(codes, models, prompt, NEGATIVES),
                       scene_relevancy(codes, models, prompt, NEGATIVES, cache=cache),
                       scene_relevancy(levels, models, prompt, NEGATIVES, cache=cache)):
            assert answer.level == level
            assert answer.values.dtype == np.float32
            np.testing.assert_allclose(answer.values, expected, atol=1e-6)


def test_cache_is_bounded_and_reuses_embeddings(models, monkeypatch):
    cache = TextEmbeddingCache(models.clip, capacity=6)
    first = cache.embed(["a", "b", "c"]).clone()
    encoded = []
    import langscene_core.text_query as text_query
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
        scene_relevancy(np.zeros((3, 3), np.int64), models, "red mug", NEGATIVES, cache=other)


def test_code_levels_arrange_each_level_once_and_refuse_bad_codes():
    levels = code_levels(np.array([[3, 0], [1, 0], [3, 2]]))
    np.testing.assert_array_equal(levels.codes, [[3, 1, 3], [0, 0, 2]])
    assert levels.codes.flags.c_contiguous
    assert [u.tolist() for u in levels.used] == [[1, 3], [0, 2]]
    with pytest.raises(ValueError, match="non-negative"):
        code_levels(np.array([[0, -1]]))
    with pytest.raises(ValueError, match=r"\[N, L\]"):
        code_levels(np.zeros(4, np.int64))
