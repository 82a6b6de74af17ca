"""Widget logic without a browser: slider -> frame and GOES marker, overlay, method choice, errors shown, fallback."""

import matplotlib
import numpy as np
import pytest
import xarray as xr
from PIL import Image

from flarelib import explain
from flarelib import learn as M
from flarelib.cube.store import WriteOptions
from flarelib.show import widgets

pytestmark = pytest.mark.slow  # trains or explains FlareNet


@pytest.fixture(scope="module")
def stores(trained_small, tmp_path_factory):
    out, _ = trained_small
    checkpoint = M.best_checkpoint(out)
    model = M.load_flarenet(checkpoint)
    dm = M.load_datamodule(checkpoint, model)
    cube = xr.open_zarr(str(dm.store_path))
    # 30 steps around the highest flux while a flare mask is on (the browser opens there)
    masked = cube.flare_mask.values.reshape(cube.sizes["time"], -1).any(1)
    peak = int(np.argmax(np.where(masked, cube.xrsb.values, 0)))
    first = int(np.clip(peak - 15, 0, cube.sizes["time"] - 30))
    path = explain.write_saliency_store(tmp_path_factory.mktemp("sal") / "saliency.zarr", model, dm,
                                        ["gradcam", "integrated_gradients"], time_index=np.arange(first, first + 30),
                                        checkpoint=checkpoint, write=WriteOptions(steps_per_write=64, progress=False),
                                        n_steps=8)
    return cube, xr.open_zarr(path), model, dm


def test_backend_here_is_not_ipympl():
    assert matplotlib.get_backend().lower() == "agg" and not widgets.ipympl_active()


def test_slider_shows_the_right_frame_and_moves_the_goes_marker(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=131, method="gradcam")
    image = browser.image
    browser.slider.value = 7
    t = int(saliency.time_index.values[7])
    np.testing.assert_array_equal(browser.aia_frame(7), cube.aia.isel(time=t).sel(channel=131).values)
    np.testing.assert_array_equal(browser.saliency_frame(7),
                                  saliency.saliency.isel(time=7).sel(attribution="gradcam", channel=131).values)
    np.testing.assert_array_equal(browser.image.get_array(), browser.frame_rgba(7))
    assert browser.marker.get_xdata()[0] == saliency.time.values[7]
    assert browser.image is image  # the same artist, redrawn
    assert "SYNTHETIC" in browser.suptitle.get_text() and browser.clock.get_text().endswith(":00 UTC")


def test_overlay_is_transparent_near_zero_and_coloured_where_attribution_is_large(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=94, method="integrated_gradients", alpha=1.0)
    step = browser.slider.value
    browser.alpha.value = 0.0
    plain = browser.frame_rgba(step).astype(int)  # the AIA frame alone
    browser.alpha.value = 1.0
    shown = browser.frame_rgba(step).astype(int)
    _, limit = browser._scales()
    s = np.abs(browser.saliency_frame(step)) / limit
    assert (s < widgets.TRANSPARENT_BELOW).any() and (s > widgets.OPAQUE_ABOVE).any()
    np.testing.assert_array_equal(shown[s < widgets.TRANSPARENT_BELOW], plain[s < widgets.TRANSPARENT_BELOW])
    assert (shown[s > widgets.OPAQUE_ABOVE] != plain[s > widgets.OPAQUE_ABOVE]).any()
    assert browser.signed() and browser.colorbar.get_cmap().name == widgets.SIGNED_CMAP
    assert tuple(browser.cax.get_ylim()) == (-1, 1)  # symmetric for a signed method


def test_opens_at_the_biggest_flare_with_its_mask_outlined(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, method="gradcam")
    flux = cube.xrsb.sel(time=saliency.time.values).values
    assert browser.slider.value == browser.start_step == int(np.argmax(flux))
    mask = cube.flare_mask.isel(time=int(saliency.time_index.values[browser.start_step])).values
    assert mask.any() and len(browser.mask_outline.get_segments()) > 0
    assert "biggest flare" in browser.describe() and ":00 UTC" in browser.describe()


def test_outline_segments_go_round_the_mask_pixels():
    mask = np.zeros((5, 5), bool)
    mask[1:3, 2] = True  # two pixels, one above the other: 6 unit edges
    segments = widgets._outline_segments(mask)
    assert segments.shape == (6, 2, 2)
    assert segments[..., 0].min() == 1.5 and segments[..., 0].max() == 2.5
    assert segments[..., 1].min() == 0.5 and segments[..., 1].max() == 2.5


