"""Language Quantized Compressor: losses (Eq. 3-6), code look-up, checkpoints, and compression quality on a
clustered feature corpus compared with a plain autoencoder of the same 3-d bottleneck."""

import json

import pytest
import torch
import torch.nn.functional as F
from language_helpers import clustered_corpus, tiny_clip

from langscene_core import assets
from langscene_core.config import LqcTrainConfig
from langscene_core.language.lqc import (
    CHECKPOINT_FILE,
    LQC,
    load_lqc,
    lqc_losses,
    name_round_trip,
    reconstruction_metrics,
    restart_dead_codes,
    save_lqc,
    train_lqc,
)
from langscene_core.language.masks import DepthMasks, FelzenszwalbMasks
from langscene_core.training.crops import render_views
from langscene_core.training.lqc_corpus import (
    labelled_mask_corpus,
    mask_feature_corpus,
    object_features,
    view_masks,
)
from langscene_core.training.lqc_ranking import text_ranking_loss

SMALL = LqcTrainConfig(feature_dim=64, codebook_size=128, hidden_dims=(32,))


def small_model(quantized=True, seed=0):
    torch.manual_seed(seed)
    model = LQC(LqcTrainConfig(**{**SMALL.__dict__, "quantized": quantized}))
    with torch.no_grad():
        if quantized:
            model.codebook.copy_(torch.rand(128, 3) * 2 - 1)
    return model


def test_losses_follow_equations_3_to_6():
    model = small_model()
    x = F.normalize(torch.randn(32, 64), dim=1)
    texts = F.normalize(torch.randn(5, 64), dim=1)
    losses = lqc_losses(model, x, texts)
    z_e = model.encoder(x)
    codes = torch.cdist(z_e, model.codebook).argmin(dim=1)
    z_q = model.codebook[codes]
    x_hat = F.normalize(model.decoder(z_q), dim=1)
    assert torch.equal(losses["codes"], codes)
    rec = ((x - x_hat) ** 2).sum(dim=1).mean()
    emb = ((z_e - z_q) ** 2).sum(dim=1).mean()
    text = ((x_hat @ texts.T - x @ texts.T) ** 2).sum(dim=1).mean()  # squared norm over the texts
    assert torch.allclose(losses["reconstruction"], rec, atol=1e-6)
    assert torch.allclose(losses["codebook"], emb, atol=1e-6)
    assert torch.allclose(losses["text"], text, atol=1e-6)
    assert torch.allclose(losses["total"], 1.0 * rec + 0.2 * emb + 0.5 * text, atol=1e-6)


def test_straight_through_and_codebook_gradients():
    model = small_model()
    x = F.normalize(torch.randn(32, 64), dim=1)
    losses = lqc_losses(model, x, None)
    # Eq. 3 reaches the encoder through the straight-through estimator, but not the codebook
    losses["reconstruction"].backward(retain_graph=True)
    assert model.encoder[0][0].weight.grad.abs().sum() > 0
    assert model.codebook.grad is None or model.codebook.grad.abs().sum() == 0
    model.zero_grad()
    # Eq. 4 moves only the used codes, towards sg(z_e): not the encoder
    losses["codebook"].backward()
    assert model.encoder[0][0].weight.grad is None or model.encoder[0][0].weight.grad.abs().sum() == 0
    used = torch.zeros(128, dtype=torch.bool)
    used[losses["codes"]] = True
    grad_norm = model.codebook.grad.norm(dim=1)
    assert torch.all(grad_norm[used] > 0) and torch.all(grad_norm[~used] == 0)


def test_encode_decode_code_of_are_consistent():
    model = small_model().eval()
    x = F.normalize(torch.randn(200, 64), dim=1)
    z = model.encode(x)
    assert z.shape == (200, 3)
    codes = model.code_of(z)
    assert codes.dtype == torch.int64 and codes.shape == (200,)
    assert torch.equal(z, model.codebook[codes].detach())  # encode returns code vectors
    decoded = model.decode(z + 1e-4)  # decode snaps to the nearest code first
    assert torch.allclose(decoded, model.code_features()[codes], atol=1e-6)
    assert torch.allclose(decoded.norm(dim=1), torch.ones(200), atol=1e-5)
    autoencoder = small_model(quantized=False).eval()
    assert torch.all(autoencoder.encode(x).abs() < 1)
    with pytest.raises(ValueError, match="no codebook"):
        autoencoder.code_of(z)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        model.decode(torch.zeros(4, 2))


