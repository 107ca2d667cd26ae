"""Qualitative comparisons of images with a magnified zoom region (paper Figs. 2, 4, 6, 9-11).

A figure is a grid of :class:`Panel` objects. Every panel shows the whole image with a rectangle around the
zoom region and, below it (or as an inset in the corner farthest from the region), that region magnified with
nearest neighbour. All panels share one zoom region, by default the square window of highest gradient energy
of the reference image (:func:`zoom_box`), so the same detail is compared everywhere. A panel without an image
(a collapsed or missing run) is drawn as an empty grey panel that says why.

Example::

    hr, sr = torch.rand(3, 96, 96), torch.rand(3, 96, 96)
    fig = plot_zoom_grid([[Panel("HR", hr), Panel("SR", sr, caption="PIQE 41.2"), Panel("GAN", None,
                          note="collapsed at step 3")]], reference=hr, title="SR outputs")
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ConfigError, InputSizeError

__all__ = ["Panel", "ZOOM_STYLES", "crop_box_array", "panel_array", "plot_zoom_grid", "zoom_box"]

ImageInput = torch.Tensor | np.ndarray
ZoomStyle = Literal["below", "inset"]
ZOOM_STYLES = ("below", "inset")
BOX_COLOR = "#ff2020"
_EMPTY_COLOR = "#d9d9d9"
_MAGNIFIED_PX = 256  # crops are repeated up to at least this many pixels, so no viewer smooths them


@dataclass(frozen=True)
class Panel:
    """One cell of a qualitative grid.

    Attributes:
        label: the panel title (objective, metric, discriminator...).
        image: ``(3, H, W)`` / ``(1, 3, H, W)`` tensor or ``(H, W, 3)`` array in ``[0, 1]``; ``None`` draws an
            empty panel that shows ``note``.
        caption: text under the panel (e.g. the image's scores); may have several lines.
        note: why ``image`` is missing (e.g. ``"collapsed at step 3"``).
    """

    label: str
    image: ImageInput | None = None
    caption: str = ""
    note: str = ""


def panel_array(image: ImageInput) -> np.ndarray:
    """An image as a float32 ``(H, W, 3)`` array in ``[0, 1]`` (tensors ``(3, H, W)`` / ``(1, 3, H, W)``;
    arrays ``(H, W, 3)`` in ``[0, 1]`` or uint8)."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise InputSizeError(f"expected a (3, H, W) image tensor, got shape {tuple(image.shape)}")
        return np.ascontiguousarray(t.clamp(0, 1).permute(1, 2, 0).numpy(), dtype=np.float32)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputSizeError(f"expected an (H, W, 3) image array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def zoom_box(reference: ImageInput, size: int | None = None, fraction: float = 0.25,
             stride: int | None = None) -> tuple[int, int, int]:
    """The square window of highest gradient energy of ``reference``: ``(x, y, size)`` in pixels (x: column,
    y: row of the top-left corner).

    The energy is the sum of squared finite differences of the luminance inside the window. ``size`` defaults
    to ``fraction`` of the shorter side (at least 8 pixels, at most the shorter side); windows are tried every
    ``stride`` pixels (default ``max(1, size // 8)``). Ties go to the first window in row-major order, so the
    result depends on the image alone.
    """
    arr = panel_array(reference)
    h, w = arr.shape[:2]
    if size is None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
        size = max(8, round(min(h, w) * fraction))
    size = int(min(size, h, w))
    if size < 1:
        raise ConfigError(f"zoom size must be at least 1 pixel, got {size}")
    stride = int(stride or max(1, size // 8))
    luma = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    energy = np.zeros((h, w), dtype=np.float64)
    energy[:, :-1] += np.diff(luma, axis=1).astype(np.float64) ** 2
    energy[:-1, :] += np.diff(luma, axis=0).astype(np.float64) ** 2
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = energy.cumsum(0).cumsum(1)
    ys = np.arange(0, h - size + 1, stride)
    xs = np.arange(0, w - size + 1, stride)
    sums = (integral[ys[:, None] + size, xs[None, :] + size] - integral[ys[:, None], xs[None, :] + size]
            - integral[ys[:, None] + size, xs[None, :]] + integral[ys[:, None], xs[None, :]])
    # rounding keeps float noise in the integral image from deciding between equal windows
    iy, ix = np.unravel_index(int(np.argmax(np.round(sums, 9))), sums.shape)
    return int(xs[ix]), int(ys[iy]), size


def crop_box_array(image: np.ndarray, box: tuple[int, int, int], magnify_to: int = _MAGNIFIED_PX) -> np.ndarray:
    """The ``box = (x, y, size)`` region of an ``(H, W, 3)`` array, magnified by an integer factor (nearest
    neighbour: every pixel repeated) so that its side is at least ``magnify_to``."""
    x, y, s = box
    crop = image[y:y + s, x:x + s]
    factor = max(1, math.ceil(magnify_to / max(1, s)))
    return np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1)


def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_empty(ax: Any, text: str) -> None:
    ax.set_facecolor(_EMPTY_COLOR)
    _bare(ax)
    if text:
        ax.text(0.5, 0.5, textwrap.fill(text, 18), ha="center", va="center", fontsize=6.5, color="#333333",
                transform=ax.transAxes)


def _draw_zoom(ax: Any, arr: np.ndarray, box: tuple[int, int, int]) -> None:
    ax.imshow(crop_box_array(arr, box), interpolation="nearest")
    _bare(ax)
    for spine in ax.spines.values():
        spine.set_edgecolor(BOX_COLOR)
        spine.set_linewidth(1.5)


def _inset_bounds(box: tuple[int, int, int], shape: tuple[int, int], side: float) -> list[float]:
    """Axes-fraction bounds of a square inset ``side`` times the image's shorter side, in the corner farthest
    from the zoom region's centre."""
    x, y, s = box
    h, w = shape
    fw, fh = side * min(h, w) / w, side * min(h, w) / h
    right = (x + s / 2) < w / 2
    bottom = (y + s / 2) < h / 2  # image rows grow downwards; axes y grows upwards
    return [1 - fw if right else 0.0, 0.0 if bottom else 1 - fh, fw, fh]


def plot_zoom_grid(rows: Sequence[Sequence[Panel | None]], box: tuple[int, int, int] | None = None, *,
                   reference: ImageInput | None = None, row_labels: Sequence[str] | None = None, title: str = "",
                   banner: str | None = None, title_color: str = "black", zoom: ZoomStyle = "below",
                   panel_inches: float = 1.7, inset_fraction: float = 0.5):
    """Draw a grid of panels, each the whole image with the zoom region boxed and magnified.

    Args:
        rows: the grid, row by row; ``None`` leaves a cell blank (rows may differ in length).
        box: the zoom region ``(x, y, size)`` in image pixels (default: :func:`zoom_box` of ``reference``, or
            of the first panel that has an image).
        reference: the image the automatic zoom region is chosen on (e.g. the HR image).
        row_labels: one label per row, drawn left of the row.
        title, banner: the figure title and a line under it (e.g. the profile banner), in ``title_color``.
        zoom: ``"below"`` (the magnified region under each image) or ``"inset"`` (a square in the image's corner
            farthest from the region, ``inset_fraction`` of its shorter side).
        panel_inches: width of one panel in inches.

    Returns:
        The matplotlib figure. Axes are labelled for inspection: ``panel:<label>`` (the whole image),
        ``zoom:<label>`` (the magnified region), ``blank`` (empty cells).

    Raises:
        InputSizeError: the panels' images differ in size.
        ConfigError: no panel has an image and ``box`` is not given, or ``zoom`` is unknown.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if zoom not in ZOOM_STYLES:
        raise ConfigError(f"zoom must be one of {ZOOM_STYLES}, got {zoom!r}")
    grid = [list(r) for r in rows]
    if not grid or not any(grid):
        raise ConfigError("plot_zoom_grid needs at least one panel")
    if row_labels is not None and len(row_labels) != len(grid):
        raise ConfigError(f"{len(row_labels)} row labels for {len(grid)} rows")
    arrays = {(i, j): panel_array(p.image) for i, r in enumerate(grid) for j, p in enumerate(r)
              if p is not None and p.image is not None}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) > 1:
        raise InputSizeError(f"panels differ in size: {sorted(s[:2] for s in shapes)}")
    if box is None:
        if reference is not None:
            box = zoom_box(reference)
        elif arrays:
            box = zoom_box(next(iter(arrays.values())))
        else:
            raise ConfigError("no panel has an image: give the zoom box")
    h, w = next(iter(shapes))[:2] if shapes else (box[1] + box[2], box[0] + box[2])
    x, y, s = (int(v) for v in box)
    if s < 1 or x < 0 or y < 0 or x + s > w or y + s > h:
        raise ConfigError(f"zoom box (x={x}, y={y}, size={s}) is not inside the {w}x{h} images")
    box = (x, y, s)

    ncols = max(len(r) for r in grid)
    nrows = len(grid)
    aspect = h / w
    below = zoom == "below"
    chars = max(40, int(ncols * panel_inches * 14))  # characters per title line at fontsize 9
    head_lines = (textwrap.wrap(title, chars) if title else []) + (textwrap.wrap(banner, chars) if banner else [])
    # panels end up ~0.9 of their nominal width (spacing); the rest of a row is its title and caption
    row_h = 0.9 * panel_inches * (aspect + (1.0 if below else 0.0)) + 0.45
    head = 0.1 + 0.17 * len(head_lines)
    fig = plt.figure(figsize=(ncols * panel_inches + (0.3 if row_labels else 0.0), nrows * row_h + head),
                     layout="constrained")
    sub_rows = 2 * nrows if below else nrows
    ratios = [aspect, 1.0] * nrows if below else [aspect] * nrows
    gs = fig.add_gridspec(sub_rows, ncols, height_ratios=ratios)
    for i, row in enumerate(grid):
        for j in range(ncols):
            panel = row[j] if j < len(row) else None
            top = gs[2 * i, j] if below else gs[i, j]
            ax = fig.add_subplot(top)
            _bare(ax)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], fontsize=8)
            if panel is None:
                ax.set_label("blank")
                ax.set_frame_on(False)
                if below:
                    low = fig.add_subplot(gs[2 * i + 1, j])
                    low.set_label("blank")
                    low.set_axis_off()
                continue
            ax.set_label(f"panel:{panel.label}")
            ax.set_title(panel.label, fontsize=7.5)
            zoom_ax = fig.add_subplot(gs[2 * i + 1, j]) if below else None
            arr = arrays.get((i, j))
            if arr is None:
                _draw_empty(ax, panel.note or "no image")
                ax.set_xlim(0, w)
                ax.set_ylim(h, 0)
                ax.set_aspect("equal")
                if zoom_ax is not None:
                    zoom_ax.set_label(f"zoom:{panel.label}")
                    _draw_empty(zoom_ax, "")
                    zoom_ax.set_aspect("equal")
            else:
                ax.imshow(arr, interpolation="nearest")
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), s, s, fill=False, edgecolor=BOX_COLOR, linewidth=1.2))
                if zoom_ax is None:
                    zoom_ax = ax.inset_axes(_inset_bounds(box, (h, w), inset_fraction))
                zoom_ax.set_label(f"zoom:{panel.label}")
                _draw_zoom(zoom_ax, arr, box)
            caption_ax = zoom_ax if below and zoom_ax is not None else ax
            if panel.caption:
                caption_ax.set_xlabel(panel.caption, fontsize=6.5)
    if head_lines:
        fig.suptitle("\n".join(head_lines), fontsize=9, color=title_color)
    return fig
