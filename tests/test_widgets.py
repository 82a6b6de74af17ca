"""Widget logic without a browser: slider -> frame and GOES marker, method swap, errors shown, animation."""

import matplotlib
import numpy as np
import pytest
import xarray as xr
from PIL import Image

from flarelib import explain, widgets
from flarelib import flarenet as M

pytestmark = pytest.mark.slow  # trains or explains FlareNet


@pytest.fixture(scope="module")
def stores(trained_small, tmp_path_factory):
    out, _ = trained_small
    checkpoint = M.best_checkpoint(out)
    model = M.load_flarenet(checkpoint)
    dm = M.load_datamodule(checkpoint, model)
    path = explain.write_saliency_store(tmp_path_factory.mktemp("sal") / "saliency.zarr", model, dm,
                                        ["gradcam", "integrated_gradients"], time_index=np.arange(200, 230),
                                        checkpoint=checkpoint, progress=False, n_steps=8)
    cube = xr.open_zarr(str(dm.store_path))
    return cube, xr.open_zarr(path), model, dm


def test_backend_here_is_not_ipympl():
    assert matplotlib.get_backend().lower() == "agg" and not widgets.ipympl_active()


def test_slider_shows_the_right_frame_and_moves_the_goes_marker(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=131, method="gradcam")
    image, overlay = browser.image, browser.overlay
    browser.slider.value = 7
    t = int(saliency.time_index.values[7])
    np.testing.assert_array_equal(browser.image.get_array(), cube.aia.isel(time=t).sel(channel=131).values)
    np.testing.assert_array_equal(browser.overlay.get_array(),
                                  saliency.saliency.isel(time=7).sel({"method": "gradcam", "channel": 131}).values)
    assert browser.marker.get_xdata()[0] == saliency.time.values[7]
    assert browser.image is image and browser.overlay is overlay  # the same artists, redrawn
    assert "SYNTHETIC" in browser.suptitle.get_text()


def test_changing_method_channel_and_alpha_swaps_the_overlay(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, channel=94, method="gradcam")
    browser.slider.value = 3
    browser.method.value = "integrated_gradients"
    expected = saliency.saliency.isel(time=3).sel({"method": "integrated_gradients", "channel": 94}).values
    np.testing.assert_array_equal(browser.overlay.get_array(), expected)
    browser.channel.value = 335
    np.testing.assert_array_equal(browser.image.get_array(),
                                  cube.aia.isel(time=int(saliency.time_index.values[3])).sel(channel=335).values)
    assert browser.image.get_cmap().name == "sdoaia335"
    browser.alpha.value = 0.2
    assert browser.overlay.get_alpha() == 0.2
    assert browser.play.max == browser.slider.max == 29


def test_callback_errors_are_shown_in_the_output_area(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency, method="gradcam")
    browser.cube = cube.drop_vars("aia")  # e.g. a cube that lost its frames
    with pytest.raises(KeyError):
        browser.slider.value = 2  # an error, shown in the output area, not swallowed
    assert any("KeyError" in o.get("text", "") for o in browser.errors.outputs)


def test_redraw_is_timed_and_the_widget_tree_is_complete(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency)
    for k in range(1, 6):
        browser.slider.value = k
    assert len(browser.redraw_seconds) >= 6 and browser.median_redraw_ms() > 0
    tree = browser.widget()
    assert browser.play in tree.children[0].children and browser.errors in tree.children


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


def test_time_redraws_renders_each_step(stores):
    cube, saliency, _, _ = stores
    browser = widgets.SaliencyBrowser(cube, saliency)
    ms = widgets.time_redraws(browser, steps=5)
    assert ms > 0 and browser.slider.value == 0  # left where it was
    assert len(browser.redraw_seconds) >= 7
