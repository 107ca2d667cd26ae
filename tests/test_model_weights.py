"""``create_sr_model(weights=...)`` with official SwinIR layouts and ``create_discriminator(weights=...)``."""
from __future__ import annotations

import pytest
import torch

import asymlib
from asymlib.errors import CheckpointError, ConfigError
from tests.test_metric import _save_torchvision_vgg16


def _small_swinir(seed: int, scale: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return asymlib.create_sr_model("swinir", scale=scale, preset="small").eval()


def _lr() -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_official_swinir_layouts_load(tmp_path):
    source = _small_swinir(seed=1)
    other = _small_swinir(seed=2)
    x = _lr()
    with torch.no_grad():
        want, fresh = source(x), other(x)
    assert (want - fresh).abs().max() > 1e-3  # two seeds differ, so a silent no-op load would be caught

    official = tmp_path / "swinir_small_x4.pth"
    torch.save({"params_ema": source.state_dict()}, official)  # layout of the official SwinIR release
    loaded = asymlib.create_sr_model("swinir", scale=4, preset="small", weights=official).eval()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), source.state_dict().values()))
    with torch.no_grad():
        assert torch.allclose(loaded(x), want, atol=1e-6, rtol=0)

    both = tmp_path / "basicsr_net_g.pth"  # BasicSR keeps both; the EMA weights are taken
    torch.save({"params": other.state_dict(), "params_ema": source.state_dict()}, both)
    bare = tmp_path / "ddp_bare.pth"  # a bare state dict saved from DistributedDataParallel
    torch.save({f"module.{k}": v for k, v in other.state_dict().items()}, bare)
    with torch.no_grad():
        assert torch.allclose(asymlib.create_sr_model(preset="small", weights=both).eval()(x), want, atol=1e-6)
        assert torch.allclose(asymlib.create_sr_model(preset="small", weights=bare).eval()(x), fresh, atol=1e-6)


def test_swinir_weights_errors_name_the_file(tmp_path):
    official = tmp_path / "swinir_small_x4.pth"
    torch.save({"params": _small_swinir(seed=1).state_dict()}, official)
    with pytest.raises(CheckpointError, match=r"swinir_small_x4\.pth \(params\) does not match.*scale 2.*"
                                              r"unexpected keys: .*upsample\.2"):
        asymlib.create_sr_model(scale=2, preset="small", weights=official)
    with pytest.raises(CheckpointError,
                       match=r"swinir_small_x4\.pth.*shape mismatches: conv_after_body\.bias \(60,\) vs model \(48,\)"):
        asymlib.create_sr_model(scale=4, preset="small", embed_dim=48, num_heads=(6, 6, 6, 6), weights=official)
    junk = tmp_path / "junk.pth"
    torch.save({"params": {"conv_first.weight": 3}}, junk)
    with pytest.raises(CheckpointError, match=r"junk\.pth: entries conv_first\.weight of params are not tensors"):
        asymlib.create_sr_model(preset="small", weights=junk)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"SR weights file .*corrupt\.pth is corrupt or unreadable"):
        asymlib.create_sr_model(preset="small", weights=corrupt)
    with pytest.raises(CheckpointError, match=r"not found: .*absent\.pth"):
        asymlib.create_sr_model(preset="small", weights=tmp_path / "absent.pth")


def test_discriminator_weights_file(tmp_path):
    disc = asymlib.create_discriminator("vgg16", "patch", spectral_norm=True, seed=1)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    disc.train()
    disc(x)  # one power iteration: the spectral-norm vectors move away from their seeded start
    with torch.no_grad():  # as if trained (a bias: spectral norm makes weights scale-invariant)
        next(p for n, p in disc.head.named_parameters() if n.endswith("bias")).add_(0.5)
    path = tmp_path / "discriminator.pt"
    torch.save({"state_dict": disc.state_dict(), "step": 7, "describe": {"head": "patch"}}, path)  # trainer layout
    again = asymlib.create_discriminator("vgg16", "patch", spectral_norm=True, seed=1, weights=path)
    fresh = asymlib.create_discriminator("vgg16", "patch", spectral_norm=True, seed=1)
    for m in (disc, again, fresh):
        m.eval()
    with torch.no_grad():
        want = disc(x)
        assert torch.allclose(again(x), want, atol=1e-6, rtol=0)
        assert (fresh(x) - want).abs().max() > 1e-4
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), disc.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"discriminator\.pt \(state_dict\) does not match.*head 'vanilla'"):
        asymlib.create_discriminator("vgg16", "vanilla", spectral_norm=True, seed=1, weights=path)
    with pytest.raises(CheckpointError, match=r"no such file"):
        asymlib.create_discriminator("vgg16", "patch", weights=tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match=r"'esrgan_vgg128' has no 'imagenet' weights"):
        asymlib.create_discriminator("esrgan_vgg128", weights="imagenet")


def test_discriminator_imagenet_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    vgg_file = _save_torchvision_vgg16(tmp_path / "torch")
    disc = asymlib.create_discriminator("vgg16", "vanilla", weights="imagenet")
    assert disc.backbone.weights_source.startswith("imagenet(")
    want = torch.load(vgg_file, weights_only=True)["features.0.weight"]
    got = dict(disc.backbone.backbone_state_dict())
    first_conv = next(v for k, v in got.items() if k.endswith("weight") and v.shape == want.shape)
    assert torch.equal(first_conv, want)
    assert any(p.requires_grad for p in disc.backbone.parameters())  # a discriminator trains its backbone
