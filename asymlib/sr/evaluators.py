"""Image-quality evaluators of SR outputs and the Appendix D rescaling of their scores onto [1, 100].

Evaluators are looked up by name in a registry (``create_evaluator("maniqa")``):

==========  =======  ============================================  ==========================================
name        kind     backend                                       weights (local files only)
==========  =======  ============================================  ==========================================
maniqa      NR       pyiqa ``maniqa`` (KonIQ checkpoint)           pyiqa cache + timm ViT-B/8 in the HF cache
liqe        NR       pyiqa ``liqe`` (KonIQ checkpoint)             pyiqa cache + OpenAI CLIP ViT-B/32 file
deqa        NR       DeQA-Score (transformers, remote code)        ``zhiyuanyou/DeQA-Score-Mix3`` in the HF cache
vq_r1       NR       VisualQuality-R1 (Qwen2.5-VL, transformers)   ``TianheWu/VisualQuality-R1-7B`` in the HF cache
piqe        NR       pyiqa ``piqe`` (hand-crafted)                 none
psnr, ssim  FR       pyiqa ``psnr`` / ``ssim`` (vs the HR image)   none
==========  =======  ============================================  ==========================================

Nothing is ever downloaded: before an evaluator is built its files are looked up in the local caches
(``$TORCH_HOME/hub/pyiqa``, ``$TORCH_HOME/hub/clip``, the Hugging Face hub cache, or a folder named by
``ASYMLIB_DEQA_PATH`` / ``ASYMLIB_VQR1_PATH``; with ``ASYMLIB_DEQA_PYTHON`` set, DeQA runs in that interpreter's
environment through :mod:`asymlib.sr.deqa_worker`), and construction runs with the hub in offline mode and
pyiqa's downloader disabled. A missing file makes :func:`evaluator_status` report
``"unavailable: <why>"`` and :func:`create_evaluator` raise :class:`EvaluatorUnavailableError`; scores are
never replaced by anything else.

Every evaluator maps ``images`` ``(B, 3, H, W)`` in [0, 1] (and, for FR ones, ``refs`` of the same shape)
to raw scores of shape ``(B,)`` as a float64 numpy array; ``higher_is_better`` gives their direction
(pyiqa's ``lower_better``: PIQE is lower-is-better).

Rescaling (paper Appendix D, Eq. 7): ``N_eta(x) = (eta1 - eta2) / (1 + exp(-(N(x) - eta3) / |eta4|)) + eta2``
with ``eta1 = 100``, ``eta2 = 1`` fixed and ``eta3``, ``eta4`` fitted on a calibration set with MOS
(:func:`calibrate`). Lower-is-better scores are negated first so that larger rescaled values always mean
better quality. The fit and the data it was fitted on are stored as JSON (:meth:`Rescaling.save`).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..atomic import atomic_write_json
from ..backbones import _hf_cache_dir
from ..errors import ConfigError, InputError, RunFileError, UnknownNameError, WeightsUnavailableError
from ..inputcheck import check_image_batch, check_image_values

__all__ = [
    "CalibrationSet",
    "Evaluator",
    "EvaluatorSpec",
    "EvaluatorStatus",
    "EvaluatorUnavailableError",
    "Rescaling",
    "calibrate",
    "create_evaluator",
    "evaluator_status",
    "get_evaluator_spec",
    "koniq_calibration_set",
    "list_evaluators",
    "register_evaluator",
    "score_images",
    "synthetic_calibration_set",
]


class EvaluatorUnavailableError(WeightsUnavailableError):
    """An evaluator's weights or code are not on this machine (the message says which)."""


class Evaluator(Protocol):
    name: str
    display: str
    kind: str  # "nr" | "fr"
    higher_is_better: bool
    source: str

    def __call__(self, images: torch.Tensor, refs: torch.Tensor | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class EvaluatorStatus:
    name: str
    display: str
    kind: str
    available: bool
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.display}: available" if self.available else f"{self.display}: unavailable: {self.reason}"


@dataclass(frozen=True)
class EvaluatorSpec:
    """A registered evaluator.

    Attributes:
        name, display, kind: registry key, table label (as in the paper's Table 1), ``"nr"`` or ``"fr"``.
        missing: ``() -> list of missing requirements`` (empty when everything is on this machine).
        build: ``(device) -> Evaluator``; called only when nothing is missing.
        paper: part of the paper's evaluation (Sec. 3.1).
        raw_range: the raw score range, for documentation.
    """

    name: str
    display: str
    kind: str
    missing: Callable[[], list[str]]
    build: Callable[[torch.device], Evaluator]
    paper: bool = False
    raw_range: str = ""


