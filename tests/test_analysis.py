"""Visual analyses (recovery, texture synthesis, autoencoder, feature maps, Fig. 3 correlation) and the
comparison widget, at smoke sizes on CPU."""
from __future__ import annotations

import math
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import asymlib
from asymlib.analysis import (
    AETrainConfig,
    ObjectiveWeights,
    correlation_table,
    create_autoencoder,
    feature_maps,
    fit_image,
    gaussian_blur,
    gradient_magnitude,
    initial_image,
    metric_gradient,
    plot_autoencoder_results,
    plot_feature_maps,
    plot_iqa_vs_optimization,
    plot_recovery,
    plot_textures,
    reconstruct,
    recover_image,
    synthesize_texture,
    texture_distance,
    texture_statistics,
    train_autoencoder,
)
from asymlib.data.corpus import embedded_images, embedded_textures
from asymlib.errors import ConfigError, InputSizeError, UnknownNameError
from asymlib.widgets import HR_LABEL, LR_LABEL, ComparisonWidget, png_bytes

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def metric():
    return asymlib.create_metric("dists", backbone="vgg16", weights="random", seed=0).eval()


@pytest.fixture(scope="module")
def chelsea64():
    return fit_image(embedded_images(["chelsea"])["chelsea"], 64)


# ------------------------------------------------------------------------------------------------
# Image recovery (Fig. 12-13)
# ------------------------------------------------------------------------------------------------
def test_fit_image_and_initializations(chelsea64):
    assert chelsea64.shape == (1, 3, 64, 64) and 0 <= float(chelsea64.min()) and float(chelsea64.max()) <= 1
    noise = initial_image(chelsea64, "noise", seed=3)
    assert noise.shape == chelsea64.shape and torch.equal(noise, initial_image(chelsea64, "noise", seed=3))
    blur = initial_image(chelsea64, "blur", blur_sigma=3.0)
    # blurring keeps the mean and lowers the high-frequency energy
    assert abs(float(blur.mean() - chelsea64.mean())) < 0.01
    assert float(blur.diff(dim=-1).abs().mean()) < 0.5 * float(chelsea64.diff(dim=-1).abs().mean())
    assert torch.allclose(gaussian_blur(chelsea64, 0.0), chelsea64)
    with pytest.raises(ConfigError):
        initial_image(chelsea64, "jpeg")
    with pytest.raises(InputSizeError):
        initial_image(chelsea64, torch.rand(1, 3, 32, 32))


@pytest.mark.slow
def test_recovery_from_noise_reduces_metric(metric, chelsea64):
    alpha_before = metric.alpha.detach().clone()
    res = recover_image(metric, chelsea64, "noise", steps=25, lr=0.05, progress=False)
    assert len(res.losses) == 26
    assert res.losses[-1] < 0.35 * res.losses[0], res.losses  # from about 0.33 to below 0.1
    assert res.image.shape == chelsea64.shape
    assert 0.0 <= float(res.image.min()) and float(res.image.max()) <= 1.0
    # the recovered image is closer to the reference than the noise it started from
    assert float((res.image - chelsea64).pow(2).mean()) < 0.5 * float((res.initial - chelsea64).pow(2).mean())
    # gradient map at the start: shape of the image, equal to an independent computation
    assert res.gradient.shape == chelsea64.shape
    g = metric_gradient(metric, res.initial, chelsea64)
    assert torch.allclose(res.gradient, g, atol=1e-6, rtol=1e-4)
    mag = gradient_magnitude(res.gradient)
    assert mag.shape == (1, 64, 64) and float(mag.min()) >= 0 and float(mag.max()) <= 1
    # the metric itself is left untouched (no gradient accumulated, weights unchanged)
    assert metric.alpha.grad is None and torch.equal(metric.alpha.detach(), alpha_before)


def test_recovery_blur_start_sigmoid_and_plot(metric, chelsea64):
    res = recover_image(metric, chelsea64, "blur", steps=4, lr=0.1, parametrization="sigmoid",
                        snapshot_steps=(0, 2), progress=False)
    assert res.losses[-1] < res.losses[0]
    assert set(res.snapshots) == {0, 2} and res.snapshots[0].shape == chelsea64.shape
    fig = plot_recovery({"VGG-16-R / blur": res}, chelsea64, banner="smoke")
    assert len(fig.axes) == 5
    plt.close(fig)
    with pytest.raises(ConfigError):
        recover_image(metric, chelsea64, "noise", steps=0, progress=False)


