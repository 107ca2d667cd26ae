"""asymlib: perceptual optimization vs. assessment, as one reproducible study.

Factories: :func:`create_metric`, :func:`create_feature_extractor` (and, in their subpackages,
``create_sr_model``, ``create_discriminator``, ``create_fr_dataset``).
"""
from .backbones import create_feature_extractor, list_backbones
from .metrics import PAPER_METRICS, create_metric, list_metrics

__version__ = "0.1.0"
__all__ = ["create_metric", "list_metrics", "create_feature_extractor", "list_backbones", "PAPER_METRICS",
           "__version__"]
