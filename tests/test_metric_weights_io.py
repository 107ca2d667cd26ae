"""Metric alpha/beta files: the official DISTS weights.pt layout, asymlib's safetensors export, pyiqa interop."""
from __future__ import annotations

import json

import pytest
import torch

import asymlib
from asymlib.errors import CheckpointError, ConfigError
from asymlib.metrics import export_metric, read_metric_weights
from tests.test_metric import _blur, _real_images, _save_torchvision_vgg16

VGG_CHANNELS = 3 + 64 + 128 + 256 + 512 + 512  # 1475


def _pairs(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    ref = _real_images(size)
    return _blur(ref, 1.5), ref


def _official_file(path, seed: int = 0, channels: int = VGG_CHANNELS):
    """A file in the layout of DISTS-pytorch's weights.pt: {"alpha", "beta"}, each (1, C, 1, 1), positive."""
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(1, channels, 1, 1, generator=g) + 0.01
    beta = torch.rand(1, channels, 1, 1, generator=g) + 0.01
    torch.save({"alpha": alpha, "beta": beta}, path)
    return alpha, beta


def test_official_dists_file_loads_raw_weights(tmp_path):
    path = tmp_path / "weights.pt"
    alpha, beta = _official_file(path, seed=1)
    loaded = asymlib.create_metric("dists", backbone="vgg16", weights="random", seed=2, metric_weights=path)
    direct = asymlib.create_metric("dists", backbone="vgg16", weights="random", seed=2)
    default = asymlib.create_metric("dists", backbone="vgg16", weights="random", seed=2)
    with torch.no_grad():
        direct.alpha.copy_(alpha)
        direct.beta.copy_(beta)
        x, y = _pairs()
        d_loaded, d_direct, d_default = loaded(x, y), direct(x, y), default(x, y)
    assert torch.equal(loaded.alpha, alpha) and torch.equal(loaded.beta, beta)  # stored raw, as DISTS does
    assert torch.allclose(d_loaded, d_direct, atol=1e-6, rtol=0)
    assert (d_loaded - d_default).abs().max() > 1e-4  # the file's weights were used, not the initialization
    # The official formula: 1 - sum(alpha l + beta s) / (sum alpha + sum beta), computed here from the terms.
    with torch.no_grad():
        l_terms, s_terms = loaded.pair_terms(x, y)
    w_sum = alpha.sum() + beta.sum()
    expected = 1 - (l_terms * alpha.flatten()).sum(1) / w_sum - (s_terms * beta.flatten()).sum(1) / w_sum
    assert torch.allclose(d_loaded, expected, atol=1e-6, rtol=0)


def test_official_file_equals_pyiqa_with_the_same_file(tmp_path, monkeypatch):
    """The official file read by pyiqa's DISTS (pretrained_model_path) and by asymlib gives the same distances."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    vgg_file = _save_torchvision_vgg16(tmp_path / "torch")
    path = tmp_path / "weights.pt"
    alpha, _ = _official_file(path, seed=4)
    from pyiqa.archs.dists_arch import DISTS

    peer = DISTS(pretrained_model_path=str(path)).eval()
    assert torch.equal(peer.alpha, alpha)  # pyiqa loads non-strictly: make sure it did load
    ours = asymlib.create_metric("dists", backbone="vgg16", weights=vgg_file, metric_weights=path).eval()
    x, y = _pairs(96)
    with torch.no_grad():
        a, b = ours(x, y), peer(x, y).flatten()
    assert torch.allclose(a, b, atol=1e-5, rtol=0), (a - b).abs().max()
    assert (a > 1e-3).all()


def test_malformed_weight_files_are_named(tmp_path):
    short = tmp_path / "short_weights.pt"
    _official_file(short, channels=VGG_CHANNELS - 1)
    with pytest.raises(CheckpointError, match=r"short_weights\.pt.*\(1, 1474, 1, 1\).*needs \(1, 1475, 1, 1\)"):
        asymlib.create_metric("dists", backbone="vgg16", weights="random", metric_weights=short)
    flat = tmp_path / "flat.pt"
    torch.save({"alpha": torch.rand(VGG_CHANNELS), "beta": torch.rand(VGG_CHANNELS)}, flat)
    with pytest.raises(CheckpointError, match=r"flat\.pt: alpha has shape \(1475,\), expected \(1, C, 1, 1\)"):
        read_metric_weights(flat)
    other = tmp_path / "other_keys.pt"
    torch.save({"a": torch.rand(1, VGG_CHANNELS, 1, 1)}, other)
    with pytest.raises(CheckpointError, match=r"other_keys\.pt: no 'alpha' tensor.*found keys \['a'\]"):
        read_metric_weights(other)
    with pytest.raises(CheckpointError, match="not found: .*missing.pt"):
        read_metric_weights(tmp_path / "missing.pt")


def test_export_reload_rebuilds_the_recorded_backbone(tmp_path):
    metric = asymlib.create_metric("dists", backbone="resnet50", weights="random", seed=3)
    with torch.no_grad():  # weights that the seed's initialization would not reproduce
        metric.alpha.uniform_(0.0, 1.0)
        metric.beta.uniform_(0.0, 1.0)
    path = tmp_path / "out" / "resnet50_metric.safetensors"
    assert export_metric(metric, path, provenance={"run": "metric_train/x", "srcc": 0.9}) == path
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # atomic: no temporary left behind

    info = read_metric_weights(path)
    assert (info.backbone, info.backbone_weights) == ("resnet50", "random(seed=3)")
    assert info.metadata["provenance"] == {"run": "metric_train/x", "srcc": 0.9}
    assert info.metadata["asymlib_version"] == asymlib.__version__
    assert sum(info.metadata["channels"]) == metric.alpha.shape[1]

    x, y = _pairs()
    for kwargs in ({"metric_weights": path}, {"weights": path}):
        again = asymlib.create_metric("dists", **kwargs)
        assert again.backbone.name == "resnet50" and again.backbone.weights_source == "random(seed=3)"
        with torch.no_grad():
            assert torch.allclose(again(x, y), metric(x, y), atol=1e-7, rtol=0)
    fresh = asymlib.create_metric("dists", backbone="resnet50", weights="random", seed=3)
    with torch.no_grad():
        assert (fresh(x, y) - metric(x, y)).abs().max() > 1e-4  # the round trip is not a no-op

    with pytest.raises(ConfigError, match=r"backbone='vgg16'.*resnet50_metric\.safetensors.*'resnet50'"):
        asymlib.create_metric("dists", backbone="vgg16", metric_weights=path)
    with pytest.raises(ConfigError, match="pass one of them"):
        asymlib.create_metric("dists", weights=path, metric_weights=path)
    with pytest.warns(UserWarning, match=r"random\(seed=3\).*random\(seed=4\)"):
        asymlib.create_metric("dists", seed=4, metric_weights=path)
    with pytest.raises(ConfigError, match=r"\.safetensors"):
        export_metric(metric, tmp_path / "metric.pt")
    with pytest.raises(ConfigError, match=r"VGG-16 metric.*'resnet50'"):
        export_metric(metric, tmp_path / "metric.pth", layout="dists")


def test_official_layout_export_loads_into_pyiqa(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    vgg_file = _save_torchvision_vgg16(tmp_path / "torch")
    loss = asymlib.create_metric("dists", backbone="vgg16", weights=vgg_file, seed=5, as_loss=True)
    metric = loss.metric
    with torch.no_grad():
        metric.alpha.uniform_(0.0, 1.0)
        metric.beta.uniform_(0.0, 1.0)
    path = tmp_path / "DISTS_weights.pth"
    export_metric(loss, path, layout="dists")  # a MetricLoss is unwrapped
    state = torch.load(path, weights_only=True)
    assert sorted(state) == ["alpha", "beta"]
    assert state["alpha"].shape == state["beta"].shape == (1, VGG_CHANNELS, 1, 1)
    assert state["alpha"].dtype == torch.float32
    from pyiqa.archs.dists_arch import DISTS

    peer = DISTS(pretrained_model_path=str(path)).eval()
    assert torch.equal(peer.alpha, metric.alpha) and torch.equal(peer.beta, metric.beta)
    x, y = _pairs(64)
    with torch.no_grad():
        a, b = metric(x, y), peer(x, y).flatten()
    assert torch.allclose(a, b, atol=1e-5, rtol=0), (a - b).abs().max()
    # and the official-layout file reads back into asymlib unchanged
    again = asymlib.create_metric("dists", backbone="vgg16", weights=vgg_file, metric_weights=path)
    assert torch.equal(again.alpha, metric.alpha) and torch.equal(again.beta, metric.beta)
    with pytest.warns(UserWarning, match="provenance is not stored"):
        export_metric(metric, tmp_path / "w2.pth", layout="dists", provenance={"a": 1})
    assert json.loads(json.dumps(read_metric_weights(tmp_path / "w2.pth").metadata)) == {}