def test_dead_code_restart_moves_only_dead_codes():
    model = small_model()
    before = model.codebook.detach().clone()
    usage = torch.ones(128)
    usage[[3, 70]] = 0
    z_e = torch.rand(10, 3)
    assert restart_dead_codes(model, usage, z_e, torch.Generator().manual_seed(0)) == 2
    changed = (model.codebook.detach() != before).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [3, 70]
    assert torch.cdist(model.codebook.detach()[[3, 70]], z_e).min(dim=1).values.max() < 0.05


def test_checkpoint_round_trip_and_bundled(tmp_path, monkeypatch):
    model = small_model().eval()
    path = save_lqc(model, tmp_path / "m.safetensors")
    loaded = load_lqc(path)
    assert loaded.config == model.config
    z = torch.rand(50, 3) * 2 - 1
    assert torch.equal(loaded.decode(z), model.decode(z))
    monkeypatch.setattr(assets, "ASSETS_DIR", tmp_path)
    save_lqc(model, tmp_path / "tiny-lqc-test" / CHECKPOINT_FILE)
    assert torch.equal(load_lqc("bundled:tiny-lqc-test").decode(z), model.decode(z))
    with pytest.raises(FileNotFoundError, match="bundled:nothing"):
        load_lqc("bundled:nothing")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a langscene LQC checkpoint"):
        load_lqc(tmp_path / "other.safetensors")


def test_compression_of_a_clustered_corpus_against_an_autoencoder(one_torch_thread):
    """512-d features around 64 cluster centres; texts near the centres. Held-out features must come
    back with mean cosine >= 0.9 and the same best-matching text for >= 95% of them."""
    generator = torch.Generator().manual_seed(1)
    centres = F.normalize(torch.randn(64, 512, generator=generator), dim=1)
    texts = F.normalize(centres + 0.5 * torch.randn(64, 512, generator=generator) / 512**0.5, dim=1)
    train = clustered_corpus(20000, centres, 0.3, generator)
    held_out = clustered_corpus(2000, centres, 0.3, generator)
    config = LqcTrainConfig(steps=300, batch_size=256)  # K=2048, D=3, weights 1, 0.2, 0.5
    lqc = train_lqc(train, texts, config)
    autoencoder = train_lqc(train, texts, LqcTrainConfig(**{**config.__dict__, "quantized": False}))
    lqc_metrics = reconstruction_metrics(lqc.model, held_out, texts)
    ae_metrics = reconstruction_metrics(autoencoder.model, held_out, texts)
    print(
        json.dumps(
            {
                "lqc": lqc_metrics,
                "autoencoder": ae_metrics,
                "lqc_final_loss": lqc.losses[-1],
                "autoencoder_final_loss": autoencoder.losses[-1],
            }
        )
    )
    assert lqc_metrics["mean_cosine"] >= 0.9 and lqc_metrics["text_match"] >= 0.95
    # losses went down, and the untrained model is far from these numbers
    assert lqc.losses[-1]["reconstruction"] < 0.5 * lqc.losses[0]["reconstruction"]
    assert reconstruction_metrics(LQC(config), held_out, texts)["mean_cosine"] < 0.5
    # the baseline trained too (its numbers are reported, the paper's claim is a comparison, not a bar)
    assert ae_metrics["mean_cosine"] > 0.5


