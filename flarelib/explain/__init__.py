"""The explanation floor: Captum attributions of FlareNet as xarray, their sanity checks, and saliency over time.

* :func:`attribute` runs one method (:data:`METHODS`) on time steps of a cube and returns an
  ``xr.DataArray(time, channel, y, x)`` on the cube's coordinates. Methods:

  - ``saliency``: |d output / d input| (Simonyan et al. 2014), >= 0;
  - ``integrated_gradients``: IG from the all-zero input (= every channel at its training
    mean, since inputs are standardized), signed; ``smoothgrad`` is IG averaged over noisy
    copies (Captum's NoiseTunnel);
  - ``gradcam``: Grad-CAM (Selvaraju et al. 2017) on the *rectified* feature maps of a conv
    block (the output of the block's ``nn.ReLU``, before its pooling): each map weighted by
    its spatially averaged gradient, summed, then a ReLU (``relu_attributions=True``, as in
    the paper); ``signed=True`` keeps the sign of the weighted sum;
  - ``hirescam``: HiResCAM (Draelos & Carin 2020, arXiv 2011.08891): gradient x activation
    on the same rectified maps, element by element (Captum's ``LayerGradientXActivation``),
    summed over filters, rectified unless ``signed=True``. Unlike Grad-CAM it does not average
    the gradient over the map, so it shows only locations the output actually depends on;
  - ``guided_gradcam``: Guided Backprop x Grad-CAM, per channel;
  - ``occlusion``: drop in output when a ``window`` px patch is set to 0 (the mean), all
    channels at once (``per_channel_occlusion=False``) or one channel at a time.

  The CAM methods (:data:`CAM_METHODS`) read the conv block ``block`` (1 = first; default the
  last; :func:`block_name` names it for people, e.g. "block 4, 8×8" on a 64 px input); their
  map is upsampled bilinearly to the input and repeated on every channel
  (``attrs["per_channel"] = False``); :func:`cam_maps` gives them at their own resolution.

  The explained output is the model's log10 flux (``head="flux"``, Captum ``target=None``)
  or, when the model has the class head, P(flux >= M1) (``head="prob_M"``).
  Captum runs outside Lightning's ``inference_mode`` with gradients on. Models with an
  auxiliary input (``hparams["aux_inputs"] > 0``: standardized GOES-history features) get
  it from the data module (:meth:`~flarelib.learn.data.FlareDataModule.model_inputs`); models with several input frames
  (``hparams["frames"] > 1``) are explained on all of them and :func:`attribute` returns the
  current frame's slice (the share of |attribution| on earlier frames is in its attrs).
* :func:`layer_activations`, :func:`block_activations` and :func:`survey_filters`: what
  each conv filter responds to, on regions that will flare and on regions that will not.
* :func:`channel_importance`: the share of attribution mass per wavelength over time.
* :func:`randomization_table` (Adebayo et al. 2018): cascading model-parameter randomization,
  Spearman rho on absolute and on signed values; a NaN rho is a failure.
* :func:`localization_table`: each map scored at its own resolution against the region that
  flares (:func:`scoring_frames`), with the upper bound that resolution allows, beside the
  trivial maps (:func:`trivial_maps`); written by :func:`write_localization`.
* :func:`write_saliency_store`: a method over a time range written beside the cube as
  ``saliency(time, method, channel, y, x)`` in Zarr, resumable like the ingest.

Modules: :mod:`.attribution` (methods, model inputs, activations), :mod:`.localize`, :mod:`.filters`,
:mod:`.sanity` and :mod:`.saliency_store`; this package re-exports their public names.
"""

from flarelib.explain.attribution import (
    CAM_METHODS,
    HEADS,
    METHOD_PARAMS,
    METHODS,
    ExplainedOutput,
    ModelInputs,
    attribute,
    attribute_tensor,
    block_activations,
    block_name,
    block_relu,
    block_shapes,
    cam_maps,
    channel_importance,
    check_params,
    check_time_index,
    conv_blocks,
    conv_layers,
    current_frame,
    frame_step,
    layer_activations,
    method_maps,
    model_inputs,
    n_frames,
    native_map,
    needs_aux,
)
from flarelib.explain.filters import (
    FILTER_AUC_COLUMNS,
    FilterSurvey,
    RegionSamples,
    channel_on_regions,
    channel_region_auc,
    filter_auc_table,
    filter_auc_verdict,
    filter_region_auc,
    filter_survey_verdict,
    filters_on_flaring_regions,
    region_samples,
    survey_filters,
)
from flarelib.explain.localize import (
    HOT_CHANNELS,
    LOCALIZATION_COLUMNS,
    POINTING_COLUMNS,
    TRIVIAL_MAPS,
    RegionMasks,
    ScoringFrames,
    best_localizing_method,
    flaring_regions,
    frame_mean_interval,
    localization,
    localization_table,
    localization_verdict,
    pointing_offsets,
    pool_mask,
    pooled_references,
    region_frames,
    region_masks,
    saturation_levels,
    score_map,
    score_maps,
    scoring_frames,
    steps_around_peak,
    trivial_maps,
    with_bloom,
    write_localization,
    write_table,
)
from flarelib.explain.saliency_store import (
    SALIENCY_WRITES,
    write_saliency_store,
)
from flarelib.explain.sanity import (
    LOCALIZATION_DROP,
    RANDOMIZATION_COLUMNS,
    randomization_table,
    randomization_test,
    randomization_verdict,
    write_randomization,
)

__all__ = [
    "METHODS",
    "CAM_METHODS",
    "HEADS",
    "needs_aux",
    "n_frames",
    "ExplainedOutput",
    "conv_layers",
    "conv_blocks",
    "block_relu",
    "block_shapes",
    "block_name",
    "ModelInputs",
    "check_time_index",
    "frame_step",
    "model_inputs",
    "METHOD_PARAMS",
    "check_params",
    "attribute_tensor",
    "current_frame",
    "attribute",
    "cam_maps",
    "native_map",
    "layer_activations",
    "block_activations",
    "channel_importance",
    "method_maps",
    "filters_on_flaring_regions",
    "channel_on_regions",
    "FilterSurvey",
    "survey_filters",
    "filter_survey_verdict",
    "FILTER_AUC_COLUMNS",
    "RegionSamples",
    "region_samples",
    "filter_region_auc",
    "channel_region_auc",
    "filter_auc_table",
    "filter_auc_verdict",
    "HOT_CHANNELS",
    "TRIVIAL_MAPS",
    "LOCALIZATION_COLUMNS",
    "pool_mask",
    "flaring_regions",
    "RegionMasks",
    "region_masks",
    "region_frames",
    "steps_around_peak",
    "localization",
    "score_map",
    "saturation_levels",
    "with_bloom",
    "ScoringFrames",
    "scoring_frames",
    "trivial_maps",
    "pooled_references",
    "frame_mean_interval",
    "score_maps",
    "best_localizing_method",
    "localization_verdict",
    "write_localization",
    "write_table",
    "localization_table",
    "POINTING_COLUMNS",
    "pointing_offsets",
    "SALIENCY_WRITES",
    "write_saliency_store",
    "RANDOMIZATION_COLUMNS",
    "LOCALIZATION_DROP",
    "randomization_test",
    "randomization_table",
    "randomization_verdict",
    "write_randomization",
]
