"""Tests of asymlib.iqa.stats: correlations, logistic fits, bootstrap and the IQA protocols."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from asymlib.errors import ConfigError
from asymlib.iqa.stats import (
    PROTOCOL_GLOBAL,
    PROTOCOL_WITHIN_GROUP,
    Logistic4Fit,
    bootstrap_ci,
    evaluate_iqa,
    fit_logistic4,
    fit_rescaling,
    krcc,
    logistic4,
    plcc,
    plcc_with_fit,
    srcc,
)


def test_perfect_and_reversed_ranks():
    x = np.arange(20.0)
    y = np.exp(x / 5)  # monotone but nonlinear
    assert srcc(x, y) == pytest.approx(1.0)
    assert krcc(x, y) == pytest.approx(1.0)
    assert srcc(x, -y) == pytest.approx(-1.0)
    assert krcc(x, -y) == pytest.approx(-1.0)
    assert plcc(x, 3 * x + 1, fit=False) == pytest.approx(1.0)


def test_accepts_lists_and_tensors():
    x = [1.0, 2.0, 3.0, 5.0, 4.0]
    y = [2.0, 1.0, 4.0, 6.0, 7.0]
    expected = sps.spearmanr(x, y).statistic
    assert srcc(torch.tensor(x), np.array(y)) == pytest.approx(expected)
    assert krcc(x, y) == pytest.approx(sps.kendalltau(x, y).statistic)


def test_constant_input_gives_nan_and_length_mismatch_raises():
    assert math.isnan(srcc([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        srcc([1, 2, 3], [1, 2])


def test_evaluate_flips_directions():
    rng = np.random.default_rng(0)
    quality = rng.uniform(1, 5, 60)
    distance = 1.0 / quality + rng.normal(0, 0.01, 60)  # lower distance = better quality
    agree = evaluate_iqa(distance, quality, pred_higher_is_better=False, target_higher_is_better=True,
                         n_resamples=0)
    assert agree["srcc"] > 0.9 and agree["krcc"] > 0.7 and agree["plcc"] > 0.9
    assert agree["protocol"] == PROTOCOL_GLOBAL
    wrong = evaluate_iqa(distance, quality, pred_higher_is_better=True, target_higher_is_better=True,
                         n_resamples=0)
    assert wrong["srcc"] == pytest.approx(-agree["srcc"])
    # Flipping both sides changes nothing.
    both = evaluate_iqa(-distance, -quality, pred_higher_is_better=True, target_higher_is_better=False,
                        n_resamples=0)
    assert both["srcc"] == pytest.approx(agree["srcc"])


def test_logistic_fit_recovers_parameters():
    rng = np.random.default_rng(1)
    true = (4.5, 1.2, 0.3, 0.8)
    x = rng.uniform(-4, 4, 400)
    y = logistic4(x, *true) + rng.normal(0, 0.05, x.size)
    fit = fit_logistic4(x, y)
    assert isinstance(fit, Logistic4Fit) and fit.success and fit.increasing
    np.testing.assert_allclose(fit.params[:3], true[:3], atol=0.1)
    assert abs(fit.params[3]) == pytest.approx(true[3], abs=0.1)
    np.testing.assert_allclose(fit(x), logistic4(x, *fit.params))


def test_logistic_fit_failure_is_flagged():
    fit = fit_logistic4([2.0, 2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert not fit.success and "constant" in fit.message
    value, fit = plcc_with_fit([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])  # too few points for 4 parameters
    assert not fit.success
    assert value == pytest.approx(np.corrcoef([1, 2, 3], [1, 3, 2])[0, 1])
    with pytest.raises(ConfigError):
        fit_logistic4([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], fixed={"eta1": 1.0})


def test_plcc_after_logistic_beats_linear_on_sigmoid():
    rng = np.random.default_rng(2)
    x = rng.uniform(-6, 6, 300)
    y = logistic4(x, 5.0, 1.0, 0.0, 1.0) + rng.normal(0, 0.1, x.size)
    value, fit = plcc_with_fit(x, y)
    assert fit.success
    assert value >= plcc(x, y, fit=False)
    assert value > 0.98


def test_plcc_of_a_decreasing_relation_is_that_of_the_fitted_prediction():
    """pyiqa / VQEG: PLCC correlates the logistic-fitted prediction with the targets; the fit absorbs the
    direction, so a disagreeing predictor gets a positive PLCC while its SRCC stays negative."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-6, 6, 300)
    y = logistic4(x, 5.0, 1.0, 0.0, 1.0) + rng.normal(0, 0.1, x.size)
    value, fit = plcc_with_fit(-x, y)
    assert fit.success and not fit.increasing
    assert value == pytest.approx(np.corrcoef(fit(-x), y)[0, 1], abs=1e-12)
    assert value > 0.98 and value > abs(plcc(-x, y, fit=False))
    assert value == pytest.approx(plcc_with_fit(x, y)[0], abs=1e-6)
    assert srcc(-x, y) < -0.9
    out = evaluate_iqa(-x, y, pred_higher_is_better=True, target_higher_is_better=True, n_resamples=200, seed=1)
    assert out["plcc"] == pytest.approx(value) and out["srcc"] < -0.9
    assert 0.9 < out["plcc_low"] <= out["plcc"] <= out["plcc_high"] <= 1.0  # the interval is not flipped either