_EVALUATORS: dict[str, EvaluatorSpec] = {}


def register_evaluator(spec: EvaluatorSpec) -> EvaluatorSpec:
    if spec.kind not in ("nr", "fr"):
        raise ConfigError(f"evaluator kind must be 'nr' or 'fr', got {spec.kind!r}")
    _EVALUATORS[spec.name] = spec
    return spec


def list_evaluators() -> list[str]:
    return list(_EVALUATORS)


def get_evaluator_spec(name: str) -> EvaluatorSpec:
    if name not in _EVALUATORS:
        raise UnknownNameError(f"unknown evaluator {name!r}; available: {list_evaluators()}")
    return _EVALUATORS[name]


def evaluator_status(name: str) -> EvaluatorStatus:
    """Whether ``name`` can be built offline here, without building it."""
    spec = get_evaluator_spec(name)
    try:
        missing = spec.missing()
    except Exception as exc:  # a broken optional dependency counts as missing, with its message
        missing = [f"{type(exc).__name__}: {exc}"]
    return EvaluatorStatus(spec.name, spec.display, spec.kind, not missing, "; ".join(missing))


def create_evaluator(name: str, device: str | torch.device = "cpu") -> Evaluator:
    """Build a registered evaluator from local files only.

    Raises:
        UnknownNameError: ``name`` is not registered.
        EvaluatorUnavailableError: its weights or code are missing here (``"unavailable: <why>"``).
    """
    status = evaluator_status(name)
    if not status.available:
        raise EvaluatorUnavailableError(f"{status.display} unavailable: {status.reason}")
    spec = get_evaluator_spec(name)
    try:
        with _offline():
            return spec.build(torch.device(device))
    except EvaluatorUnavailableError:
        raise
    except Exception as exc:
        raise EvaluatorUnavailableError(
            f"{spec.display} unavailable: building it from local files failed ({type(exc).__name__}: {exc})"
        ) from exc


# ----------------------------------------------------------------------------------------------
# Local caches and the offline guard
# ----------------------------------------------------------------------------------------------
def _torch_hub_dir() -> Path:
    return Path(torch.hub.get_dir())


def _pyiqa_cache_dir() -> Path:
    # pyiqa fixes its cache folder when it is imported; before that, it is where it will be
    mod = sys.modules.get("pyiqa.utils.download_util")
    return Path(mod.DEFAULT_CACHE_DIR) if mod is not None else _torch_hub_dir() / "pyiqa"


def _hf_file(repo_id: str, filenames: Sequence[str]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for fname in filenames:
        hit = try_to_load_from_cache(repo_id, fname, cache_dir=_hf_cache_dir())
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def _hf_snapshot(repo_id: str, env: str) -> Path | None:
    """A local folder with the repository's files: ``$env`` if set, else the cached hub snapshot."""
    if os.environ.get(env):
        p = Path(os.environ[env]).expanduser()
        return p if (p / "config.json").is_file() else None
    hit = _hf_file(repo_id, ["config.json"])
    if hit is None:
        return None
    snapshot = hit.parent
    has_weights = any(snapshot.glob("*.safetensors")) or any(snapshot.glob("*.bin"))
    return snapshot if has_weights else None


_SHA_OK: dict[tuple[str, int, float], bool] = {}


def _sha256_ok(path: Path, expected: str) -> bool:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime)
    if key not in _SHA_OK:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_OK[key] = h.hexdigest() == expected
    return _SHA_OK[key]


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Hub in offline mode and pyiqa's URL downloader disabled while an evaluator is built."""
    import huggingface_hub.constants as hf_constants

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved_flag = hf_constants.HF_HUB_OFFLINE
    patched = None
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    hf_constants.HF_HUB_OFFLINE = True
    mod = sys.modules.get("pyiqa.utils.download_util")
    if mod is not None:
        patched = (mod, mod.download_url_to_file)

        def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
            raise EvaluatorUnavailableError(f"{Path(dst).name} is not in the local cache ({dst}); asymlib does "
                                            f"not download it (source: {url})")

        mod.download_url_to_file = refuse
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = saved_flag
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if patched is not None:
            patched[0].download_url_to_file = patched[1]


