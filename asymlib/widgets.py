"""Side-by-side comparison of SR outputs with a synchronized zoom (ipywidgets).

:class:`ComparisonWidget` shows, for one test image, the LR input (upsampled with nearest neighbour), the
HR reference and the outputs of two or more runs (objective settings, discriminators...) side by side.
All panels show the same crop, chosen with sliders (``x``, ``y``, crop size) and drawn as a rectangle on
an overview of the HR image. A toggle replaces LR and SR crops by their amplified absolute difference to
HR, and each panel's caption lists the scores given for that (image, run). An optional banner line (the
profile that produced the outputs) heads the widget, and :meth:`ComparisonWidget.snapshot` renders the
current view as one PNG, so that a notebook exported without widget state still shows it.

Panels are ``ipywidgets.Image`` widgets holding PNG bytes (crops magnified with nearest neighbour on the
Python side), so the widget renders the same in JupyterLab, classic notebooks, VS Code and in saved widget
state, and tests can drive it headless through :meth:`ComparisonWidget.set_crop` and
:meth:`ComparisonWidget.current_crops`.

Example::

    w = ComparisonWidget(
        {"chelsea": {"lr": lr, "hr": hr, "runs": {"Per.": sr_a, "Per.+Adv.": sr_b}}},
        scores={("chelsea", "Per."): {"PSNR": 24.1, "DISTS": 0.12}},
    )
    w              # displays w.widget in a notebook
    w.set_crop(40, 60, 48)
"""
from __future__ import annotations

import contextlib
import html
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from .errors import ConfigError, InputSizeError, UnknownNameError

__all__ = ["ComparisonWidget", "ImageLike", "png_bytes", "to_display_array"]

ImageLike = torch.Tensor | np.ndarray | str | Path | Image.Image
LR_LABEL = "LR (nearest)"
HR_LABEL = "HR"
_ALERT_COLOR = "#b00020"
_GAP = 8  # snapshot: pixels between and around tiles
_LINE = 14  # snapshot: pixels per text line


# ------------------------------------------------------------------------------------------------
# Array helpers
# ------------------------------------------------------------------------------------------------
def to_display_array(image: ImageLike) -> np.ndarray:
    """Any supported image -> float32 ``(H, W, 3)`` array in ``[0, 1]``.

    Accepts a ``(3, H, W)`` / ``(1, 3, H, W)`` tensor in ``[0, 1]``, an ``(H, W)`` / ``(H, W, 3|4)``
    array (uint8, uint16 or float in ``[0, 1]``), a PIL image, or a path to an image file.
    """
    if isinstance(image, (str, Path)):
        from .imageio import load_image

        image = load_image(image)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise InputSizeError(f"expected one image, got a batch of shape {tuple(t.shape)}")
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise InputSizeError(f"expected a (3, H, W) tensor, got shape {tuple(image.shape)}")
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        return np.ascontiguousarray(t.clamp(0, 1).permute(1, 2, 0).numpy(), dtype=np.float32)
    if isinstance(image, np.ndarray):
        from .imageio import to_tensor

        return to_display_array(to_tensor(image))
    raise TypeError(f"unsupported image type {type(image).__name__}")


