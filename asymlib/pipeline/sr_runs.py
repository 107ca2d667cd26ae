"""SR runs: stage 1 and stage 2 training (``sr_train``), the Appendix D calibration of NR evaluators
(``calibration``), validation outputs (``sr_eval``) and their scores, discriminator backbone exports.

Stage 2 starts from stage 1's EMA weights; its perceptual metric carries the alpha/beta of the ``metric_train``
run it depends on (``alpha_beta="trained"``) or its seeded initialization (``"init"``). An adversarial run's
discriminator backbone is exported as ``discriminator_backbone.pt`` (``asymlib.backbone.v1``, readable by
``create_feature_extractor(name, weights=path)``) when it finishes. Evaluators score the 8-bit PNG outputs of an
``sr_eval`` run when tables are built; each evaluator's scores are cached in the run folder
(``scores/<evaluator>.csv``), so an evaluator installed later is added without re-running anything.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..atomic import atomic_write_csv, atomic_write_json
from ..config import Profile
from ..errors import CheckpointError, DatasetError, WeightsUnavailableError
from ..imageio import load_image, save_image
from ..metrics.registry import get_metric_preset
from ..provenance import provenance
from ..runs import Run, read_csv_file, read_json_file
from ..torchfile import read_torch_file
from ..sr.config import SRStudyConfig
from ..sr.evaluators import (Evaluator, EvaluatorStatus, Rescaling, calibrate, create_evaluator, evaluator_status,
                             get_evaluator_spec, koniq_calibration_set, score_images, synthetic_calibration_set)
from ..sr.models import create_sr_model
from ..sr.resize import imresize
from ..sr.trainer import load_generator_weights, train_sr
from .execute import StudyContext, register_executor
from .graph import RunSpec
from .metric_runs import metric_source, run_metric

__all__ = ["SRData", "load_sr_data", "super_resolve", "EvaluatorPool",
           "score_outputs", "export_discriminator_backbone", "list_gan_backbones", "BACKBONE_EXPORT_NAME",
           "GRAD_NORMS_NAME", "DISCRIMINATOR_IMAGE_SCORES", "bicubic_baseline", "bicubic_upscale", "lr_input", "new_generator", "score_runs", "sr_data"]

BACKBONE_EXPORT_NAME = "discriminator_backbone.pt"
GRAD_NORMS_NAME = "grad_norms.csv"


def _run_profile(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "provenance.json").read_text()).get("profile")
    except (OSError, ValueError):
        return None


# notebook 04's per-image scores with their SR output folders (under <output>/tables), read by notebook 05
DISCRIMINATOR_IMAGE_SCORES = "discriminator_image_scores.csv"

@dataclass
class SRData:
    """Training source (folder or ``{name: HR}``) and validation pairs ``{name: (lr, hr)}``."""

    train: Path | dict[str, torch.Tensor]
    val: dict[str, tuple[torch.Tensor, torch.Tensor]]
    description: str

    def sample_lr(self, n: int) -> torch.Tensor | None:
        lrs = [lr for lr, _ in list(self.val.values())[:n]]
        if not lrs or any(lr.shape != lrs[0].shape for lr in lrs):
            lrs = lrs[:1]
        return torch.stack(lrs) if lrs else None


def _prepare_val(hr: torch.Tensor, crop: int | None, scale: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    _, h, w = hr.shape
    if crop is not None:
        if h < crop or w < crop:
            raise DatasetError(f"validation image {name!r} is {w}x{h} (WxH), smaller than the {crop}-px crop")
        top, left = (h - crop) // 2, (w - crop) // 2
        hr = hr[:, top:top + crop, left:left + crop]
    else:
        hr = hr[:, : h - h % scale, : w - w % scale]
    hr = hr.contiguous()
    return lr_input(hr, scale), hr


def lr_input(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR input the study makes of an HR image ``(3, H, W)`` in [0, 1]: MATLAB-style bicubic downscaling
    by ``scale``, rounded to 8 bits as DIV2K's stored LR files are. ``(3, H/scale, W/scale)``."""
    return _to_8bit(imresize(hr, 1.0 / scale))


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline an SR model must beat: ``lr`` ``(3, h, w)`` enlarged ``scale`` times with the same
    MATLAB-style resize, rounded to 8 bits like the study's SR outputs."""
    return _to_8bit(imresize(lr[None], float(scale))[0])