def test_bootstrap_ci_contains_estimate_and_narrows():
    rng = np.random.default_rng(3)

    def sample(n):
        x = rng.normal(size=n)
        return x, x + rng.normal(size=n)

    widths = []
    for n in (40, 640):
        x, y = sample(n)
        low, high = bootstrap_ci(srcc, x, y, n_resamples=300, seed=0)
        assert low <= srcc(x, y) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    # Same seed, same interval; vectorized and looped means agree.
    v = rng.normal(size=50)
    assert bootstrap_ci(np.mean, v, seed=5) == bootstrap_ci(np.mean, v, seed=5)
    looped = bootstrap_ci(np.mean, v, seed=5, n_resamples=200)
    vec = bootstrap_ci(lambda a: a.mean(axis=-1), v, seed=5, n_resamples=200, vectorized=True)
    assert looped == pytest.approx(vec)


def test_bootstrap_ci_resamples_whole_groups():
    # Every group holds identical values: a group bootstrap of the mean only sees group means.
    values = np.repeat([0.0, 1.0, 2.0, 3.0], 5)
    groups = np.repeat(["a", "b", "c", "d"], 5)
    low, high = bootstrap_ci(np.mean, values, groups=groups, n_resamples=500, seed=0)
    assert 0.0 <= low <= 1.5 <= high <= 3.0
    with pytest.raises(ConfigError):
        bootstrap_ci(np.mean, values, level=1.5)


def test_evaluate_global_ci_brackets_estimates():
    rng = np.random.default_rng(4)
    x = rng.normal(size=200)
    y = x + rng.normal(0, 0.7, 200)
    out = evaluate_iqa(x, y, pred_higher_is_better=True, target_higher_is_better=True, n_resamples=300)
    for key in ("srcc", "krcc", "plcc"):
        assert out[f"{key}_low"] <= out[key] <= out[f"{key}_high"], key
    assert out["n"] == 200 and out["logistic_fit"] is True


def test_within_group_protocol_hand_computed():
    # Group A: perfect agreement; group B: one swapped pair; group C: 2 items (skipped);
    # group D: constant prediction (skipped). Distances vs distortion levels: both lower-is-better.
    pred = [1, 2, 3, 4] + [1, 3, 2, 4] + [1, 2] + [5, 5, 5]
    level = [1, 2, 3, 4] * 2 + [1, 2] + [1, 2, 3]
    groups = ["A"] * 4 + ["B"] * 4 + ["C"] * 2 + ["D"] * 3
    out = evaluate_iqa(pred, level, pred_higher_is_better=False, target_higher_is_better=False,
                       groups=groups, n_resamples=200)
    # Group B: rank differences (0, 1, -1, 0) -> rho = 1 - 6*2/(4*15) = 0.8; tau = (5 - 1)/6;
    # Pearson equals rho because the values are ranks already.
    assert out["srcc"] == pytest.approx((1.0 + 0.8) / 2)
    assert out["krcc"] == pytest.approx((1.0 + 4 / 6) / 2)
    assert out["plcc"] == pytest.approx((1.0 + 0.8) / 2)
    assert out["n_groups"] == 2 and out["n_groups_skipped"] == 2 and out["n"] == 13
    assert out["protocol"] == PROTOCOL_WITHIN_GROUP
    # Resampling two groups: the mean lies between the two group values.
    assert 0.8 - 1e-9 <= out["srcc_low"] <= out["srcc"] <= out["srcc_high"] <= 1.0 + 1e-9


def test_within_group_bootstrap_brackets_and_narrows_with_more_groups():
    rng = np.random.default_rng(5)
    levels = 5
    widths = []
    for n_groups in (20, 100):
        level = np.tile(np.arange(1, levels + 1, dtype=float), n_groups)
        pred = level + rng.normal(0, 1.0, level.size)
        groups = np.repeat(np.arange(n_groups), levels)
        out = evaluate_iqa(pred, level, pred_higher_is_better=False, target_higher_is_better=False,
                           groups=groups, n_resamples=1000)
        assert out["srcc_low"] < out["srcc"] < out["srcc_high"]
        widths.append(out["srcc_high"] - out["srcc_low"])
    assert widths[1] < 0.7 * widths[0]  # ~ 1/sqrt(5) expected


def test_rescaling_fixed_bounds_maps_into_1_100():
    rng = np.random.default_rng(6)
    raw = rng.uniform(0, 10, 200)
    mos = logistic4(raw, 100.0, 1.0, 5.0, 1.5) + rng.normal(0, 2.0, raw.size)
    fit = fit_rescaling(raw, mos)
    assert fit.success and fit.fixed == ("b1", "b2")
    assert fit.params[0] == 100.0 and fit.params[1] == 1.0
    assert fit.params[2] == pytest.approx(5.0, abs=0.3)
    out = fit(np.concatenate([raw, [-1e6, 1e6]]))
    assert out.min() >= 1.0 and out.max() <= 100.0
    assert np.all(np.diff(fit(np.sort(raw))) >= 0)
    # A lower-is-better metric is negated, so larger rescaled values still mean better quality.
    flipped = fit_rescaling(-raw, mos, higher_is_better=False)
    np.testing.assert_allclose(flipped(-raw), fit(raw), atol=1e-3)
    # MOS on another scale (e.g. 0-9) is mapped linearly onto [1, 100] first.
    scaled = fit_rescaling(raw, (mos - 1.0) / 99.0 * 9.0, mos_range=(0.0, 9.0))
    np.testing.assert_allclose(scaled(raw), fit(raw), atol=1e-3)