# ----------------------------------------------------------------------------------------------
# pyiqa evaluators
# ----------------------------------------------------------------------------------------------
def _batched(x: torch.Tensor, name: str = "images") -> torch.Tensor:
    """The scoring entry of every evaluator: ``(B, 3, H, W)`` (or one ``(3, H, W)`` image) checked against the
    metric input contract (:mod:`asymlib.inputcheck`: float, finite, in ``[0, 1]`` within its tolerance), then
    cast to float32 and clamped to ``[0, 1]``.

    Raises:
        InputError: a numpy array, an integer dtype, another shape, an empty batch, NaN/Inf or values outside
            the tolerance band (e.g. ``[0, 255]``).
    """
    if isinstance(x, torch.Tensor) and x.dim() == 3:
        x = x[None]
    check_image_batch(x, name=name, what="evaluator")
    check_image_values({name: x}, what="evaluator")
    return x.float().clamp(0.0, 1.0)


class PyIQAEvaluator:
    """A pyiqa metric (``pyiqa.create_metric(pyiqa_name)``) behind the :class:`Evaluator` interface."""

    def __init__(self, name: str, display: str, pyiqa_name: str, kind: str, device: torch.device,
                 source: str, **options: Any):
        import pyiqa  # imported before the guard, so that the guard can disable its downloader

        with _offline():
            self.metric = pyiqa.create_metric(pyiqa_name, as_loss=False, device=device, **options)
        self.name, self.display, self.kind, self.source = name, display, kind, source
        self.pyiqa_name = pyiqa_name
        self.device = device
        self.higher_is_better = not bool(self.metric.lower_better)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, refs: torch.Tensor | None = None) -> np.ndarray:
        x = _batched(images).to(self.device)
        if self.kind == "fr":
            if refs is None:
                raise ConfigError(f"{self.display} is full-reference: pass the HR images as refs")
            y = _batched(refs, "refs").to(self.device)
            if x.shape != y.shape:
                raise InputError(f"{self.display}: images {tuple(x.shape)} and refs {tuple(y.shape)} differ; expected "
                                 f"the same shape", cause="shape", argument="refs")
            out = self.metric(x, y)
        else:
            out = self.metric(x)
        return out.detach().double().cpu().numpy().reshape(-1)


def _no_requirements() -> list[str]:
    return []


def _pyiqa_file(fname: str) -> list[str]:
    path = _pyiqa_cache_dir() / fname
    return [] if path.is_file() else [f"pyiqa weights {fname} not in {path.parent}"]


def _maniqa_missing() -> list[str]:
    import timm

    out = _pyiqa_file("ckpt_koniq10k.pt")
    hub_id = timm.models.get_pretrained_cfg("vit_base_patch8_224").hf_hub_id
    if _hf_file(hub_id, ["model.safetensors", "pytorch_model.bin"]) is None:
        out.append(f"timm weights {hub_id} not in the Hugging Face cache {_hf_cache_dir()}")
    return out