# ------------------------------------------------------------------------------------------------
# Texture synthesis (Fig. 15)
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_texture_synthesis_lowers_texture_loss(metric):
    brick = fit_image(embedded_textures()["brick"], 96)
    target = texture_statistics(metric, brick)
    assert [t.shape[1] for t in target] == metric.chns
    # the texture distance of the exemplar to itself is 0, and it ignores spatial arrangement
    assert float(texture_distance(metric, brick, target)) == pytest.approx(0.0, abs=1e-6)
    res = synthesize_texture(metric, brick, size=64, steps=20, lr=0.05, progress=False, label="brick")
    assert res.image.shape == (1, 3, 64, 64)
    assert res.losses[-1] < 0.5 * res.losses[0], res.losses
    final = float(texture_distance(metric, res.image, target))
    assert final == pytest.approx(res.losses[-1], rel=1e-4, abs=1e-6)
    fig = plot_textures({"VGG-16-R": {"brick": res}})
    plt.close(fig)
    with pytest.raises(ConfigError):
        synthesize_texture(metric, brick, init="blur", steps=1, progress=False)


# ------------------------------------------------------------------------------------------------
# Autoencoder (Fig. 16)
# ------------------------------------------------------------------------------------------------
class _TinyDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # patch logits (B, 1, h, w)
        return self.net(x)


def _objective_value(model, batch, metric, w: ObjectiveWeights) -> float:
    with torch.no_grad():
        out = model(batch)
        return float(w.rec * (out - batch).abs().mean() + w.perceptual * metric(out, batch).mean())


def test_autoencoder_shapes_and_presets():
    ae = create_autoencoder("tiny")
    x = torch.rand(2, 3, 70, 66)  # not a multiple of 4: padded inside, cropped back
    assert ae(x).shape == x.shape
    assert ae.encode(x).shape == (2, 8, 18, 17)
    assert sum(p.numel() for p in ae.parameters()) < 100_000
    for up in ("transpose", "pixelshuffle"):
        assert create_autoencoder("tiny", upsample=up)(x).shape == x.shape
    with pytest.raises(UnknownNameError):
        create_autoencoder("huge")
    with pytest.raises(ConfigError):
        create_autoencoder("tiny", width=3)


@pytest.mark.slow
def test_autoencoder_training_decreases_loss(metric):
    images = {k: fit_image(v, 96)[0] for k, v in embedded_images(["astronaut", "coffee"]).items()}
    ae = create_autoencoder("tiny", seed=0)
    fixed = torch.stack([images["astronaut"][:, 16:80, 16:80], images["coffee"][:, 8:72, 20:84]])
    weights = ObjectiveWeights(rec=1e-2, perceptual=1.0)
    before = _objective_value(ae, fixed, metric, weights)
    cfg = AETrainConfig(steps=6, batch_size=2, crop=64, lr=2e-3, log_every=1, seed=0)
    res = train_autoencoder(ae, images, "rec_per", metric=metric, config=cfg, progress=False)
    after = _objective_value(ae, fixed, metric, weights)
    assert after < 0.8 * before, (before, after)
    assert list(res.log["step"]) == [1, 2, 3, 4, 5, 6]
    assert {"loss", "l1", "perceptual", "adversarial", "d_loss"} <= set(res.log.columns)
    assert res.log["loss"].iloc[-1] < res.log["loss"].iloc[0]
    assert metric.alpha.grad is None  # the metric is not trained
    recon = reconstruct(ae, images)
    assert set(recon) == set(images) and recon["astronaut"].shape == images["astronaut"].shape
    fig = plot_autoencoder_results(images, {"Rec.+Per.": recon}, crop=48)
    plt.close(fig)


