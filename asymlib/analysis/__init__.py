"""Visual analyses of the paper's figures.

- :mod:`.recovery`: image recovery from noise or a blurred start, gradient maps (Fig. 12-13).
- :mod:`.texture`: texture synthesis with the metric's texture term (Fig. 15).
- :mod:`.autoencoder`: a small autoencoder trained with the SR objectives (Fig. 16).
- :mod:`.featuremaps`: discriminator feature maps (Fig. 14).
- :mod:`.correlation`: IQA accuracy vs. optimization quality with bootstrap intervals (Fig. 3).
- :mod:`.qualitative`: grids of images with a magnified zoom region (Figs. 2, 4, 6, 9-11).

The side-by-side comparison widget lives in :mod:`asymlib.widgets`.
"""
from .autoencoder import (
    AE_PRESETS,
    OBJECTIVE_SETTINGS,
    AETrainConfig,
    AETrainResult,
    AutoencoderConfig,
    ConvAutoencoder,
    ObjectiveWeights,
    create_autoencoder,
    get_objective,
    list_autoencoder_presets,
    plot_autoencoder_results,
    reconstruct,
    register_autoencoder_preset,
    train_autoencoder,
)
from .correlation import (
    SETTING_ORDER,
    correlation_table,
    plot_iqa_vs_optimization,
)
from .featuremaps import (
    REDUCTIONS,
    feature_maps,
    normalize_map,
    plot_feature_maps,
    stage_features,
)
from .qualitative import (
    ZOOM_STYLES,
    Panel,
    crop_box_array,
    panel_array,
    plot_zoom_grid,
    zoom_box,
)
from .recovery import (
    INITIALIZATIONS,
    RecoveryResult,
    as_batch,
    fit_image,
    gaussian_blur,
    gradient_magnitude,
    initial_image,
    metric_gradient,
    optimize_image,
    plot_recovery,
    recover_image,
    to_numpy_image,
)
from .texture import (
    TextureResult,
    plot_textures,
    synthesize_texture,
    texture_distance,
    texture_statistics,
    texture_weights,
)

__all__ = [
    "AE_PRESETS",
    "INITIALIZATIONS",
    "OBJECTIVE_SETTINGS",
    "REDUCTIONS",
    "SETTING_ORDER",
    "ZOOM_STYLES",
    "AETrainConfig",
    "AETrainResult",
    "AutoencoderConfig",
    "ConvAutoencoder",
    "ObjectiveWeights",
    "Panel",
    "RecoveryResult",
    "TextureResult",
    "as_batch",
    "correlation_table",
    "create_autoencoder",
    "crop_box_array",
    "feature_maps",
    "fit_image",
    "gaussian_blur",
    "get_objective",
    "gradient_magnitude",
    "initial_image",
    "list_autoencoder_presets",
    "metric_gradient",
    "normalize_map",
    "optimize_image",
    "panel_array",
    "plot_autoencoder_results",
    "plot_feature_maps",
    "plot_iqa_vs_optimization",
    "plot_recovery",
    "plot_textures",
    "plot_zoom_grid",
    "reconstruct",
    "recover_image",
    "register_autoencoder_preset",
    "stage_features",
    "synthesize_texture",
    "texture_distance",
    "texture_statistics",
    "texture_weights",
    "to_numpy_image",
    "train_autoencoder",
    "zoom_box",
]
