"""Relevancy (DESIGN.md 2.8) against a hand computation, and the LQC code table against decoding."""

import math

import pytest
import torch
import torch.nn.functional as F
from language_helpers import tiny_clip

from langscene_core.config import LqcTrainConfig, QueryConfig
from langscene_core.language.clip import encode_text
from langscene_core.language.lqc import LQC
from langscene_core.language.relevancy import negative_phrases, relevancy, relevancy_logits


def hand_relevancy(feature, query, negatives):
    """min over negatives of softmax(10 * [cos(f, q), cos(f, n_i)])[0], one feature at a time."""
    cos = lambda a, b: float(a @ b) / (float(a.norm()) * float(b.norm()))
    values = []
    for n in negatives:
        a, b = math.exp(10 * cos(feature, query)), math.exp(10 * cos(feature, n))
        values.append(a / (a + b))
    return min(values)


def test_matches_hand_computation_with_clip_texts():
    clip = tiny_clip()
    phrases = negative_phrases(QueryConfig().negatives, ["table", "object", " "])
    assert phrases == ["object", "things", "stuff", "texture", "table"]
    query = encode_text(clip, ["red mug"])[0]
    negatives = encode_text(clip, phrases)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(50, clip.dim, generator=generator) * 3.0  # not unit: cosines are taken
    features[0] = query * 2.0
    features[1] = negatives[2]
    result = relevancy(features, query, negatives, chunk=16)
    expected = torch.tensor(
        [hand_relevancy(f.double(), query.double(), negatives.double()) for f in features], dtype=torch.float64
    )
    assert result.shape == (50,)
    assert torch.allclose(result.double(), expected, atol=1e-6)
    assert result[0] > 0.5 > result[1]
    unit = F.normalize(features, dim=-1)
    assert torch.allclose(relevancy(unit, query, negatives, unit_features=True), result, atol=1e-6)
    # the logit form training calibrates against: several queries at once, the same numbers
    queries = torch.stack([query, negatives[0]])
    logits = relevancy_logits(unit @ F.normalize(queries, dim=-1).T, unit @ F.normalize(negatives, dim=-1).T)
    assert logits.shape == (50, 2)
    assert torch.allclose(torch.sigmoid(logits[:, 0]).double(), expected, atol=1e-6)


def test_relevancy_errors():
    with pytest.raises(ValueError, match="widths differ"):
        relevancy(torch.zeros(4, 8), torch.zeros(9), torch.zeros(2, 8))
    with pytest.raises(ValueError, match="no negatives"):
        relevancy(torch.zeros(4, 8), torch.zeros(8), torch.zeros(0, 8))
    with pytest.raises(ValueError, match="at least one negative"):
        negative_phrases([], [" "])


def test_code_table_gather_equals_decoding_each_latent():
    """The query path's shortcut (``query.answer.scene_relevancy``): relevancy of the K decoded codes as
    unit features, gathered by each latent's code index, equals the relevancy of each decoded latent."""
    torch.manual_seed(0)
    model = LQC(LqcTrainConfig(feature_dim=64, codebook_size=256, hidden_dims=(32,))).eval()
    with torch.no_grad():
        model.codebook.copy_(torch.rand(256, 3) * 2 - 1)
    latents = torch.rand(5000, 3) * 2 - 1
    query, negatives = F.normalize(torch.randn(64), dim=0), F.normalize(torch.randn(4, 64), dim=1)
    direct = relevancy(model.decode(latents), query, negatives)
    codes = model.code_of(latents)
    table = relevancy(model.code_features(), query, negatives, unit_features=True)[codes]
    assert torch.allclose(table, direct, atol=1e-6)
    assert direct.std() > 1e-3  # the comparison is not between constants
