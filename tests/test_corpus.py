"""Tests of the embedded image corpus, the synthetic distortions and the synthetic FR benchmark."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from asymlib.data.corpus import embedded_images, embedded_textures, list_embedded_images
from asymlib.data.distortions import NUM_LEVELS, distort, get_distortion, list_distortions
from asymlib.errors import ConfigError, InputSizeError, UnknownNameError
from asymlib.iqa.stats import PROTOCOL_WITHIN_GROUP, evaluate_iqa
from asymlib.iqa.synthetic import SyntheticFRBenchmark, resize_center_crop

COLOR = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field", "retina",
         "immunohistochemistry"]


@pytest.fixture(scope="module")
def astronaut128() -> torch.Tensor:
    return resize_center_crop(embedded_images(["astronaut"])["astronaut"], 128)


@pytest.fixture(scope="module")
def bench() -> SyntheticFRBenchmark:
    return SyntheticFRBenchmark(crop=64)


def test_corpus_loads_offline_with_expected_shapes():
    assert set(COLOR) == set(list_embedded_images("color"))
    assert list_embedded_images("texture") == ["brick", "grass", "gravel"]
    images = embedded_images()
    assert set(COLOR) | {"brick", "grass", "gravel"} <= set(images)
    assert images["astronaut"].shape == (3, 512, 512)
    for name, image in images.items():
        assert image.dtype == torch.float32 and image.dim() == 3 and image.shape[0] == 3, name
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0, name
    textures = embedded_textures()
    assert list(textures) == ["brick", "grass", "gravel"]
    for image in textures.values():
        assert image.shape == (3, 512, 512)
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # gray replicated


def test_corpus_returns_clones_and_rejects_unknown_names():
    first = embedded_images(["chelsea"])["chelsea"]
    first.zero_()
    assert float(embedded_images(["chelsea"])["chelsea"].max()) > 0.0
    with pytest.raises(UnknownNameError, match="lena"):
        embedded_images(["lena"])


def test_distortion_registry():
    kinds = list_distortions()
    assert len(kinds) >= 8 and len(set(kinds)) == len(kinds)
    assert all(len(get_distortion(k).levels) == NUM_LEVELS for k in kinds)
    with pytest.raises(UnknownNameError, match="gaussian_blur"):
        distort(torch.zeros(3, 8, 8), "no_such_distortion", 1)


@pytest.mark.parametrize("level", [0, 6, 2.5, True])
def test_distort_rejects_bad_levels(level):
    with pytest.raises(ConfigError):
        distort(torch.zeros(3, 16, 16), "gaussian_blur", level)


def test_distort_rejects_bad_shapes():
    with pytest.raises(InputSizeError):
        distort(torch.zeros(1, 16, 16), "jpeg", 1)


@pytest.mark.parametrize("kind", list_distortions())
def test_distortion_is_deterministic_bounded_and_monotone(kind, astronaut128):
    image = astronaut128
    errors = []
    for level in range(1, NUM_LEVELS + 1):
        out = distort(image, kind, level, seed=3)
        assert out.shape == image.shape and out.dtype == torch.float32
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert torch.equal(out, distort(image, kind, level, seed=3))
        errors.append(float((out - image).abs().mean()))
    assert all(a < b for a, b in itertools.pairwise(errors)), (kind, errors)
    assert errors[0] > 0.0


def test_random_distortions_depend_on_seed(astronaut128):
    a = distort(astronaut128, "gaussian_noise", 3, seed=0)
    b = distort(astronaut128, "gaussian_noise", 3, seed=1)
    assert not torch.equal(a, b)


def test_resize_center_crop_shape():
    out = resize_center_crop(torch.rand(3, 300, 451), 96)
    assert out.shape == (3, 96, 96)


def test_benchmark_interface(bench):
    n_refs, n_kinds = len(COLOR), len(list_distortions())
    assert len(bench) == n_refs * n_kinds * NUM_LEVELS
    assert bench.name == "Synthetic levels (embedded corpus)"
    assert bench.score_name == "synthetic distortion level (1-5)"
    assert bench.higher_is_better is False
    assert list(bench.records.columns) == ["dist", "ref", "score", "group", "distortion", "level"]
    row = bench.records.iloc[2]
    assert row["dist"] == f"{row['ref']}|{row['distortion']}|{row['level']}"
    assert row["group"] == f"{row['ref']}|{row['distortion']}"
    assert row["score"] == float(row["level"])
    item = bench[2]
    assert set(item) == {"dist", "ref", "score", "index"}
    assert item["dist"].shape == item["ref"].shape == (3, 64, 64)
    assert item["dist"].dtype == torch.float32 and 0.0 <= float(item["dist"].min()) <= float(item["dist"].max()) <= 1.0
    assert item["score"].dtype == torch.float32 and item["score"].dim() == 0
    assert float(item["score"]) == row["score"] and item["index"] == 2
    with pytest.raises(IndexError):
        bench[len(bench)]


def test_benchmark_subset_and_split(bench):
    sub = bench.subset([5, 0])
    assert len(sub) == 2 and sub.records["dist"].tolist() == bench.records["dist"].iloc[[5, 0]].tolist()
    assert torch.equal(sub[0]["dist"], bench[5]["dist"]) and sub[0]["index"] == 0
    mask = (bench.records["level"] == 5).to_numpy()
    assert set(bench.subset(mask).records["level"]) == {5} and len(bench.subset(torch.arange(3))) == 3
    train, val, test = bench.split(0.6, 0.2, seed=0)
    parts = [set(p.records["ref"]) for p in (train, val, test)]
    assert all(parts)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(COLOR)
    assert len(train) + len(val) + len(test) == len(bench)
    assert [p.records["ref"].tolist() for p in bench.split(seed=0)] == [
        p.records["ref"].tolist() for p in (train, val, test)]


def test_benchmark_levels_track_pixel_error(bench):
    # Mean absolute error is a distance (lower is better), like the levels: within every group
    # it should rank the levels almost perfectly.
    mae = np.array([float((bench[i]["dist"] - bench[i]["ref"]).abs().mean()) for i in range(len(bench))])
    out = evaluate_iqa(mae, bench.records["score"], pred_higher_is_better=False, target_higher_is_better=False,
                       groups=bench.records["group"], n_resamples=100)
    assert out["protocol"] == PROTOCOL_WITHIN_GROUP and out["n_groups"] == len(bench) // NUM_LEVELS
    assert out["srcc"] > 0.95


def test_benchmark_applies_paired_transform():
    flip = SyntheticFRBenchmark(image_names=["chelsea"], distortions=["jpeg"], levels=(2,), crop=32,
                                transform=lambda d, r: (d.flip(-1), r.flip(-1)))
    plain = SyntheticFRBenchmark(image_names=["chelsea"], distortions=["jpeg"], levels=(2,), crop=32)
    assert len(flip) == 1 and torch.equal(flip[0]["ref"], plain[0]["ref"].flip(-1))


def test_benchmark_rejects_bad_arguments():
    with pytest.raises(UnknownNameError):
        SyntheticFRBenchmark(distortions=["nope"])
    with pytest.raises(ConfigError):
        SyntheticFRBenchmark(levels=(0, 1))
    with pytest.raises(ConfigError):
        SyntheticFRBenchmark(crop=4)
