"""asymlib: perceptual optimization vs. assessment, as one reproducible study.

Factories: :func:`create_metric`, :func:`create_feature_extractor`, :func:`create_sr_model`,
:func:`create_discriminator` (and ``asymlib.iqa.datasets.create_fr_dataset``).
"""
from .backbones import create_feature_extractor, list_backbones
from .discriminators import create_discriminator
from .metrics import PAPER_METRICS, create_metric, list_metrics
from .sr import create_sr_model

__version__ = "0.1.0"
__all__ = ["create_metric", "list_metrics", "create_discriminator", "create_sr_model", "create_feature_extractor", "list_backbones", "PAPER_METRICS",
           "__version__"]