_CLIP_B32 = ("ViT-B-32.pt", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af")


def _liqe_missing() -> list[str]:
    out = _pyiqa_file("liqe_koniq.pt")
    clip_file = _torch_hub_dir() / "clip" / _CLIP_B32[0]
    if not clip_file.is_file():
        out.append(f"OpenAI CLIP {_CLIP_B32[0]} not in {clip_file.parent}")
    elif not _sha256_ok(clip_file, _CLIP_B32[1]):
        out.append(f"{clip_file} has the wrong SHA-256 (pyiqa would download it again)")
    try:
        with warnings.catch_warnings():  # its deprecation warning would land in every notebook's output
            warnings.simplefilter("ignore", UserWarning)
            import pkg_resources  # noqa: F401  (LIQE's CLIP tokenizer imports it; setuptools >= 81 removed it)
    except ImportError:
        out.append("pkg_resources is missing (install setuptools<81)")
    return out


def _pyiqa_spec(name: str, display: str, pyiqa_name: str, kind: str, missing: Callable[[], list[str]],
                paper: bool, raw_range: str, source: str, **options: Any) -> EvaluatorSpec:
    def build(device: torch.device) -> Evaluator:
        return PyIQAEvaluator(name, display, pyiqa_name, kind, device, source, **options)

    return EvaluatorSpec(name, display, kind, missing, build, paper, raw_range)


register_evaluator(_pyiqa_spec("maniqa", "MANIQA", "maniqa", "nr", _maniqa_missing, True, "~0..1",
                               "pyiqa maniqa (KonIQ-10k checkpoint)"))
register_evaluator(_pyiqa_spec("liqe", "LIQE", "liqe", "nr", _liqe_missing, True, "1..5",
                               "pyiqa liqe (KonIQ-10k checkpoint)"))
register_evaluator(_pyiqa_spec("piqe", "PIQE", "piqe", "nr", _no_requirements, False, "0..100, lower is better",
                               "pyiqa piqe (no learned weights)"))
register_evaluator(_pyiqa_spec("psnr", "PSNR", "psnr", "fr", _no_requirements, False, "dB (RGB)",
                               "pyiqa psnr vs HR"))
register_evaluator(_pyiqa_spec("ssim", "SSIM", "ssim", "fr", _no_requirements, False, "0..1 (Y channel)",
                               "pyiqa ssim vs HR"))


# ----------------------------------------------------------------------------------------------
# MLLM evaluators through transformers (local weights only)
# ----------------------------------------------------------------------------------------------
def _to_pil_list(images: torch.Tensor) -> list[Any]:
    from ..imageio import to_pil

    return [to_pil(im) for im in _batched(images).cpu()]


class DeQAScoreEvaluator:
    """DeQA-Score (You et al., 2025): the model's own ``score(list of PIL images)`` (1..5, higher is better)."""

    name, display, kind, higher_is_better = "deqa", "DeQA", "nr", True

    def __init__(self, path: Path, device: torch.device):
        from transformers import AutoModelForCausalLM

        dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(
            str(path), trust_remote_code=True, attn_implementation="eager", dtype=dtype, local_files_only=True
        ).to(device).eval()
        self.source = f"transformers {path}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, refs: torch.Tensor | None = None) -> np.ndarray:
        scores = self.model.score(_to_pil_list(images))
        return torch.as_tensor(scores).double().cpu().numpy().reshape(-1)


class ExternalDeQAEvaluator:
    """DeQA-Score run by :mod:`asymlib.sr.deqa_worker` in the environment of interpreter ``python``
    (``ASYMLIB_DEQA_PYTHON``): the same model call, images sent as 8-bit RGB as :func:`asymlib.imageio.to_pil`
    quantizes them."""

    name, display, kind, higher_is_better = "deqa", "DeQA", "nr", True

    def __init__(self, path: Path, device: torch.device, python: str):
        from .external import ExternalWorker

        self.worker = ExternalWorker(python, Path(__file__).with_name("deqa_worker.py"), [str(path), str(device)])
        self.source = f"transformers {self.worker.ready.get('transformers', '?')} under {python}: {path}"

    def __call__(self, images: torch.Tensor, refs: torch.Tensor | None = None) -> np.ndarray:
        arr = (_batched(images).cpu().permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
        return self.worker.score(arr)


def _deqa(path: Path, device: torch.device) -> Evaluator:
    python = os.environ.get("ASYMLIB_DEQA_PYTHON")
    return ExternalDeQAEvaluator(path, device, python) if python else DeQAScoreEvaluator(path, device)


_VQR1_PROMPT = (
    "You are doing the image quality assessment task. Here is the question: What is your overall rating on the "
    "quality of this picture? The rating should be a float between 1 and 5, rounded to two decimal places, with 1 "
    "representing very poor quality and 5 representing excellent quality. Output the final answer with only one "
    "score in <answer> </answer> tags."
)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_vq_r1_answer(text: str) -> float:
    """Score in a VisualQuality-R1 reply (last ``<answer>`` tag, else the whole text); NaN when there is none."""
    tags = _ANSWER.findall(text)
    m = _NUMBER.search(tags[-1] if tags else text)
    return float(m.group()) if m else float("nan")


class VisualQualityR1Evaluator:
    """VisualQuality-R1 (Wu et al., 2025), Qwen2.5-VL: the number in the reply's ``<answer>`` tag (1..5).

    Decoding is greedy (the reference demo samples), so scores are reproducible; an unparsable reply is NaN.
    """

    name, display, kind, higher_is_better = "vq_r1", "VQ-R1", "nr", True

    def __init__(self, path: Path, device: torch.device, max_new_tokens: int = 64):
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            str(path), dtype=dtype, local_files_only=True).to(device).eval()
        self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        self.processor.tokenizer.padding_side = "left"
        self.device, self.max_new_tokens = device, max_new_tokens
        self.source = f"transformers {path}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, refs: torch.Tensor | None = None) -> np.ndarray:
        pil = _to_pil_list(images)
        message = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _VQR1_PROMPT}]}]
        text = [self.processor.apply_chat_template(message, tokenize=False, add_generation_prompt=True)] * len(pil)
        inputs = self.processor(text=text, images=pil, padding=True, return_tensors="pt").to(self.device)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        replies = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return np.array([parse_vq_r1_answer(r) for r in replies], dtype=np.float64)