def _upsample_nearest(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    lh, lw = lr.shape[:2]
    if h % lh == 0 and w % lw == 0 and h // lh == w // lw:
        f = h // lh
        return np.repeat(np.repeat(lr, f, axis=0), f, axis=1)
    pil = Image.fromarray((lr * 255).round().astype(np.uint8)).resize((w, h), Image.NEAREST)
    return np.asarray(pil, dtype=np.float32) / 255.0


def png_bytes(array: np.ndarray, display_size: int | None = None,
              box: tuple[int, int, int, int] | None = None) -> bytes:
    """``(H, W, 3)`` float array in ``[0, 1]`` -> PNG bytes, optionally magnified (nearest neighbour) so that
    its longer side is ``display_size`` pixels, and with a rectangle ``box = (x, y, w, h)`` drawn on it."""
    buf = io.BytesIO()
    _display_image(array, display_size, box).save(buf, format="PNG")
    return buf.getvalue()


def _display_image(array: np.ndarray, display_size: int | None = None,
                   box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """The PIL image :func:`png_bytes` encodes."""
    arr = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    pil = Image.fromarray(arr)
    sx = sy = 1.0
    if display_size:
        h, w = arr.shape[:2]
        scale = display_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        resample = Image.NEAREST if scale >= 1 else Image.BILINEAR
        pil = pil.resize(size, resample)
        sx, sy = size[0] / w, size[1] / h
    if box is not None:
        x, y, bw, bh = box
        draw = ImageDraw.Draw(pil)
        draw.rectangle([x * sx, y * sy, (x + bw) * sx - 1, (y + bh) * sy - 1], outline=(255, 32, 32), width=2)
    return pil


def _font(size: int = 11) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: Any, text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines narrower than ``width`` pixels."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(float(value)) else f"{float(value):.4g}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# Widget
# ------------------------------------------------------------------------------------------------
class ComparisonWidget:
    """Side-by-side LR / HR / SR comparison with a synchronized zoom crop.

    Args:
        images: ``{image name: {"lr": image, "hr": image, "runs": {run label: SR image}}}``; images are
            tensors ``(3, H, W)`` in ``[0, 1]``, arrays, PIL images or paths. Every SR output must have
            the HR size; the LR image is upsampled (nearest) to it. ``"lr"`` may be omitted.
        scores: ``{(image name, run label): {score name: value}}`` shown under each panel (use the label
            ``"HR"`` for scores of the reference).
        runs: run labels selected at the start (default: the first ``min(4, n)`` of the first image).
        crop_size: initial crop side in HR pixels (default ``min(64, H, W)``).
        panel_px: displayed side of each panel in screen pixels.
        diff_gain: amplification of ``|SR - HR|`` in difference mode.
        crop_psnr: add the PSNR of each crop against the HR crop to the captions.
        banner: a line shown above the controls (e.g. the profile banner); ``banner_alert`` draws it in red.

    Attributes:
        widget: the top-level ``ipywidgets.VBox`` (displaying the object displays it).
        banner_html: the ``ipywidgets.HTML`` banner line (``None`` without a banner).
        image_select, run_select, x_slider, y_slider, size_slider, diff_toggle, gain_slider: the controls.
        panel_images: ``{panel label: ipywidgets.Image}`` of the panels currently shown.
    """

    def __init__(self, images: Mapping[str, Mapping[str, Any]],
                 scores: Mapping[tuple[str, str], Mapping[str, Any]] | None = None, *,
                 runs: Sequence[str] | None = None, crop_size: int | None = None, panel_px: int = 192,
                 diff_gain: float = 4.0, crop_psnr: bool = True, banner: str | None = None,
                 banner_alert: bool = False) -> None:
        import ipywidgets as W

        if not images:
            raise ConfigError("ComparisonWidget needs at least one image")
        self._sources = {str(k): v for k, v in images.items()}
        for name, entry in self._sources.items():
            if "hr" not in entry or not entry.get("runs"):
                raise ConfigError(f"image {name!r} needs an 'hr' image and a non-empty 'runs' mapping")
        self.scores = {(str(i), str(r)): dict(v) for (i, r), v in (scores or {}).items()}
        self.panel_px = int(panel_px)
        self.crop_psnr = bool(crop_psnr)
        self.banner = banner
        self.banner_alert = bool(banner_alert)
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self._suspended = 0
        self._render_count = 0

        first = next(iter(self._sources))
        data = self._arrays(first)
        h, w = data[HR_LABEL].shape[:2]
        size = int(crop_size or min(64, h, w))
        run_labels = list(self._sources[first]["runs"])
        selected = [str(r) for r in runs] if runs is not None else run_labels[: min(4, len(run_labels))]
        unknown = [r for r in selected if r not in run_labels]
        if unknown:
            raise UnknownNameError(f"runs {unknown} not available for image {first!r}; available: {run_labels}")

        style = {"description_width": "70px"}
        self.image_select = W.Dropdown(options=list(self._sources), value=first, description="image", style=style)
        self.run_select = W.SelectMultiple(options=run_labels, value=tuple(selected), description="runs",
                                           rows=min(6, max(2, len(run_labels))), style=style)
        self.size_slider = W.IntSlider(value=min(size, h, w), min=min(8, h, w), max=min(h, w), step=1,
                                       description="crop size", continuous_update=False, style=style)
        self.x_slider = W.IntSlider(value=(w - self.size_slider.value) // 2, min=0, max=w - self.size_slider.value,
                                    description="x", continuous_update=False, style=style)
        self.y_slider = W.IntSlider(value=(h - self.size_slider.value) // 2, min=0, max=h - self.size_slider.value,
                                    description="y", continuous_update=False, style=style)
        self.diff_toggle = W.Checkbox(value=False, description="|SR - HR|", indent=False)
        self.gain_slider = W.FloatSlider(value=float(diff_gain), min=1.0, max=16.0, step=0.5, description="gain",
                                         continuous_update=False, style=style)
        self.overview = W.Image(format="png", layout=W.Layout(width=f"{self.panel_px}px"))
        self.info = W.HTML()
        self.panels_box = W.HBox(layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.panel_images: dict[str, Any] = {}
        self._panels: dict[str, tuple[Any, Any, Any, Any]] = {}
        controls = W.VBox([self.image_select, self.run_select, self.x_slider, self.y_slider, self.size_slider,
                           W.HBox([self.diff_toggle, self.gain_slider])])
        self.banner_html = None
        if banner:
            color = _ALERT_COLOR if self.banner_alert else "#1b5e20"
            self.banner_html = W.HTML(f'<div style="color:{color};font-weight:bold">{html.escape(banner)}</div>')
        head = [self.banner_html] if self.banner_html is not None else []
        self.widget = W.VBox([*head, W.HBox([controls, W.VBox([W.HTML("<b>overview (HR)</b>"), self.overview])]),
                              self.info, self.panels_box])
        self.widget.add_class("asymlib-comparison")

        self.image_select.observe(self._on_image, names="value")
        self.size_slider.observe(self._on_size, names="value")
        for c in (self.run_select, self.x_slider, self.y_slider, self.diff_toggle, self.gain_slider):
            c.observe(lambda _change: self.render(), names="value")
        self.render()

    # -- data ----------------------------------------------------------------------------------------
    def _arrays(self, name: str) -> dict[str, np.ndarray]:
        """Display arrays of one image: ``{"LR (nearest)", "HR", run labels...} -> (H, W, 3)``."""
        if name not in self._cache:
            entry = self._sources[name]
            hr = to_display_array(entry["hr"])
            out = {}
            if entry.get("lr") is not None:
                out[LR_LABEL] = _upsample_nearest(to_display_array(entry["lr"]), hr.shape[:2])
            out[HR_LABEL] = hr
            for label, sr in entry["runs"].items():
                arr = to_display_array(sr)
                if arr.shape != hr.shape:
                    raise InputSizeError(f"image {name!r}, run {label!r}: SR output is {arr.shape[:2]}, "
                                         f"HR is {hr.shape[:2]}")
                if str(label) in (LR_LABEL, HR_LABEL):
                    raise ConfigError(f"run label {label!r} is reserved")
                out[str(label)] = arr
            self._cache[name] = out
        return self._cache[name]

    @property
    def image_name(self) -> str:
        return str(self.image_select.value)

    @property
    def selected_runs(self) -> list[str]:
        return list(self.run_select.value)

    @property
    def crop_box(self) -> tuple[int, int, int]:
        """Current ``(x, y, size)`` in HR pixels (x: column, y: row of the top-left corner)."""
        return int(self.x_slider.value), int(self.y_slider.value), int(self.size_slider.value)

    @property
    def panel_labels(self) -> list[str]:
        data = self._arrays(self.image_name)
        return [k for k in (LR_LABEL, HR_LABEL) if k in data] + self.selected_runs

    # -- control -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        """Change several controls and render once at the end."""
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1
        self.render()

    def set_crop(self, x: int, y: int, size: int | None = None) -> tuple[int, int, int]:
        """Move the zoom crop (HR pixels); values are clamped to the image. Returns the applied box."""
        h, w = self._arrays(self.image_name)[HR_LABEL].shape[:2]
        with self._hold():
            if size is not None:
                self.size_slider.value = int(min(max(int(size), self.size_slider.min), min(h, w)))
            s = self.size_slider.value
            self.x_slider.max, self.y_slider.max = w - s, h - s
            self.x_slider.value = int(min(max(int(x), 0), w - s))
            self.y_slider.value = int(min(max(int(y), 0), h - s))
        return self.crop_box

    def select_image(self, name: str) -> None:
        if name not in self._sources:
            raise UnknownNameError(f"unknown image {name!r}; available: {list(self._sources)}")
        self.image_select.value = name

    def select_runs(self, labels: Sequence[str]) -> None:
        options = list(self.run_select.options)
        unknown = [r for r in labels if r not in options]
        if unknown:
            raise UnknownNameError(f"runs {unknown} not available for {self.image_name!r}; available: {options}")
        self.run_select.value = tuple(labels)

    def set_difference(self, on: bool, gain: float | None = None) -> None:
        with self._hold():
            self.diff_toggle.value = bool(on)
            if gain is not None:
                self.gain_slider.value = float(gain)

    def _on_image(self, change: dict[str, Any]) -> None:
        data = self._arrays(self.image_name)
        h, w = data[HR_LABEL].shape[:2]
        labels = [k for k in data if k not in (LR_LABEL, HR_LABEL)]
        keep = [r for r in self.run_select.value if r in labels] or labels[: min(4, len(labels))]
        with self._hold():
            self.run_select.options = labels
            self.run_select.value = tuple(keep)
            self.size_slider.max = min(h, w)
            self.size_slider.min = min(8, h, w)
            self._clamp_position(h, w)

    def _on_size(self, change: dict[str, Any]) -> None:
        h, w = self._arrays(self.image_name)[HR_LABEL].shape[:2]
        with self._hold():
            self._clamp_position(h, w)

    def _clamp_position(self, h: int, w: int) -> None:
        s = min(self.size_slider.value, h, w)
        self.size_slider.value = s
        # lower max before value: traitlets clamps the value into [min, max]
        self.x_slider.max, self.y_slider.max = w - s, h - s
        self.x_slider.value = min(self.x_slider.value, w - s)
        self.y_slider.value = min(self.y_slider.value, h - s)

    # -- views ---------------------------------------------------------------------------------------
    def current_crops(self) -> dict[str, np.ndarray]:
        """``{panel label: (size, size, 3) float32 crop in [0, 1]}`` of the images (not the difference maps)."""
        x, y, s = self.crop_box
        data = self._arrays(self.image_name)
        return {k: data[k][y:y + s, x:x + s].copy() for k in self.panel_labels}

    def current_panels(self) -> dict[str, np.ndarray]:
        """What each panel shows: the crop, or ``min(1, gain * |crop - HR crop|)`` in difference mode."""
        crops = self.current_crops()
        if not self.diff_toggle.value:
            return crops
        hr = crops[HR_LABEL]
        gain = float(self.gain_slider.value)
        return {k: (v if k == HR_LABEL else np.clip(gain * np.abs(v - hr), 0, 1)) for k, v in crops.items()}

    def _caption_lines(self, label: str, crop: np.ndarray, hr: np.ndarray) -> list[str]:
        """Plain-text caption of a panel: its scores, then the crop PSNR."""
        lines = [f"{k}: {_fmt(v)}" for k, v in self.scores.get((self.image_name, label), {}).items()]
        if self.crop_psnr and label != HR_LABEL:
            mse = float(np.mean((crop - hr) ** 2))
            lines.append(f"crop PSNR: {10 * math.log10(1.0 / mse):.2f} dB" if mse > 0 else "crop PSNR: inf")
        return lines

    def _caption(self, label: str, crop: np.ndarray, hr: np.ndarray) -> str:
        return "<br>".join(html.escape(line) for line in self._caption_lines(label, crop, hr)) or "&nbsp;"

    def render(self) -> None:
        """Redraw the overview and all panels (called on every control change)."""
        if self._suspended:
            return
        import ipywidgets as W

        x, y, s = self.crop_box
        data = self._arrays(self.image_name)
        hr = data[HR_LABEL]
        self.overview.value = png_bytes(hr, self.panel_px, box=(x, y, s, s))
        crops = self.current_crops()
        shown = self.current_panels()
        children = []
        for label in self.panel_labels:
            if label not in self._panels:  # built once per label, then only their values change
                title, caption = W.HTML(), W.HTML()
                img = W.Image(format="png", width=self.panel_px, height=self.panel_px)
                img.add_class("asymlib-panel-image")
                panel = W.VBox([title, img, caption], layout=W.Layout(margin="0 6px 6px 0"))
                panel.add_class("asymlib-panel")
                self._panels[label] = (panel, title, img, caption)
            panel, title, img, caption = self._panels[label]
            img.value = png_bytes(shown[label], self.panel_px)
            mode = " |diff|" if self.diff_toggle.value and label != HR_LABEL else ""
            title.value = f"<b>{html.escape(label)}</b>{mode}"
            caption.value = f"<small>{self._caption(label, crops[label], crops[HR_LABEL])}</small>"
            children.append(panel)
        self.panel_images = {label: self._panels[label][2] for label in self.panel_labels}
        if tuple(self.panels_box.children) != tuple(children):
            self.panels_box.children = children
        hh, ww = hr.shape[:2]
        self.info.value = (f"<small>{html.escape(self.image_name)}: HR {ww}x{hh}, crop x={x} y={y} "
                           f"size={s}</small>")
        self._render_count += 1

    def snapshot(self, path: str | Path | None = None) -> bytes:
        """The current view as one PNG: the banner, then the HR overview with the crop box and every panel
        side by side, each with its title and caption (as :meth:`render` shows them).

        The PNG is ``n * (panel_px + 8) + 8`` pixels wide for ``n`` tiles (the overview and the panels) and
        ``8 + banner lines * 14 (+ 8) + title lines * 14 + panel_px + 4 + caption lines * 14 + 8`` high (text
        wrapped to the tile width; the most lines of any tile count).
        With ``path`` it is also written there (atomically). Returns the PNG bytes.
        """
        x, y, s = self.crop_box
        hr = self._arrays(self.image_name)[HR_LABEL]
        crops, shown = self.current_crops(), self.current_panels()
        mode = " |diff|" if self.diff_toggle.value else ""
        tiles = [("overview (HR)", _display_image(hr, self.panel_px, box=(x, y, s, s)),
                  [f"{self.image_name}", f"crop x={x} y={y} size={s}"])]
        tiles += [(label + (mode if label != HR_LABEL else ""), _display_image(shown[label], self.panel_px),
                   self._caption_lines(label, crops[label], crops[HR_LABEL])) for label in self.panel_labels]
        px, font = self.panel_px, _font()
        width = len(tiles) * (px + _GAP) + _GAP
        scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        banner = _wrap(scratch, self.banner, font, width - 2 * _GAP) if self.banner else []
        titles = [_wrap(scratch, t, font, px) or [""] for t, _, _ in tiles]
        captions = [[part for line in c for part in (_wrap(scratch, line, font, px) or [""])] for _, _, c in tiles]
        n_title = max(len(t) for t in titles)
        n_caption = max(len(c) for c in captions)
        banner_h = len(banner) * _LINE + (_GAP if banner else 0)
        height = _GAP + banner_h + n_title * _LINE + px + 4 + n_caption * _LINE + _GAP
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        color = (176, 0, 32) if self.banner_alert else (27, 94, 32)
        for i, line in enumerate(banner):
            draw.text((_GAP, _GAP + i * _LINE), line, fill=color, font=font)
        top = _GAP + banner_h
        for k, ((_, img, _), title, caption) in enumerate(zip(tiles, titles, captions)):
            left = _GAP + k * (px + _GAP)
            for i, line in enumerate(title):
                draw.text((left, top + i * _LINE), line, fill=(0, 0, 0), font=font)
            canvas.paste(img, (left, top + n_title * _LINE))
            for i, line in enumerate(caption):
                draw.text((left, top + n_title * _LINE + px + 4 + i * _LINE), line, fill=(60, 60, 60), font=font)
        buf = io.BytesIO()
        canvas.save(buf, format="PNG")
        data = buf.getvalue()
        if path is not None:
            from .atomic import atomic_path

            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(data)
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        x, y, s = self.crop_box
        return f"ComparisonWidget(image={self.image_name!r}, runs={self.selected_runs}, crop=({x}, {y}, {s}))"
