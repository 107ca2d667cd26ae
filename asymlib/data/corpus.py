"""Images that installed packages ship offline, for tests, smoke runs and the synthetic benchmark.

Every image is returned as a float32 tensor of shape (3, H, W) in [0, 1]; grayscale images
are replicated to RGB. Sources:

- scikit-image's ``skimage.data`` (bundled inside the wheel, no download): colour photographs
  ``astronaut, chelsea, coffee, rocket, motorcycle_left, hubble_deep_field, retina,
  immunohistochemistry`` and the 512x512 grayscale textures ``brick, grass, gravel``.
- any ``.png/.jpg/.jpeg/.bmp`` files inside the installed ``pyiqa`` package, registered as
  ``"pyiqa:<relative path without suffix>"`` (pyiqa 0.1.16 ships none).
"""
from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UnknownNameError
from ..imageio import load_image, to_tensor

__all__ = [
    "CATEGORIES",
    "EmbeddedImage",
    "embedded_images",
    "embedded_textures",
    "list_embedded_images",
    "register_embedded_image",
]

CATEGORIES = ("color", "texture", "pyiqa")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class EmbeddedImage:
    """A registry entry: ``loader()`` returns an (H, W) or (H, W, 3) array or a (3, H, W) tensor."""

    name: str
    loader: Callable[[], np.ndarray | torch.Tensor]
    category: str
    source: str


_REGISTRY: dict[str, EmbeddedImage] = {}


def register_embedded_image(
    name: str, loader: Callable[[], np.ndarray | torch.Tensor], category: str, source: str = ""
) -> None:
    """Add an image to the corpus (``category`` is one of :data:`CATEGORIES`)."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    _REGISTRY[name] = EmbeddedImage(name, loader, category, source)


def _skimage(function: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data  # imported lazily: it costs about half a second

        array = getattr(skimage.data, function)()
        return array[index] if index is not None else array

    return load


for _name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry"):
    register_embedded_image(_name, _skimage(_name), "color", f"skimage.data.{_name}()")
register_embedded_image("motorcycle_left", _skimage("stereo_motorcycle", 0), "color",
                        "skimage.data.stereo_motorcycle()[0]")
for _name in ("brick", "grass", "gravel"):
    register_embedded_image(_name, _skimage(_name), "texture", f"skimage.data.{_name}() (grayscale)")
del _name


@functools.lru_cache(maxsize=1)
def _discover_pyiqa_images() -> tuple[str, ...]:
    """Register image files found inside the installed pyiqa package (without importing it)."""
    spec = importlib.util.find_spec("pyiqa")
    if spec is None or not spec.submodule_search_locations:
        return ()
    names = []
    for root in spec.submodule_search_locations:
        root_path = Path(root)
        for path in sorted(root_path.rglob("*")):
            if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file():
                name = "pyiqa:" + path.relative_to(root_path).with_suffix("").as_posix()
                register_embedded_image(name, functools.partial(load_image, path), "pyiqa", str(path))
                names.append(name)
    return tuple(names)


def list_embedded_images(category: str | None = None) -> list[str]:
    """Names of the embedded images, in registration order, optionally of one category."""
    _discover_pyiqa_images()
    if category is not None and category not in CATEGORIES:
        raise UnknownNameError(f"unknown image category {category!r}; known: {list(CATEGORIES)}")
    return [name for name, entry in _REGISTRY.items() if category is None or entry.category == category]


@functools.cache
def _load(name: str) -> torch.Tensor:
    image = _REGISTRY[name].loader()
    return image.float() if isinstance(image, torch.Tensor) else to_tensor(image)


def embedded_images(names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Load embedded images by name.

    Args:
        names: names from :func:`list_embedded_images` (``None``: all of them).

    Returns:
        ``{name: float32 tensor (3, H, W) in [0, 1]}`` in the requested order. Decoded images
        are cached; every call returns fresh clones, safe to modify.

    Raises:
        UnknownNameError: a name is not in the corpus (the message lists the known names).
    """
    known = list_embedded_images()
    names = known if names is None else list(names)
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise UnknownNameError(f"unknown embedded image(s) {unknown}; known: {known}")
    return {name: _load(name).clone() for name in names}


def embedded_textures() -> dict[str, torch.Tensor]:
    """The grayscale texture images (brick, grass, gravel) as RGB tensors (3, 512, 512) in [0, 1]."""
    return embedded_images(list_embedded_images("texture"))