def _mllm_spec(name: str, display: str, repo_id: str, env: str, cls: Callable[[Path, torch.device], Evaluator],
               raw_range: str, python_env: str | None = None) -> EvaluatorSpec:
    def missing() -> list[str]:
        out = []
        python = os.environ.get(python_env) if python_env else None
        if python:  # runs in its own environment: that interpreter must exist; its packages are its business
            if not (os.path.isfile(python) and os.access(python, os.X_OK)):
                out.append(f"{python_env}={python} is not an executable file")
        else:
            try:
                import transformers  # noqa: F401
            except ImportError:
                out.append("transformers is not installed")
        if _hf_snapshot(repo_id, env) is None:
            where = os.environ.get(env) or str(_hf_cache_dir())
            out.append(f"{repo_id} weights not found locally (looked in {where}; set {env} to a local copy)")
        return out

    def build(device: torch.device) -> Evaluator:
        path = _hf_snapshot(repo_id, env)
        assert path is not None
        return cls(path, device)

    return EvaluatorSpec(name, display, "nr", missing, build, True, raw_range)


register_evaluator(_mllm_spec("deqa", "DeQA", "zhiyuanyou/DeQA-Score-Mix3", "ASYMLIB_DEQA_PATH", _deqa, "1..5",
                              python_env="ASYMLIB_DEQA_PYTHON"))
register_evaluator(_mllm_spec("vq_r1", "VQ-R1", "TianheWu/VisualQuality-R1-7B", "ASYMLIB_VQR1_PATH",
                              VisualQualityR1Evaluator, "1..5"))


# ----------------------------------------------------------------------------------------------
# Scoring and Appendix D rescaling
# ----------------------------------------------------------------------------------------------
def score_images(evaluator: Evaluator, images: Iterable[torch.Tensor], refs: Iterable[torch.Tensor] | None = None,
                 batch_size: int = 4) -> np.ndarray:
    """Raw scores of a sequence of ``(3, H, W)`` images (equal-sized neighbours are batched); shape ``(N,)``."""
    imgs = list(images)
    rfs = list(refs) if refs is not None else [None] * len(imgs)
    if len(rfs) != len(imgs):
        raise ConfigError(f"{len(imgs)} images but {len(rfs)} references")
    out: list[np.ndarray] = []
    i = 0
    while i < len(imgs):
        j = i + 1
        while j < len(imgs) and j - i < batch_size and imgs[j].shape == imgs[i].shape:
            j += 1
        x = torch.stack(imgs[i:j])
        y = torch.stack(rfs[i:j]) if rfs[i] is not None else None  # type: ignore[arg-type]
        out.append(np.asarray(evaluator(x, y), dtype=np.float64).reshape(-1))
        i = j
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class CalibrationSet:
    """Images with subjective (or pseudo-subjective) scores on [1, 100] for the Appendix D fit."""

    name: str
    target: str  # "MOS" or "pseudo-MOS (...)"
    names: list[str]
    images: Sequence[torch.Tensor]
    mos: np.ndarray