def load_sr_data(cfg: SRStudyConfig, profile: Profile) -> SRData:
    """Training source and validation pairs of the study; every image problem raises a named DatasetError."""
    d, scale = cfg.data, cfg.scale
    if d.source == "embedded":
        from ..data.corpus import embedded_images

        train_names = [n.strip() for n in d.train.split(",") if n.strip()]
        val_names = [n.strip() for n in d.val.split(",") if n.strip()]
        train: Path | dict[str, torch.Tensor] = embedded_images(train_names)
        val_hr = embedded_images(val_names)
        desc = f"embedded corpus: train {train_names}, validation {val_names}"
    else:
        from ..sr.data import IMAGE_EXTENSIONS

        root = profile.resolved_data_root()
        train = root / d.train
        val_dir = root / d.val
        if not val_dir.is_dir():
            raise DatasetError(f"validation HR folder not found: {val_dir}")
        files = sorted(p for p in val_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetError(f"no validation HR images in {val_dir}")
        files = files[: d.max_val_images] if d.max_val_images else files
        val_hr = {p.stem: load_image(p, strict_mode=True) for p in files}
        desc = f"{train} (train), {val_dir} ({len(val_hr)} validation images)"
    if d.max_val_images:
        val_hr = dict(list(val_hr.items())[: d.max_val_images])
    val = {name: _prepare_val(img, d.val_crop, scale, name) for name, img in val_hr.items()}
    return SRData(train, val, desc)




@torch.no_grad()
def super_resolve(model: torch.nn.Module, lr: torch.Tensor, scale: int, tile: int | None = None,
                  overlap: int = 16, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(3, h, w)`` LR in [0, 1] -> ``(3, scale*h, scale*w)`` SR clamped to [0, 1].

    With ``tile``, overlapping ``tile x tile`` LR tiles are super-resolved separately and averaged where they
    overlap (bounded memory for 2K images).
    """
    x = lr[None].to(device)
    _, _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return model(x).float().clamp(0, 1)[0].cpu()
    step = max(1, tile - overlap)

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        return sorted(set(list(range(0, n - tile, step)) + [n - tile]))

    out = torch.zeros(1, 3, h * scale, w * scale, device=device)
    weight = torch.zeros_like(out)
    for top in starts(h):
        for left in starts(w):
            patch = x[:, :, top:top + min(tile, h), left:left + min(tile, w)]
            y = model(patch).float()
            out[:, :, top * scale:top * scale + y.shape[2], left * scale:left * scale + y.shape[3]] += y
            weight[:, :, top * scale:top * scale + y.shape[2], left * scale:left * scale + y.shape[3]] += 1
    return (out / weight).clamp(0, 1)[0].cpu()


def _to_8bit(img: torch.Tensor) -> torch.Tensor:
    return img.clamp(0, 1).mul(255).round().div(255)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(torch.log10(torch.tensor(1.0 / mse)))


def bicubic_baseline(ctx: StudyContext, train_key: str) -> pd.DataFrame:
    """PSNR of a finished SR run's validation outputs and of bicubic upsampling on each validation image.

    The outputs are the 8-bit PNG files of the run's ``sr_eval`` run (evaluated here when it is not yet);
    bicubic is the MATLAB-style resize that also made the LR inputs, rounded to 8 bits the same way; PSNR is
    over RGB in [0, 1]. A trained model must beat it; one that does not has a broken data path or far too short
    a schedule. Returns columns ``image``, ``bicubic_psnr``, ``model_psnr``, ``gain_db`` (model - bicubic),
    ``run_id``.
    """
    from .declare import sr_eval_spec
    from .execute import ensure

    cfg = ctx.profile.sr
    eval_key = ctx.graph.add(sr_eval_spec(ctx.profile, ctx.graph[train_key]))
    images = ensure(ctx, eval_key).path / "images"
    rows = []
    for name, (lr, hr) in sr_data(ctx).val.items():
        b, m = _psnr(bicubic_upscale(lr, cfg.scale), hr), _psnr(load_image(images / f"{name}.png"), hr)
        rows.append({"image": name, "bicubic_psnr": b, "model_psnr": m, "gain_db": m - b, "run_id": train_key})
    return pd.DataFrame(rows)




class _GradNormRecorder:
    """``on_step`` callback: L2 norm of the generator's gradient (the step's total loss) every ``every`` steps."""

    def __init__(self, generator: torch.nn.Module, every: int):
        self.params = [p for p in generator.parameters() if p.requires_grad]
        self.every = max(1, int(every))
        self.rows: list[dict[str, float]] = []

    def __call__(self, step: int, scalars: Mapping[str, float]) -> None:
        if step % self.every:
            return
        grads = [p.grad.detach().float() for p in self.params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else None
        self.rows.append({"step": int(step), "grad_norm_g": float(norm) if norm is not None else float("nan")})

    def save(self, run_dir: Path) -> None:
        if not self.rows:
            return
        path = run_dir / GRAD_NORMS_NAME
        df = pd.DataFrame(self.rows)
        if path.is_file():  # resumed run: keep the steps recorded before the interruption
            old = pd.read_csv(path)
            df = pd.concat([old[old["step"] < df["step"].min()], df], ignore_index=True)
        atomic_write_csv(df, path)




# built discriminators, reused by exports: (backbone, head, spectral_norm, seed, stage) -> model
_EXPORT_MODELS: dict[tuple[str, str, bool, int, str | None], torch.nn.Module] = {}


def export_discriminator_backbone(run_dir: str | Path, metadata: Mapping[str, Any] | None = None,
                                  overwrite: bool = False) -> Path | None:
    """Export the backbone of a run's trained discriminator as ``<run>/discriminator_backbone.pt``.

    Source: ``discriminator.pt`` of a finished run, else the discriminator of the last ``checkpoint.pt`` (a
    collapsed run: the weights before the collapse, labelled ``status="collapsed"``). The file is an
    ``asymlib.backbone.v1`` export (:meth:`asymlib.discriminators.Discriminator.export_backbone`) loadable with
    ``create_feature_extractor(backbone, weights=path)``; ``discriminator_backbone.json`` holds its metadata.
    Returns ``None`` when the run has no discriminator weights.

    Raises:
        CheckpointError: the discriminator weights are unreadable or do not match the configured discriminator.
    """
    from ..discriminators import create_discriminator

    run_dir = Path(run_dir)
    out = run_dir / BACKBONE_EXPORT_NAME
    if out.is_file() and (run_dir / "discriminator_backbone.json").is_file() and not overwrite:
        return out
    record = read_json_file(run_dir / "config.json")
    cfg = record.get("identity", record)
    tcfg = cfg.get("train", {})
    if not tcfg.get("lambda_adv"):
        return None
    status = read_json_file(run_dir / "status.json") if (run_dir / "status.json").is_file() else {}
    state, step, source = None, None, None
    if (run_dir / "discriminator.pt").is_file():
        obj = read_torch_file(run_dir / "discriminator.pt", "discriminator weights", expect_dict=True)
        if not isinstance(obj.get("state_dict"), dict):
            raise CheckpointError(f"discriminator weights {run_dir / 'discriminator.pt'} hold no 'state_dict'")
        state, step, source = obj["state_dict"], int(obj.get("step", status.get("step", 0))), "discriminator.pt"
    elif (run_dir / "checkpoint.pt").is_file():
        from ..sr.trainer import load_checkpoint

        ck = load_checkpoint(run_dir / "checkpoint.pt")
        if ck.get("discriminator") is not None:
            state, step, source = ck["discriminator"], int(ck["step"]), "checkpoint.pt"
    if state is None:
        return None
    dc = tcfg.get("discriminator", {})
    seed = int(cfg.get("train_seed", cfg.get("seed", 0)))
    # a patch run recorded before DiscriminatorConfig.patch_stage existed read the deepest stride-16 map
    stage = dc.get("patch_stage", "stride16") if dc.get("head", "vanilla") == "patch" else None
    key = (dc.get("backbone", "vgg16"), dc.get("head", "vanilla"), bool(dc.get("spectral_norm", False)), seed, stage)
    disc = _EXPORT_MODELS.pop(key, None) or create_discriminator(key[0], key[1], spectral_norm=key[2], seed=seed,
                                                                 stage=stage)
    try:
        disc.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"discriminator weights in {run_dir / source} do not match "
                              f"{dc.get('backbone')}/{dc.get('head')}: {exc}") from exc
    _EXPORT_MODELS[key] = disc  # every parameter and buffer is overwritten by the next load_state_dict
    while len(_EXPORT_MODELS) > 6:  # one per backbone x head of a study
        _EXPORT_MODELS.pop(next(iter(_EXPORT_MODELS)))
    meta = {
        "study": "discriminator_ablation", "profile": _run_profile(run_dir), "run_id": run_dir.name, "backbone": disc.backbone_name, "head": disc.head_name,
        "lambda_adv": float(tcfg["lambda_adv"]), "lambda_rec": float(tcfg.get("lambda_rec", 0.0)),
        "lambda_per": float(tcfg.get("lambda_per", 0.0)), "metric": cfg.get("metric"), "seed": seed,
        "step": step, "iterations": int(tcfg.get("iterations", 0)),
        "status": status.get("status", "unfinished"), "weights_file": source,
        **dict(metadata or {}),
    }
    disc.export_backbone(out, metadata=meta)
    atomic_write_json(run_dir / "discriminator_backbone.json", {**meta, "path": out.name})
    return out




def list_gan_backbones(runs_dir: str | Path, include_collapsed: bool = True) -> pd.DataFrame:
    """Exported discriminator backbones under ``runs_dir`` (notebook 03's GAN initializations).

    Returns one row per export: ``backbone, head, lambda3, seed, path`` plus ``status, step, profile, run_id``,
    sorted by backbone, head, lambda3, seed (``path`` absolute, built from ``runs_dir``). Pass ``path`` to ``create_feature_extractor(backbone, weights=path)``.
    """
    rows = []
    for meta_file in sorted(Path(runs_dir).glob(f"sr/*/{Path(BACKBONE_EXPORT_NAME).stem}.json")):
        pt = meta_file.with_suffix(".pt")
        if not pt.is_file():
            continue
        m = read_json_file(meta_file)
        if not include_collapsed and m.get("status") != "finished":
            continue
        rows.append({"backbone": m["backbone"], "head": m["head"], "lambda3": float(m["lambda_adv"]),
                     "seed": int(m["seed"]), "path": str(pt), "status": m.get("status"), "step": m.get("step"),
                     "profile": m.get("profile"), "run_id": m.get("run_id")})
    cols = ["backbone", "head", "lambda3", "seed", "path", "status", "step", "profile", "run_id"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["backbone", "head", "lambda3", "seed"], ignore_index=True) if len(df) else df




def sr_data(ctx: StudyContext) -> SRData:
    """The profile's SR training source and validation pairs (loaded once per context)."""
    return ctx.cached("sr-data", lambda: load_sr_data(ctx.profile.sr, ctx.profile))


def new_generator(cfg: SRStudyConfig, seed: int) -> torch.nn.Module:
    """A freshly initialized generator of the study (seeded without touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_sr_model(cfg.sr_model, scale=cfg.scale, preset=cfg.sr_preset, init=cfg.sr_init)


@register_executor("sr_train")
def _train_sr(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    p = spec.params
    cfg, profile = ctx.profile.sr, ctx.profile
    data = sr_data(ctx)
    tcfg = p["train"]
    if p["stage"] == "stage1":
        train_sr(run, tcfg, p["label"], generator=new_generator(cfg, profile.seed), train_data=data.train,
                 seed=profile.seed, device=profile.device,
                 provenance=provenance(profile.name, profile.seed, stage="stage1", sr_preset=cfg.sr_preset,
                                       run_key=spec.key),
                 sample_lr=data.sample_lr(cfg.data.sample_images), progress=ctx.progress)
        return
    stage1 = ctx.dep_path(spec, "sr_train")
    assert stage1 is not None
    metric = run_metric(ctx, spec)
    generator = new_generator(cfg, profile.seed)
    recorder = _GradNormRecorder(generator, tcfg.log_every) if p.get("grad_norms") else None
    disc = tcfg.discriminator
    prov = provenance(profile.name, profile.seed,
                      weights={get_metric_preset(p["metric"]).backbone: metric.backbone.weights_source,
                               "discriminator": "random init" if tcfg.adversarial else "none"},
                      stage="stage2", setting=p["setting"], metric=p["metric"], alpha_beta=metric_source(ctx, spec),
                      init_from=stage1.name, run_key=spec.key, train_seed=p["seed"],
                      **({"discriminator_head": disc.head, "discriminator_backbone": disc.backbone,
                          "lambda_adv": tcfg.lambda_adv} if tcfg.adversarial else {}))
    train_sr(run, tcfg, p["label"], generator=generator, train_data=data.train, metric=metric,
             init_from=stage1 / "generator_ema.pt", seed=p["seed"], device=profile.device, provenance=prov,
             sample_lr=data.sample_lr(cfg.data.sample_images), progress=ctx.progress, on_step=recorder)
    if recorder is not None:
        recorder.save(run.path)
    if tcfg.adversarial and ctx.profile.discriminators.export_backbones:
        export_discriminator_backbone(run.path)


class EvaluatorPool:
    """The profile's evaluators, built once, with their availability and Appendix D rescaling."""

    def __init__(self, ctx: StudyContext):
        self.ctx = ctx
        self.status: dict[str, EvaluatorStatus] = {}
        self._built: dict[str, Evaluator] = {}
        for name in ctx.profile.sr.evaluators:
            st = evaluator_status(name)
            if st.available:
                try:
                    self._built[name] = create_evaluator(name, ctx.device)
                except WeightsUnavailableError as exc:
                    st = EvaluatorStatus(st.name, st.display, st.kind, False, str(exc))
            self.status[name] = st

    @classmethod
    def of(cls, ctx: StudyContext) -> "EvaluatorPool":
        return ctx.cached("evaluators", lambda: cls(ctx))

    @property
    def available(self) -> list[str]:
        return [n for n, st in self.status.items() if st.available]

    def __getitem__(self, name: str) -> Evaluator:
        return self._built[name]

    def availability(self) -> pd.DataFrame:
        rows = [{"evaluator": st.display, "name": st.name, "kind": st.kind.upper(),
                 "paper": get_evaluator_spec(st.name).paper,
                 "status": "available" if st.available else f"unavailable: {st.reason}",
                 "source": getattr(self._built.get(st.name), "source", "")} for st in self.status.values()]
        return pd.DataFrame(rows)

    def rescalings(self, train_missing: bool = True) -> dict[str, Rescaling]:
        """The Appendix D fit of every available NR evaluator (its ``calibration`` run, trained if missing; with
        ``train_missing=False`` an evaluator whose calibration is not finished is left out)."""
        from .declare import calibration_spec
        from .execute import ensure

        out = {}
        for name in self.available:
            if self._built[name].kind != "nr":
                continue
            key = self.ctx.graph.add(calibration_spec(self.ctx.profile, name))
            if not train_missing and not self.ctx.finished(key):
                continue
            run = ensure(self.ctx, key)
            out[name] = Rescaling.load(run.path / "rescaling.json")
        return out

    def scorable(self, rescalings: Mapping[str, Rescaling]) -> list[str]:
        """Available evaluators whose scores can be reported: FR ones, and NR ones with a rescaling."""
        return [n for n in self.available if self._built[n].kind == "fr" or n in rescalings]


@register_executor("calibration")
def _calibrate(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    name = spec.identity["evaluator"]
    cal = ctx.profile.sr.calibration
    pool = EvaluatorPool.of(ctx)
    if name not in pool.available:
        raise WeightsUnavailableError(f"evaluator {name!r} is unavailable here: {pool.status[name].reason}")
    calib_set = ctx.cached("calibration-set", lambda: (
        synthetic_calibration_set(cal.images, cal.distortions, cal.crop, cal.seed) if cal.dataset == "synthetic"
        else koniq_calibration_set(ctx.profile.resolved_data_root() / "koniq10k", cal.max_images, cal.seed)))
    run.start(provenance(ctx.profile.name, ctx.profile.seed, evaluator=name, calibration_set=calib_set.name,
                         run_key=spec.key))
    resc = calibrate(pool[name], calib_set, batch_size=ctx.profile.sr.eval_batch_size)
    resc.save(run.path / "rescaling.json")
    run.finish("finished", success=resc.success, message=resc.message, srcc=resc.srcc)


@register_executor("sr_eval")
def _super_resolve_val(ctx: StudyContext, spec: RunSpec, run: Run) -> None:
    cfg = ctx.profile.sr
    d = cfg.data
    data = sr_data(ctx)
    source = spec.deps[0] if spec.deps else None
    run.start(provenance(ctx.profile.name, ctx.profile.seed, source=source or "HR", run_key=spec.key))
    if source is None:
        outputs = {name: hr for name, (_, hr) in data.val.items()}
    else:
        model = create_sr_model(cfg.sr_model, scale=cfg.scale, preset=cfg.sr_preset)
        load_generator_weights(model, ctx.graph[source].path(ctx.output_dir) / "generator_ema.pt")
        model = model.to(ctx.device).eval()
        outputs = {name: _to_8bit(super_resolve(model, lr, cfg.scale, d.tile, d.tile_overlap, ctx.device))
                   for name, (lr, _) in data.val.items()}
    for name, img in outputs.items():
        save_image(img, run.path / "images" / f"{name}.png")
    run.write_results(pd.DataFrame({"image": list(outputs)}))
    run.finish("finished", images=len(outputs))


def score_outputs(ctx: StudyContext, eval_key: str, pool: EvaluatorPool,
                  evaluators: Sequence[str] | None = None) -> pd.DataFrame:
    """Raw scores of every available evaluator (or of ``evaluators``) on the PNG outputs of the finished
    ``sr_eval`` run ``eval_key``.

    Returns ``evaluator, image, raw`` rows; each evaluator's scores are cached in ``<run>/scores/<name>.csv``.
    """
    path = ctx.graph[eval_key].path(ctx.output_dir)
    names = read_csv_file(path / "results.csv", dtype={"image": str})["image"].astype(str).tolist()
    frames = []
    for ev_name in (pool.available if evaluators is None else evaluators):
        cache = path / "scores" / f"{ev_name}.csv"
        if not cache.is_file():
            ev = pool[ev_name]
            imgs = [load_image(path / "images" / f"{n}.png") for n in names]
            refs = [sr_data(ctx).val[n][1] for n in names] if ev.kind == "fr" else None
            raw = score_images(ev, imgs, refs, batch_size=ctx.profile.sr.eval_batch_size)
            atomic_write_csv(pd.DataFrame({"evaluator": ev_name, "image": names, "raw": [float(r) for r in raw]}),
                             cache)
        frames.append(read_csv_file(cache, dtype={"image": str}))
    if not frames:
        return pd.DataFrame(columns=["evaluator", "image", "raw"])
    return pd.concat(frames, ignore_index=True)


def score_runs(ctx: StudyContext, sources: dict[str, str | None], pool: EvaluatorPool,
               rescalings: dict[str, Rescaling], train_missing: bool = True) -> pd.DataFrame:
    """Per-image scores of the validation outputs of each run in ``sources`` (label -> training run key, ``None``
    for the HR images). Columns: ``label, evaluator`` (display), ``kind, image, raw, score`` (rescaled NR / raw
    FR), ``images_dir`` (relative to the output folder). With ``train_missing=False`` sources whose outputs are
    not computed yet are left out."""
    frames = []
    evaluators = pool.scorable(rescalings)
    for label, key in sources.items():
        from .declare import sr_eval_spec
        from .execute import ensure

        spec = sr_eval_spec(ctx.profile, ctx.graph[key] if key is not None else None)
        ekey = ctx.graph.add(spec)
        if not train_missing and not ctx.finished(ekey):
            continue
        ensure(ctx, ekey)
        df = score_outputs(ctx, ekey, pool, evaluators)
        df["label"], df["images_dir"] = label, f"{ctx.graph[ekey].relpath()}/images"
        frames.append(df)
    cols = ["label", "evaluator", "kind", "image", "raw", "score", "images_dir"]
    if not frames:
        return pd.DataFrame(columns=cols)
    scores = pd.concat(frames, ignore_index=True)
    scores["kind"] = scores["evaluator"].map(lambda n: get_evaluator_spec(n).kind)
    scores["score"] = [float(rescalings[e](r)[0]) if e in rescalings else float(r)
                       for e, r in zip(scores["evaluator"], scores["raw"])]
    scores["evaluator"] = scores["evaluator"].map(lambda n: get_evaluator_spec(n).display)
    return scores[cols]
