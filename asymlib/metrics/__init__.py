"""DISTS-style perceptual metrics over any backbone."""
from .dists import DISTSMetric
from .registry import (PAPER_METRICS, MetricLoss, MetricPreset, create_metric, get_metric_preset, list_metrics,
                       metric_from_preset, register_metric)
from .weights_io import MetricWeights, export_metric, read_metric_weights

__all__ = ["DISTSMetric", "PAPER_METRICS", "MetricLoss", "MetricPreset", "create_metric", "get_metric_preset", "list_metrics",
           "metric_from_preset", "register_metric", "MetricWeights", "export_metric", "read_metric_weights"]