def test_text_ranking_term_is_a_kl_per_group_and_reaches_training():
    """The ranking term: zero when the decoded features rank every group's texts as the originals do
    (same features), the KL of the two softmaxes otherwise (by hand), and train_lqc adds it to the total."""
    generator = torch.Generator().manual_seed(2)
    groups = [F.normalize(torch.randn(t, 64, generator=generator), dim=1) for t in (3, 5)]
    x = F.normalize(torch.randn(16, 64, generator=generator), dim=1)
    x_hat = F.normalize(torch.randn(16, 64, generator=generator), dim=1)
    loss = text_ranking_loss(groups, temperature=20.0, weight=0.5)
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    expected = 0.0
    for texts in groups:
        p, q = (20.0 * x @ texts.T).softmax(1), (20.0 * x_hat @ texts.T).softmax(1)
        expected += float((p * (p.log() - q.log())).sum(1).mean())
    assert float(loss(x, x_hat)) == pytest.approx(0.5 * expected, rel=1e-5)
    config = LqcTrainConfig(**{**SMALL.__dict__, "steps": 3, "batch_size": 8})
    result = train_lqc(torch.randn(40, 64, generator=generator), None, config, extra_loss=loss)
    record = result.losses[-1]
    assert record["extra"] > 0 and record["total"] == pytest.approx(
        record["reconstruction"] + 0.2 * record["codebook"] + record["extra"], rel=1e-5
    )
    with pytest.raises(ValueError, match="temperature"):
        text_ranking_loss(groups, temperature=0.0, weight=1.0)


def test_training_input_errors():
    with pytest.raises(ValueError, match=r"features must be \[N, 64\]"):
        train_lqc(torch.zeros(10, 32), None, SMALL)
    with pytest.raises(ValueError, match=r"texts must be \[T, 64\]"):
        train_lqc(torch.randn(10, 64), torch.zeros(3, 8), SMALL)


def test_name_round_trip_counts_the_names_a_compressor_keeps():
    """A compressor that decodes everything to name 0 keeps name 0 and loses names 1-3; name 4 has no
    features. Features are their name plus a little of the negative: relevant before the round trip."""
    names, negatives = torch.eye(64)[:5], torch.eye(64)[5:6]
    labels = torch.arange(4).repeat_interleave(5)
    features = F.normalize(names[labels] + 0.1 * negatives, dim=1)
    model = small_model().eval()
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.copy_(names[0])
    result = name_round_trip(model, features, labels, names, negatives)
    assert result.count.tolist() == [5, 5, 5, 5, 0]
    assert result.clip[:4].tolist() == [1.0] * 4 and result.round_trip[:4].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert result.clip[4].isnan() and result.round_trip[4].isnan()
    assert result.overall() == pytest.approx((1.0, 0.25))
    with pytest.raises(ValueError, match="rows of names"):
        name_round_trip(model, features, labels + 1, names[:4], negatives)


def test_feature_corpora_carry_the_subject_of_each_mask(one_torch_thread):
    views = render_views(range(3), 1, exclude_held_out=False)
    clip, mapper = tiny_clip(), FelzenszwalbMasks()
    masks = labelled_mask_corpus(clip, views, mapper)
    assert torch.equal(masks.features, mask_feature_corpus(clip, views, mapper))
    table = views.shape[0, 0]
    labelled = masks.color >= 0
    assert torch.equal(labelled, masks.shape >= 0) and 0 < int(labelled.sum()) < len(masks)
    assert bool((masks.shape[labelled] == table).any()) and bool(masks.objects.any())
    subjects = {(int(c), int(s)) for c, s in zip(views.color.flatten(), views.shape.flatten()) if c >= 0}
    assert {(int(c), int(s)) for c, s in zip(masks.color[labelled], masks.shape[labelled])} <= subjects
    objects = object_features(clip, views, 80)
    expected = [
        (int(views.color[v, k]), int(views.shape[v, k]))
        for v in range(3)
        for k in range(1, 16)
        if (views.ids[v] == k).sum() >= 80
    ]
    assert list(zip(objects.color.tolist(), objects.shape.tolist())) == expected
    assert bool(objects.objects.all()) and objects.features.shape == (len(expected), 32)
    # an RGB-D mapper gets each view's depth: its large level holds whole objects, labelled with them
    depth = labelled_mask_corpus(clip, views, DepthMasks())
    assert bool(depth.objects.any()) and depth.features.shape[1] == 32
    # masks computed apart (the script caches them while the CLIP trains) give the same corpus
    precomputed = labelled_mask_corpus(clip, views, mapper, view_masks(views, mapper))
    assert torch.equal(precomputed.features, masks.features) and torch.equal(precomputed.shape, masks.shape)