def test_changing_method_channel_and_alpha_swaps_the_overlay(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=94, method="gradcam")
    browser.slider.value = 3
    browser.method.value = "integrated_gradients"
    expected = saliency.saliency.isel(time=3).sel(attribution="integrated_gradients", channel=94).values
    np.testing.assert_array_equal(browser.saliency_frame(3), expected)
    browser.channel.value = 335
    np.testing.assert_array_equal(browser.aia_frame(3),
                                  cube.aia.isel(time=int(saliency.time_index.values[3])).sel(channel=335).values)
    assert "335 Å" in browser.panel_title.get_text() and "Integrated Gradients" in browser.panel_title.get_text()
    browser.alpha.value = 0.2
    np.testing.assert_array_equal(browser.image.get_array(), browser.frame_rgba(3))
    assert browser.play.max == browser.slider.max == 29
    # Grad-CAM has one map for all channels, Integrated Gradients one per channel: the note beside the control says so
    assert browser.channel_note.value == "" and not browser.one_map_for_all_channels()
    browser.method.value = "gradcam"
    assert browser.one_map_for_all_channels() and "one map for all channels" in browser.channel_note.value
    lo, hi = browser.aia_scale.norm.vmin, browser.aia_scale.norm.vmax
    assert 0 < lo < hi and browser.aia_bar.ax.get_ylabel() == "AIA (DN/s)"  # the AIA colour bar follows the channel


def test_the_figure_belongs_to_no_pyplot_backend_and_fits_the_output_area(stores):
    import matplotlib.pyplot as plt

    cube, saliency, _, _ = stores
    before = plt.get_fignums()
    browser = widgets.SaliencyBrowser(cube, saliency, method="gradcam")
    assert plt.get_fignums() == before  # nothing for pyplot to show a second time
    width, height = browser.fig.get_size_inches() * browser.fig.dpi
    assert width <= 950 and height <= 400
    renderer = browser.fig.canvas.get_renderer()
    browser.fig.canvas.draw()
    for artist in (browser.cax.yaxis.label, browser.ax_goes.yaxis.label):  # no clipping, no collision
        box = artist.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= width
    assert (browser.cax.get_tightbbox(renderer).x1
            < browser.ax_goes.yaxis.get_tightbbox(renderer).x0), "colorbar label runs into the GOES axis label"


def test_method_choice_falls_back_to_gradcam_without_a_localization_table(tmp_path):
    method, why = widgets.choose_method(None, tmp_path / "localization.csv")
    assert method == "gradcam" and "notebook 06" in why
    assert widgets.choose_method("hirescam", tmp_path / "missing.csv")[0] == "hirescam"
    assert widgets.browser_methods("hirescam") == ["hirescam", "integrated_gradients"]
    assert widgets.browser_methods("integrated_gradients") == ["integrated_gradients", "gradcam"]


def test_method_choice_reads_the_localization_table(tmp_path):
    import pandas as pd

    from flarelib import explain

    if not hasattr(explain, "best_localizing_method"):
        pytest.skip("explain.best_localizing_method not there yet")
    rows = [{"model": "now", "method": m, "layer": "block 4", "map_ny": 8, "map_nx": 8, "mass_inside": v,
             "mass_upper_bound": 0.9, "pointing": v, "n_frames": 10}
            for m, v in (("gradcam", 0.3), ("hirescam", 0.6), ("integrated_gradients", 0.2), ("random", 0.9))]
    pd.DataFrame(rows).to_csv(tmp_path / "localization.csv", index=False)
    method, why = widgets.choose_method(None, tmp_path / "localization.csv")
    assert method == "hirescam" and "localizes best" in why


def test_callback_errors_are_shown_in_the_output_area(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, method="gradcam", step=0)
    browser._aia, browser._frames = browser._aia[:0], {}  # e.g. a stretch that lost its frames
    with pytest.raises(IndexError):
        browser.alpha.value = 0.3  # an error, shown in the output area, not swallowed
    assert any("IndexError" in o.get("text", "") for o in browser.errors.outputs)


