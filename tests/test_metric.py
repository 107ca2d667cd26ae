"""DISTS-style metric: definition, properties, weights sources, and equality with pyiqa's DISTS."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

import asymlib
from asymlib.backbones import L2Pool2d, create_feature_extractor
from asymlib.errors import CheckpointError, InputSizeError, UnknownNameError, WeightsUnavailableError
from asymlib.imageio import to_tensor


def _real_images(size: int = 128) -> torch.Tensor:
    imgs = [to_tensor(skdata.astronaut()), to_tensor(skdata.chelsea()), to_tensor(skdata.coffee())]
    out = []
    for im in imgs:
        h, w = im.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        out.append(im[:, top:top + size, left:left + size])
    return torch.stack(out)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _save_torchvision_vgg16(torch_home: Path, seed: int = 123) -> Path:
    import torchvision

    torch.manual_seed(seed)
    sd = torchvision.models.vgg16(weights=None).state_dict()
    path = torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return path


def test_l2pool_matches_definition():
    x = torch.rand(2, 4, 9, 9)
    out = L2Pool2d(4)(x)
    assert out.shape == (2, 4, 5, 5)
    g = torch.tensor([0.5, 1.0, 0.5])
    g = g[:, None] * g[None, :]
    g = g / g.sum()
    xp = F.pad(x * x, (1, 1, 1, 1))
    ref = torch.zeros_like(out)
    for i in range(5):
        for j in range(5):
            ref[:, :, i, j] = (xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] * g).sum((-1, -2))
    assert torch.allclose(out, (ref + 1e-12).sqrt(), atol=1e-6)


def test_equals_pyiqa_dists_with_identical_weights(tmp_path, monkeypatch):
    """Same VGG weights (a seeded torchvision file) and same alpha/beta -> same values as pyiqa's DISTS."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    vgg_file = _save_torchvision_vgg16(tmp_path / "torch")
    from pyiqa.archs.dists_arch import DISTS

    torch.manual_seed(7)
    peer = DISTS(pretrained=False).eval()
    ours = asymlib.create_metric("dists", backbone="vgg16", weights=vgg_file).eval()
    with torch.no_grad():
        ours.alpha.copy_(peer.alpha)
        ours.beta.copy_(peer.beta)
    ref = _real_images(128)
    dists = torch.cat([_blur(ref, 1.5), (ref + 0.05 * torch.randn_like(ref)).clamp(0, 1), ref.flip(-1)])
    refs = torch.cat([ref, ref, ref])
    with torch.no_grad():
        a = ours(dists, refs)
        b = peer(dists, refs).flatten()
    assert a.shape == b.shape == (9,)
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert (a > 1e-3).all()  # non-trivial distances, so the equality is not 0 == 0
    # A non-square size, through the ImageNet-cache path (torchvision's file in TORCH_HOME).
    ours_cached = asymlib.create_metric("dists", backbone="vgg16", weights="imagenet").eval()
    assert ours_cached.backbone.weights_source == "imagenet(torchvision/vgg16-397923af.pth)"
    with torch.no_grad():
        ours_cached.alpha.copy_(peer.alpha)
        ours_cached.beta.copy_(peer.beta)
        x = dists[:3, :, :96, :]
        y = refs[:3, :, :96, :]
        assert torch.allclose(ours_cached(x, y), peer(x, y).flatten(), atol=1e-5)


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50", "swin_t", "dinov2_vits14"])
def test_identity_symmetry_and_gradients(backbone):
    metric = asymlib.create_metric("dists", backbone=backbone, weights="random", seed=1)
    x = _real_images(64)
    y = _blur(x, 2.0)
    d_xx = metric(x, x)
    assert d_xx.shape == (3,)
    assert d_xx.abs().max().item() < 1e-5
    d_xy = metric(x, y)
    assert torch.allclose(d_xy, metric(y, x), atol=1e-6)
    assert (d_xy > 1e-3).all()
    y = y.clone().requires_grad_(True)
    metric(y, x).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in metric.backbone.parameters())
    assert metric.alpha.grad is not None


@pytest.mark.parametrize("backbone", ["swin_t", "clip_vit_b16", "dinov2_vits14", "convnext_tiny"])
def test_full_images_of_any_size(backbone):
    # benchmark images are scored whole: sides that are no multiple of the patch size (Ma17's SR outputs,
    # 500x333 ...) are padded, not an error; the distance stays 0 for identical images
    metric = asymlib.create_metric("dists", backbone=backbone, weights="random", seed=1)
    x = _real_images(101)[:2, :, :75, :]
    assert x.shape[-2:] == (75, 101)
    d = metric(x, _blur(x, 2.0))
    assert d.shape == (2,) and torch.isfinite(d).all() and (d > 1e-4).all()
    assert metric(x, x).abs().max().item() < 1e-5


def test_distance_increases_with_blur_level_vgg16_random():
    metric = asymlib.create_metric("dists", backbone="vgg16", weights="random", seed=0)
    x = _real_images(96)
    with torch.no_grad():
        d = [metric(_blur(x, s), x) for s in (0.5, 1.0, 2.0, 3.0, 4.0)]
    d = torch.stack(d)  # (levels, B)
    assert (d[1:] > d[:-1]).all(), d