@pytest.mark.slow
def test_autoencoder_adversarial_path(metric):
    torch.manual_seed(0)
    disc = _TinyDiscriminator()
    d_before = [p.detach().clone() for p in disc.parameters()]
    images = [fit_image(embedded_images(["rocket"])["rocket"], 64)[0]]
    cfg = AETrainConfig(steps=2, batch_size=2, crop=64, log_every=1)
    res = train_autoencoder(create_autoencoder("tiny"), images, "per_adv", metric=metric, discriminator=disc,
                            config=cfg, progress=False)
    assert (res.log["adversarial"] > 0).all() and (res.log["d_loss"] > 0).all()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(d_before, disc.parameters()))
    with pytest.raises(ConfigError, match="no discriminator"):
        train_autoencoder(create_autoencoder("tiny"), images, "per_adv", metric=metric, config=cfg, progress=False)
    with pytest.raises(ConfigError, match="no metric"):
        train_autoencoder(create_autoencoder("tiny"), images, "rec_per", config=cfg, progress=False)
    with pytest.raises(ConfigError, match="larger than"):
        train_autoencoder(create_autoencoder("tiny"), images, "rec", config=AETrainConfig(crop=128), progress=False)


def test_autoencoder_warmup_trains_l1_first():
    images = [fit_image(embedded_images(["rocket"])["rocket"], 64)[0]]
    cfg = AETrainConfig(steps=1, batch_size=2, crop=64, lr=3e-3, log_every=1, seed=0)
    cold = train_autoencoder(create_autoencoder("tiny", seed=0), images, "rec", config=cfg, progress=False)
    warm = train_autoencoder(create_autoencoder("tiny", seed=0), images, "rec", config=replace(cfg, warmup_steps=40),
                             progress=False)
    assert list(warm.log["step"]) == [1] and warm.steps == 1  # the log counts the objective's steps only
    err = {name: F.l1_loss(reconstruct(r.model, images)[0], images[0]).item() for name, r in
           (("cold", cold), ("warm", warm))}
    assert err["warm"] < 0.7 * err["cold"], err
    with pytest.raises(ConfigError, match="warmup_steps"):
        train_autoencoder(create_autoencoder("tiny"), images, "rec", config=replace(cfg, warmup_steps=-1),
                          progress=False)