def synthetic_calibration_set(images: Sequence[str], distortions: Sequence[str], crop: int = 64,
                              seed: int = 0) -> CalibrationSet:
    """The embedded synthetic benchmark: distorted images labelled ``-level``, mapped linearly onto [1, 100].

    Level 1 (mildest) -> 100, level 5 (strongest) -> 1. A *pseudo-MOS*: it orders severities within an image
    and distortion, it is not a human opinion.
    """
    from ..iqa.synthetic import SyntheticFRBenchmark

    bench = SyntheticFRBenchmark(image_names=list(images), distortions=list(distortions), crop=crop, seed=seed)
    levels = bench.records["level"].to_numpy(dtype=np.float64)
    lo, hi = -float(max(bench.levels)), -float(min(bench.levels))
    mos = 1.0 + 99.0 * (-levels - lo) / (hi - lo)
    imgs = [bench[i]["dist"] for i in range(len(bench))]
    return CalibrationSet("synthetic benchmark (embedded corpus)", "pseudo-MOS (synthetic distortion levels)",
                          list(bench.records["dist"]), imgs, mos)


def koniq_calibration_set(root: str | Path, max_images: int | None = 1000, seed: int = 0) -> CalibrationSet:
    """``max_images`` KonIQ-10k images (seeded choice) with ``MOS_zscore`` (on [1, 100]); images load lazily."""
    from ..iqa.datasets import create_nr_dataset

    ds = create_nr_dataset("koniq10k", root)
    idx = np.arange(len(ds))
    if max_images is not None and max_images < len(ds):
        idx = np.sort(np.random.default_rng(seed).choice(len(ds), size=max_images, replace=False))
    sub = ds.subset(idx)

    class _Lazy(Sequence):
        def __len__(self) -> int:
            return len(sub)

        def __getitem__(self, i):  # type: ignore[override]
            return sub[i]["image"]

    names = [Path(p).name for p in sub.records["image"]]
    return CalibrationSet("KonIQ-10k", "MOS", names, _Lazy(), sub.records["score"].to_numpy(dtype=np.float64))


@dataclass
class Rescaling:
    """A fitted Eq. 7 mapping of one evaluator's raw scores onto [1, 100], with the data it was fitted on."""

    evaluator: str
    display: str
    higher_is_better: bool
    calibration_set: str
    target: str
    eta: dict[str, float]
    input_sign: float
    success: bool
    message: str
    srcc: float
    names: list[str] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    mos: list[float] = field(default_factory=list)

    def __call__(self, raw: Any) -> np.ndarray:
        """Rescaled scores in (1, 100); larger is better whatever the raw direction. NaN stays NaN."""
        from ..iqa.stats import logistic4

        x = np.asarray(raw, dtype=np.float64).reshape(-1)
        out = np.full_like(x, np.nan)
        ok = np.isfinite(x)
        if ok.any():
            e = self.eta
            out[ok] = logistic4(self.input_sign * x[ok], e["eta1"], e["eta2"], e["eta3"], e["eta4"])
        return out

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "Rescaling":
        """Read a fit written by :meth:`save`.

        Raises:
            RunFileError: the file is missing, not JSON, or not a rescaling fit; the message names it.
        """
        from ..runs import read_json_file

        obj = read_json_file(path)
        try:
            return cls(**obj)
        except TypeError as exc:
            raise RunFileError(f"{path}: not an Appendix D rescaling fit ({exc}); expected the fields "
                               f"{[f.name for f in fields(cls)]}") from exc


def calibrate(evaluator: Evaluator, calib: CalibrationSet, batch_size: int = 4) -> Rescaling:
    """Score ``calib`` with ``evaluator`` and fit Eq. 7 (eta1 = 100, eta2 = 1 fixed) against its MOS."""
    from ..iqa.stats import fit_rescaling, srcc

    if evaluator.kind != "nr":
        raise ConfigError(f"{evaluator.display} is full-reference; the Appendix D rescaling is for NR-IQA scores")
    raw = score_images(evaluator, calib.images, batch_size=batch_size)
    fit = fit_rescaling(raw, calib.mos, higher_is_better=evaluator.higher_is_better)
    b = fit.params
    return Rescaling(
        evaluator=evaluator.name, display=evaluator.display, higher_is_better=evaluator.higher_is_better,
        calibration_set=calib.name, target=calib.target,
        eta={"eta1": float(b[0]), "eta2": float(b[1]), "eta3": float(b[2]), "eta4": float(b[3])},
        input_sign=float(fit.input_sign), success=bool(fit.success), message=fit.message,
        srcc=float(srcc(fit.input_sign * raw, calib.mos)),
        names=list(calib.names), raw=[float(v) for v in raw], mos=[float(v) for v in calib.mos],
    )