def test_alpha_beta_init_and_projection():
    metric = asymlib.create_metric("dists", backbone="vgg16", weights="random", seed=3)
    assert metric.alpha.shape == metric.beta.shape == (1, 1475, 1, 1)
    assert abs(metric.alpha.mean().item() - 0.1) < 0.002 and abs(metric.alpha.std().item() - 0.01) < 0.002
    with torch.no_grad():
        metric.alpha.fill_(-0.5)
        metric.beta.fill_(2.0)
    metric.project_weights_()
    assert (metric.alpha >= 0).all()
    assert torch.all(metric.alpha[:, :3] == 0.02) and torch.all(metric.beta[:, :3] == 1.0)
    assert torch.all(metric.beta[:, 3:] == 2.0)


def test_vgg16_r_preset_has_fixed_random_weights():
    from asymlib.metrics import metric_from_preset

    m = metric_from_preset("vgg16_r", weights="imagenet")  # the preset keeps random weights whatever is asked
    assert m.backbone.weights_source.startswith("random")
    assert not m.alpha.requires_grad and not m.beta.requires_grad
    m2 = metric_from_preset("vgg16_r")
    assert torch.equal(m.alpha, m2.alpha)


def test_bfloat16_autocast_close_to_float32():
    metric = asymlib.create_metric("dists", backbone="vgg16", weights="random")
    x = _real_images(64)
    y = _blur(x, 1.0)
    with torch.no_grad():
        ref = metric(x, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = metric(x, y)
    assert low.dtype == torch.float32
    assert torch.allclose(low, ref, atol=2e-2, rtol=0.1)


def test_imagenet_from_hf_cache(tmp_path, monkeypatch):
    """timm weights are read from a local Hugging Face cache laid out as huggingface_hub writes it."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(5)
    full = timm.create_model("resnet50", pretrained=False)
    sd = {k: v.contiguous() for k, v in full.state_dict().items()}
    cache = tmp_path / "hub"
    repo = cache / "models--timm--resnet50.tv_in1k"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    save_file(sd, str(snap / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    fx = create_feature_extractor("resnet50", weights="imagenet")
    assert fx.weights_source == "imagenet(timm/resnet50.tv_in1k@0123abcd/model.safetensors)"  # repository, revision
    assert torch.equal(fx.backbone_state_dict()["model.conv1.weight"], sd["conv1.weight"])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        normed = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        expected = full.eval().forward_intermediates(normed, indices=5, intermediates_only=True)
        got = fx(x)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, expected))


def test_imagenet_unavailable_is_a_clear_error():
    with pytest.raises(WeightsUnavailableError, match="not in the local cache"):
        asymlib.create_metric("dists", backbone="vgg16", weights="imagenet")


def test_unknown_backbone():
    with pytest.raises(UnknownNameError, match="unknown backbone 'vgg17'"):
        asymlib.create_metric("dists", backbone="vgg17", weights="random")
    with pytest.raises(UnknownNameError, match="unknown metric"):
        asymlib.create_metric("lpips_xyz")


def test_too_small_input():
    metric = asymlib.create_metric("dists", backbone="vgg16", weights="random")
    x = torch.rand(1, 3, 48, 80)
    with pytest.raises(InputSizeError, match="48x80 is smaller than the 64x64"):
        metric(x, x)


def test_checkpoint_errors(tmp_path):
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        create_feature_extractor("vgg16", weights=bad)
    other = tmp_path / "resnet.pth"
    torch.save(create_feature_extractor("resnet50").backbone_state_dict(), other)
    with pytest.raises(CheckpointError, match="missing keys"):
        create_feature_extractor("vgg16", weights=other)
    with pytest.raises(CheckpointError, match="no such file"):
        create_feature_extractor("vgg16", weights=tmp_path / "nope.pth")


def test_checkpoint_roundtrip_and_export_format(tmp_path):
    fx = create_feature_extractor("vgg16", seed=11)
    path = tmp_path / "bb.pth"
    torch.save({**fx.export_metadata(), "state_dict": fx.backbone_state_dict()}, path)
    fx2 = create_feature_extractor("vgg16", weights=path)
    assert all(torch.equal(a, b) for a, b in zip(fx.state_dict().values(), fx2.state_dict().values()))
    with pytest.raises(CheckpointError, match="holds a 'vgg16' backbone"):
        create_feature_extractor("resnet50", weights=path)


def test_metric_as_a_drop_in_loss():
    """as_loss=True: frozen, eval mode whatever its parent's mode, scalar output; names case-insensitive."""
    loss = asymlib.create_metric("DISTS", backbone="vgg16", weights="random", as_loss=True, device="cpu")
    assert loss.lower_better is True and loss.score_range == (0.0, 1.0)
    assert not any(p.requires_grad for p in loss.parameters())
    gen = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                              torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Sigmoid())
    model = torch.nn.ModuleDict({"gen": gen, "loss": loss}).train()
    assert gen.training and not loss.training and not loss.metric.training
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # a careless optimizer over everything
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    w0 = gen[0].weight.detach().clone()
    value = loss(gen(x), y)
    assert value.dim() == 0
    value.backward()
    opt.step()
    assert not torch.equal(gen[0].weight, w0)  # the generator learns
    assert all(torch.equal(v, loss.state_dict()[k]) for k, v in before.items())  # the metric does not
    per_image = asymlib.create_metric("dists", backbone="vgg16", weights="random", as_loss=True, reduction="none")
    assert per_image(x, y).shape == (2,)
    assert asymlib.create_metric("dists", backbone="vgg16", weights="random").lower_better is True
    with pytest.raises(UnknownNameError):
        asymlib.create_metric("lpips")
    assert asymlib.list_backbones("*vit*") == ["clip_vit_b16", "dinov2_vitb14", "dinov2_vits14"]
    assert asymlib.list_backbones() == sorted(asymlib.list_backbones())