def test_the_widget_shows_pre_rendered_layers_that_follow_the_slider_in_the_page(stores):
    from io import BytesIO

    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=94, method="gradcam")
    tree = browser.widget()
    assert browser.play in tree.children[0].children and browser.errors in tree.children
    layers = browser._layers
    n = len(browser.times)
    assert len(layers.panels.children) == len(layers.overlays.children) == n
    # the page moves the selector with the slider, and a style rule per step shows that step's layers
    assert layers.link.source == (browser.slider, "value") and layers.link.target == (layers.selector, "selected_index")
    assert len(layers.selector.children) == n and layers.selector.selected_index == browser.slider.value
    style = layers.box.children[-1].value
    for step in (0, n - 1):
        selector, = layers.selector.children[step]._dom_classes
        frame, = layers.panels.children[step]._dom_classes
        assert frame in layers.overlays.children[step]._dom_classes
        assert f":has(.{selector}) .{frame} {{visibility: visible;}}" in style

    def png(layer):
        return np.asarray(Image.open(BytesIO(widgets.layer_png(layer))).convert("RGBA"))

    for step in (0, n - 1):  # each step's panel is its composed frame, rows from the top
        np.testing.assert_array_equal(png(layers.panels.children[step]), browser.frame_rgba(step)[::-1])
    overlay = png(layers.overlays.children[browser.start_step])
    assert overlay.shape[:2] == png(layers.background).shape[:2]
    assert 0 < (overlay[..., 3] > 0).mean() < 0.2  # transparent but for outlines, marker and time
    # the page's composition is the figure the kernel renders (a few antialiased edges apart)
    composed = Image.open(BytesIO(widgets.layer_png(layers.background))).convert("RGBA")
    r0, r1, c0, c1 = layers.panel_rect
    panel = Image.open(BytesIO(widgets.layer_png(layers.panels.children[browser.start_step]))).convert("RGBA")
    composed.paste(panel.resize((c1 - c0, r1 - r0), Image.NEAREST), (c0, r0))
    composed.alpha_composite(Image.fromarray(overlay))
    browser.show(browser.start_step)
    still = np.asarray(Image.open(BytesIO(browser.still())).convert("RGB")).astype(int)
    differ = np.abs(np.asarray(composed.convert("RGB")).astype(int) - still).max(-1) > 40
    assert differ.mean() < 0.01, differ.mean()


def test_a_change_recomposes_every_step_and_the_background(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=94, method="gradcam")
    browser.widget()
    layers = browser._layers
    panels = [image.value for image in layers.panels.children]
    background = layers.background.value
    browser.channel.value = 335
    assert all(image.value != old for image, old in zip(layers.panels.children, panels))
    assert layers.background.value != background  # its title names the channel
    browser.method.value = "integrated_gradients"
    browser.alpha.value = 0.3
    assert len(browser.restyle_seconds) == 3 and browser.median_restyle_ms() > 0


def test_filter_browser_switches_filters_and_layers(stores):
    cube, _, model, dm = stores
    steps = np.arange(200, 210)
    names = list(explain.conv_layers(model))
    acts = {name: explain.layer_activations(model, dm, steps, name) for name in names[:2]}
    browser = widgets.FilterBrowser(cube, acts, channel=94)
    browser.filter.value = 3
    np.testing.assert_array_equal(browser.act.get_array(), acts[names[0]].isel(time=0, filter=3).values)
    browser.layer.value = names[1]
    browser.slider.value = 4
    np.testing.assert_array_equal(browser.act.get_array(), acts[names[1]].isel(time=4, filter=3).values)
    assert browser.filter.max == acts[names[1]].sizes["filter"] - 1


def test_animation_is_a_gif_with_one_frame_per_step(stores, tmp_path):
    cube, saliency, _, _ = stores
    path = widgets.save_animation(cube, saliency, tmp_path / "sal.gif", method="gradcam", channel=131, max_frames=10)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 10


def test_static_fallback_inlines_a_still_and_the_animation(stores, tmp_path):
    cube, saliency, _, _ = stores
    fallback = widgets.static_fallback(cube, saliency, tmp_path / "sal.gif", method="gradcam", max_frames=5)
    bundle = fallback._repr_mimebundle_()
    assert "data:image/gif;base64," in bundle["text/html"] and "data:image/png;base64," in bundle["text/html"]
    assert bundle["image/png"] and "object at 0x" not in bundle["text/plain"]
    assert fallback.still_png.startswith(b"\x89PNG") and fallback.gif.stat().st_size < 2e6