class _ScaledDiscriminator(nn.Module):
    """A discriminator whose logits are multiplied by ``gain`` (NaN gain: non-finite logits)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.body = _TinyDiscriminator()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.gain


@pytest.mark.slow
def test_autoencoder_stops_as_collapsed_under_the_sr_rule(metric):
    images = [fit_image(embedded_images(["rocket"])["rocket"], 64)[0]]
    # a calm discriminator: all steps run, finished
    cfg = AETrainConfig(steps=4, batch_size=2, crop=64, log_every=1, collapse_patience=2)
    ok = train_autoencoder(create_autoencoder("tiny", seed=0), images, "per_adv", metric=metric,
                           discriminator=_ScaledDiscriminator(1.0), config=cfg, progress=False)
    assert (ok.status, ok.reason, ok.steps) == ("finished", "", 4)
    # logits over max_abs_logit on every step: stops after collapse_patience steps, as the SR trainer does
    big = train_autoencoder(create_autoencoder("tiny", seed=0), images, "per_adv", metric=metric,
                            discriminator=_ScaledDiscriminator(1e6), config=replace(cfg, max_abs_logit=10.0),
                            progress=False)
    assert big.status == "collapsed" and big.steps == 2 and "|logit| > 10.0 for 2 consecutive steps" in big.reason
    # a non-finite loss stops at once
    nan = train_autoencoder(create_autoencoder("tiny", seed=0), images, "per_adv", metric=metric,
                            discriminator=_ScaledDiscriminator(float("nan")), config=cfg, progress=False)
    assert nan.status == "collapsed" and nan.steps == 0 and "non-finite" in nan.reason
    with pytest.raises(ConfigError, match="collapse_patience"):
        train_autoencoder(create_autoencoder("tiny"), images, "rec", config=replace(cfg, collapse_patience=0),
                          progress=False)


# ------------------------------------------------------------------------------------------------
# Discriminator feature maps (Fig. 14)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg_discriminator():
    return asymlib.create_discriminator("vgg16", "patch", seed=0)


@pytest.mark.parametrize("reduce", ["mean", "absmean", "topk", "max"])
def test_feature_maps_shapes_and_range(reduce, vgg_discriminator):
    disc = vgg_discriminator
    disc.train()
    image = fit_image(embedded_images(["astronaut"])["astronaut"], 64)[0]
    maps = feature_maps(disc, image, reduce=reduce, k=4)
    assert [tuple(m.shape) for m in maps] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    for m in maps:
        assert m.dtype == torch.float32 and float(m.min()) >= 0.0 and float(m.max()) <= 1.0
        assert float(m.max()) > 0.5  # normalized, not a blank map
    assert disc.training  # mode restored
    up = feature_maps(disc, image, reduce=reduce, stages=[2, 4], upsample=True)
    assert [tuple(m.shape) for m in up] == [(64, 64), (64, 64)]
    with pytest.raises(ConfigError):
        feature_maps(disc, image, stages=[9])


def test_feature_maps_of_metric_and_plot(metric):
    image = fit_image(embedded_images(["coffee"])["coffee"], 64)[0]
    maps = feature_maps(metric, image)  # a metric's stage 0 is the input itself
    assert len(maps) == len(metric.chns) and tuple(maps[0].shape) == (64, 64)
    fig = plot_feature_maps({"VGG-16": (image, maps)})
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Fig. 3: IQA SRCC vs SR quality
# ------------------------------------------------------------------------------------------------
def test_paper_correlation_data_matches_tables():
    from asymlib.reporting import paper_correlation_data

    data = paper_correlation_data()
    assert len(data) == 24 and data["setting"].nunique() == 4 and data["metric"].nunique() == 6
    row = data[(data["setting"] == "perceptual") & (data["metric"] == "VGG-16")].iloc[0]
    assert row["iqa_srcc"] == pytest.approx(0.853) and row["sr_quality"] == pytest.approx(59.37)
    st = correlation_table(data, n_resamples=500)
    # the per-setting population std reproduces Table 1's "Std." column of the Average rows
    assert st.set_index("setting").loc["perceptual", "y_std"] == pytest.approx(5.863, abs=2e-3)
    assert st.set_index("setting").loc["reconstruction+perceptual+adversarial", "y_std"] == pytest.approx(1.555,
                                                                                                      abs=2e-3)


def test_correlation_bootstrap_contains_estimate():
    rng = np.random.default_rng(0)
    rows = []
    for s, slope in (("perceptual", 1.0), ("perceptual+adversarial", 0.0)):
        x = np.linspace(0.6, 0.9, 8)
        y = 50 + 30 * slope * x + rng.normal(0, 1.0, size=x.size)
        rows += [{"setting": s, "metric": f"m{i}", "iqa_srcc": a, "sr_quality": b}
                 for i, (a, b) in enumerate(zip(x, y))]
    data = pd.DataFrame(rows)
    st = correlation_table(data, n_resamples=1000, seed=1)
    assert list(st["setting"]) == ["perceptual", "perceptual+adversarial"]
    for r in st.itertuples():
        assert r.n == 8 and math.isfinite(r.srcc)
        assert r.ci_low <= r.srcc <= r.ci_high
        assert -1.0 <= r.ci_low <= r.ci_high <= 1.0
    strong = st.set_index("setting").loc["perceptual"]
    assert strong["srcc"] > 0.8 and strong["ci_low"] > 0.3
    assert correlation_table(data, n_resamples=1000, seed=1).equals(st)  # seeded
    fig = plot_iqa_vs_optimization(data, "SMOKE PROFILE: a banner", stats=st, alert=True)
    assert "SMOKE PROFILE" in fig._suptitle.get_text() and fig._suptitle.get_color() == "#b00020"
    assert sum(1 for ax in fig.axes if ax.get_title()) == 2
    assert "Spearman" in fig.axes[0].get_title() and "95% CI" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ConfigError):
        correlation_table(data.drop(columns=["sr_quality"]))


# ------------------------------------------------------------------------------------------------
# Comparison widget
# ------------------------------------------------------------------------------------------------
def _widget_inputs():
    gen = torch.Generator().manual_seed(0)
    hr = {k: fit_image(v, (96, 128))[0] for k, v in embedded_images(["chelsea", "coffee"]).items()}
    images = {}
    for name, h in hr.items():
        lr = torch.nn.functional.avg_pool2d(h[None], 4)[0]
        runs = {f"run{i}": (h + 0.05 * (i + 1) * torch.randn(h.shape, generator=gen)).clamp(0, 1) for i in range(3)}
        images[name] = {"lr": lr, "hr": h, "runs": runs}
    scores = {("chelsea", "run0"): {"PSNR": 25.123456, "DISTS": 0.1}, ("chelsea", "HR"): {"MANIQA": 0.5}}
    return images, scores


def test_widget_crop_is_synchronized():
    images, scores = _widget_inputs()
    w = ComparisonWidget(images, scores, runs=["run0", "run2"], crop_size=32, panel_px=96)
    assert w.panel_labels == [LR_LABEL, HR_LABEL, "run0", "run2"]
    assert type(w.widget).__name__ == "VBox"
    before = w.current_crops()
    png_before = {k: img.value for k, img in w.panel_images.items()}
    assert w.set_crop(10, 20, 24) == (10, 20, 24)
    after = w.current_crops()
    hr = images["chelsea"]["hr"].permute(1, 2, 0).numpy()
    for label, crop in after.items():
        assert crop.shape == (24, 24, 3)
        assert not np.array_equal(crop, before[label][:24, :24])
    # every panel shows the same region: the HR crop is the HR slice, each run its own slice
    np.testing.assert_allclose(after[HR_LABEL], hr[20:44, 10:34], atol=1e-6)
    run2 = images["chelsea"]["runs"]["run2"].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(after["run2"], run2[20:44, 10:34], atol=1e-6)
    lr = images["chelsea"]["lr"].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(after[LR_LABEL][0, 2], lr[5, 3], atol=1e-6)  # nearest x4: (20, 12) -> (5, 3)
    assert all(w.panel_images[k].value != png_before[k] for k in png_before)
    assert (w.x_slider.value, w.y_slider.value, w.size_slider.value) == (10, 20, 24)
    # moving a slider (as a user would) moves every panel
    w.x_slider.value = 50
    assert all(np.array_equal(c, images_slice) for c, images_slice in
               [(w.current_crops()[HR_LABEL], hr[20:44, 50:74].astype(np.float32))])
    # clamping at the border
    assert w.set_crop(10_000, -5, 40) == (128 - 40, 0, 40)


def test_widget_difference_captions_and_image_switch():
    images, scores = _widget_inputs()
    w = ComparisonWidget(images, scores, crop_size=16)
    assert w.selected_runs == ["run0", "run1", "run2"]
    caption = w._panels["run0"][3].value
    assert "PSNR: 25.12" in caption and "DISTS: 0.1" in caption and "crop PSNR" in caption
    assert "MANIQA: 0.5" in w._panels[HR_LABEL][3].value
    w.set_difference(True, gain=2.0)
    shown, crops = w.current_panels(), w.current_crops()
    np.testing.assert_allclose(shown["run1"], np.clip(2.0 * np.abs(crops["run1"] - crops[HR_LABEL]), 0, 1))
    np.testing.assert_array_equal(shown[HR_LABEL], crops[HR_LABEL])
    assert "|diff|" in w._panels["run1"][1].value
    w.select_runs(["run1"])
    assert w.panel_labels == [LR_LABEL, HR_LABEL, "run1"] and len(w.panels_box.children) == 3
    w.set_crop(100, 80)
    w.select_image("coffee")
    assert w.image_name == "coffee" and w.crop_box == (100, 80, 16)
    np.testing.assert_allclose(w.current_crops()[HR_LABEL],
                               images["coffee"]["hr"].permute(1, 2, 0).numpy()[80:96, 100:116], atol=1e-6)
    with pytest.raises(UnknownNameError):
        w.select_runs(["nope"])
    with pytest.raises(UnknownNameError):
        ComparisonWidget(images, runs=["nope"])
    bad = {"x": {"hr": torch.rand(3, 32, 32), "runs": {"a": torch.rand(3, 16, 16)}}}
    with pytest.raises(InputSizeError):
        ComparisonWidget(bad)
    assert png_bytes(np.zeros((4, 4, 3)), 16)[:8] == b"\x89PNG\r\n\x1a\n"


def test_widget_accepts_arrays_and_paths(tmp_path):
    from asymlib.imageio import save_image

    hr = fit_image(embedded_images(["rocket"])["rocket"], 64)[0]
    path = save_image(hr, tmp_path / "hr.png")
    arr = (hr.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    w = ComparisonWidget({"rocket": {"hr": path, "runs": {"a": arr, "b": hr}}})
    assert w.panel_labels == [HR_LABEL, "a", "b"]  # no LR given
    crops = w.current_crops()
    np.testing.assert_allclose(crops["a"], crops[HR_LABEL], atol=1 / 255)