def test_a_browser_shown_without_its_kernel_shows_its_still_and_a_note_not_the_widget_text(stores, monkeypatch):
    import base64

    import nbformat

    from flarelib.suite import WIDGET_VIEW, without_widgets

    cube, saliency, _, _ = stores
    shown = []
    monkeypatch.setattr(widgets, "display", lambda obj, raw=False: shown.append((obj, raw)))
    widgets.SaliencyBrowser(cube, saliency, method="gradcam")._ipython_display_()
    (bundle, raw), = shown
    assert raw and WIDGET_VIEW in bundle and base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "VBox" not in bundle["text/plain"] and "JupyterLab" in bundle["text/plain"]
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"x": 1}}})
    nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data=bundle),
                                                       nbformat.v4.new_output("display_data", data={
                                                           WIDGET_VIEW: {"model_id": "a"}})]))
    plain = without_widgets(nb)
    kept, alone = (o["data"] for o in plain.cells[0].outputs)
    assert WIDGET_VIEW not in kept and "image/png" in kept and "widgets" not in plain.metadata
    assert WIDGET_VIEW in alone  # a widget with nothing else to show keeps its view
    assert WIDGET_VIEW in nb.cells[0].outputs[0]["data"] and "widgets" in nb.metadata  # the original is untouched


def test_in_a_kernel_a_change_sends_the_shown_frame_first_and_the_others_after_it_had_time_to_paint(stores):
    import asyncio

    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=94, method="gradcam", step=3)
    browser.widget()
    layers = browser._layers
    before = [image.value for image in layers.panels.children]

    async def change() -> tuple[list[bool], list[bool]]:  # in an event loop, as in a kernel
        browser.channel.value = 171
        browser.channel.value = 335  # a newer change replaces the first one's pending frames
        at_once = [image.value != old for image, old in zip(layers.panels.children, before)]
        await asyncio.sleep(2 * layers.SEND_OTHERS_AFTER_S)
        return at_once, [image.value != old for image, old in zip(layers.panels.children, before)]

    at_once, later = asyncio.run(change())
    assert at_once == [step == 3 for step in range(len(before))] and all(later)
    assert layers.background.value == layers.backgrounds[335, "gradcam"] and "335 Å" in browser.panel_title.get_text()
    expected = browser.stretch_rgba()  # the others are in the latest style, 335 Å
    assert widgets.layer_png(layers.panels.children[0]) == widgets._png(np.ascontiguousarray(expected[0][::-1]))


def test_kernel_timings_time_steps_and_changes_and_leave_the_browser_as_it_was(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, step=0, channel=131)
    timings = widgets.kernel_timings(browser, steps=5)
    assert timings["step_ms"] > 0 and timings["change_ms"] > 0 and timings["prerender_ms_per_step"] > 0
    assert browser.slider.value == 0 and browser.channel.value == 131  # left where it was
    assert len(browser.restyle_seconds) == len(browser.channel.options)


def test_method_choice_takes_the_best_localizing_method_that_passes_the_randomization_check(tmp_path):
    import pandas as pd

    rows = [{"model": model, "method": m, "layer": "block 4", "map_ny": 8, "map_nx": 8, "mass_inside": v,
             "mass_upper_bound": 0.9, "pointing": v, "n_frames": 10}
            for model in ("nowcast", "forecast")
            for m, v in (("gradcam", 0.3), ("hirescam", 0.6 if model == "nowcast" else 0.1), ("saliency", 0.2))]
    pd.DataFrame(rows).to_csv(tmp_path / "localization.csv", index=False)
    sanity = pd.DataFrame({"method": ["hirescam", "gradcam", "saliency"], "randomized_to": "block 1 conv",
                           "spearman_abs": [0.9, 0.05, 0.05], "spearman_signed": [0.9, 0.05, 0.05],
                           "mass_inside_original": 0.5, "mass_inside": 0.1, "chance": 0.05})
    sanity.to_csv(tmp_path / "randomization.csv", index=False)
    method, why = widgets.choose_method(None, tmp_path / "localization.csv", tmp_path / "randomization.csv",
                                        model="nowcast")
    assert method == "gradcam" and "pass the randomization check" in why  # hirescam localizes best but fails
    assert widgets.choose_method(None, tmp_path / "localization.csv", model="nowcast")[0] == "hirescam"
    assert widgets.choose_method(None, tmp_path / "localization.csv", model="forecast")[0] == "gradcam"


def test_the_saliency_store_selects_one_attribution_method_by_name(stores):
    _, saliency, _, _ = stores
    one = saliency.sel(attribution="gradcam")
    assert "attribution" not in one["saliency"].dims and one["saliency"].ndim == saliency["saliency"].ndim - 1
