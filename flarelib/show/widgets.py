"""Widgets stage: browse saliency and filter activations over time in Jupyter (ipywidgets).

:class:`SaliencyBrowser` shows, for one time step of a stretch of a cube, the AIA frame of a
channel in its sunpy colormap with a saliency overlay and, on synthetic cubes, the outline of
the ground-truth flare mask and of the flaring region; beside it the GOES light curve with a
moving "now" marker and the flare-class bands. A ``Play`` button is linked to the time slider;
channel, method and overlay opacity are selectable. It opens at the biggest flare of the stretch.

How it stays fast: a slider step needs no kernel at all.

* the stretch (AIA frames, saliency maps, masks) is read into memory once;
* the figure is drawn once by matplotlib (Agg, without pyplot, so no backend shows it a second
  time) and shown as three stacked images: the figure without what moves; the composed frame
  of the shown channel, method and opacity at the frame's own resolution (the page scales it
  up, nearest pixel); and a transparent layer with the mask outlines, the GOES marker and the
  time. The last two are pre-rendered for every step and all loaded into the page once;
* a step only switches which of them are visible: an ``ipywidgets.Stack`` of empty boxes follows
  the slider in the page (``jsdlink``), and one CSS rule per step (``:has``) shows that step's
  images while its box is shown. Nothing goes to the kernel and back (:class:`_Layers`);
* a channel, method or opacity change sends the shown step's recomposed frame and that channel
  and method's background (rendered ahead), then, once the page has painted them, the other
  steps' frames (one small PNG each).

Errors in callbacks are shown in the widget's output area instead of vanishing.

:class:`FilterBrowser` browses the activations of a conv layer, filter by filter (redrawn by the
kernel: ipympl with ``%matplotlib widget``, else an image in an output area).
:func:`save_animation` and :func:`static_fallback` write what a reader without a kernel sees: a
small GIF of the stretch and a still of the browser, inlined in the HTML (no CDN, no kernel).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import itertools
import struct
import time as _time
import zlib
from collections.abc import Callable
from pathlib import Path

import ipywidgets as W
import matplotlib
import numpy as np
import xarray as xr
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from flarelib.labels import data_kind, method_label
from flarelib.show.plotting import add_class_bands, aia_cmap, frame_range

FIGSIZE = (9.4, 3.7)  # inches at 100 dpi: 940 px, inside JupyterLab's ~968 px output area
DPI = 100
FALLBACK_METHOD = "gradcam"
SIGNED_CMAP, UNSIGNED_CMAP = "RdBu_r", "viridis"
#: |attribution| / its 99.5th percentile below which the overlay is fully transparent, and above which opaque
TRANSPARENT_BELOW, OPAQUE_ABOVE = 0.1, 0.6
_figure_numbers = itertools.count(1000)


def ipympl_active() -> bool:
    """True when matplotlib draws through ipympl (interactive canvases in the notebook)."""
    return "ipympl" in matplotlib.get_backend() or matplotlib.get_backend() == "widget"


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def choose_method(method: str | None, table_path: str | Path, sanity_path: str | Path | None = None, *,
                  model: str | None = None) -> tuple[str, str]:
    """The attribution method the browser opens with, and a sentence saying why.

    ``method`` given: that one. ``None``: the method that localizes best on this model (rows of ``model``, if
    given), from the localization table notebook 06 writes (``table_path``, via
    :func:`flarelib.explain.best_localizing_method`), among the methods that pass the randomization check
    (``sanity_path``, notebook 06's ``randomization.csv``, :func:`flarelib.explain.randomization_verdict`) when
    that table exists; without the localization table, Grad-CAM.
    """
    if method is not None:
        return method, f"method {method_label(method)}: chosen in the parameters cell"
    table_path = Path(table_path)
    if not table_path.exists():
        return FALLBACK_METHOD, (f"method {method_label(FALLBACK_METHOD)}: no localization table at {table_path} "
                                 "(run notebook 06 first to pick the method that localizes best)")
    import pandas as pd

    from flarelib import explain  # lazy: explain imports torch and Captum, which the browser itself never needs

    table = pd.read_csv(table_path)
    if model is not None and model in set(table["model"]):
        table = table[table["model"] == model]
    candidates, why = list(explain.METHODS), ""  # what a store holds
    if sanity_path is not None and Path(sanity_path).exists():
        verdict = explain.randomization_verdict(pd.read_csv(sanity_path))
        passing = [m for m in candidates if m in verdict.index and bool(verdict.loc[m, "passes"])]
        if passing:
            candidates, why = passing, " among those that pass the randomization check"
        else:
            why = " (none passes the randomization check, so this one is not vouched for either)"
    best = explain.best_localizing_method(table, candidates=candidates)
    return best, (f"method {method_label(best)}: it localizes best on this model{why} (notebook 06's tables "
                  f"{table_path.name}{', ' + Path(sanity_path).name if sanity_path is not None else ''})")


def browser_methods(method: str) -> list[str]:
    """The methods a browser store holds: ``method`` first, then a signed one to compare with."""
    other = "integrated_gradients" if method != "integrated_gradients" else FALLBACK_METHOD
    return [method, other]


def _guarded(output: W.Output, fn: Callable) -> Callable:
    """Wrap a widget callback so an exception is printed in ``output`` (not lost in a log)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - shown to the user, then re-raised for tests
            output.append_stderr(f"{type(err).__name__}: {err}\n")
            raise

    return wrapper


def _frame_norm(image: np.ndarray) -> LogNorm:
    lo, hi = frame_range(image)
    return LogNorm(max(lo, 1e-3), max(hi, lo * 1.01))


def _new_figure(figsize: tuple[float, float], interactive: bool) -> Figure:
    """A figure that no pyplot backend knows about, so it is shown only where the browser puts it.

    With ``interactive`` (ipympl in a kernel) it gets an ipympl canvas without header, footer,
    toolbar or resize handle: one plain figure inside the widget. Else an Agg canvas.
    """
    fig = Figure(figsize=figsize, dpi=DPI)
    if interactive:
        from ipympl.backend_nbagg import Canvas, FigureManager

        canvas = Canvas(fig)
        FigureManager(canvas, next(_figure_numbers))
        canvas.header_visible = False
        canvas.footer_visible = False
        canvas.toolbar_visible = False
        canvas.resizable = False
    else:
        FigureCanvasAgg(fig)
    return fig


def _png(pixels: np.ndarray, level: int = 1) -> bytes:
    """An RGBA (rows, columns, 4) uint8 image as PNG, unfiltered, level-``level`` zlib.

    Three times faster than Pillow's adaptive filters on a figure that is mostly one colour or
    mostly transparent (a step frame), for a slightly larger file.
    """
    height, width = pixels.shape[:2]
    raw = np.zeros((height, 1 + 4 * width), np.uint8)  # filter byte 0 (none) before each row
    raw[:, 1:] = pixels.reshape(height, -1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + chunk(b"IEND", b""))


def _fast_png(canvas) -> Callable:
    """``get_diff_image`` for an ipympl canvas: every frame whole, encoded by :func:`_png`.

    Whole frames stay right when the page drops a frame that a newer one replaced before it loaded
    (matplotlib's diff frames would then leave stale pixels).
    """

    def get_diff_image():
        if not canvas._png_is_old:
            return None
        canvas.set_image_mode("full")
        canvas._png_is_old = False
        canvas._force_full = False
        return _png(np.asarray(canvas.get_renderer().buffer_rgba()))

    return get_diff_image


def _send_binary(canvas) -> Callable:
    """``send_binary`` for an ipympl canvas whose ``_data_url`` (before the page has initialized it) is a data URL.

    ipympl stores the bare base64 there; the page then loads a broken image and the figure stays
    empty. That happens whenever a notebook draws before the page has answered, e.g. Run All.
    """

    def send_binary(data: bytes) -> None:
        if canvas.syncing_data_url:
            canvas._data_url = "data:image/png;base64," + base64.b64encode(data).decode()
        canvas.send({"data": '{"type": "binary"}'}, buffers=[data])

    return send_binary


class _Browser:
    """Shared plumbing: figure, output areas, slider + Play, redraw timing."""

    def __init__(self, n_steps: int, interval_ms: int = 40):
        self.errors = W.Output()
        self.static = W.Output()
        self.slider = W.IntSlider(value=0, min=0, max=max(n_steps - 1, 0), description="step",
                                  continuous_update=True, layout=W.Layout(width="60%"))
        self.play = W.Play(value=0, min=0, max=max(n_steps - 1, 0), interval=interval_ms, description="play")
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.redraw_seconds: list[float] = []

    def _make_figure(self, figsize: tuple[float, float], offscreen: bool = False) -> Figure:
        self.interactive = not offscreen and ipympl_active() and _in_kernel()
        fig = _new_figure(figsize, self.interactive)
        if self.interactive:
            fig.canvas.get_diff_image = _fast_png(fig.canvas)
            fig.canvas.send_binary = _send_binary(fig.canvas)
        return fig

    def _finish(self, fig) -> None:
        if self.interactive:
            fig.canvas.draw_idle()
        elif _in_kernel():
            with self.static:
                self.static.clear_output(wait=True)
                display(fig)

    def median_redraw_ms(self) -> float:
        return 1e3 * float(np.median(self.redraw_seconds)) if self.redraw_seconds else float("nan")

    def figure_widget(self) -> W.Widget:
        """The figure's place in the widget: the ipympl canvas, or the output area it is redrawn into."""
        return self.fig.canvas if self.interactive else self.static

    def still(self) -> bytes:
        """PNG of the figure as it is shown now."""
        with io.BytesIO() as png:
            self.fig.savefig(png, format="png", dpi=DPI)
            return png.getvalue()

    def _ipython_display_(self):
        """The live widget, with the still and a one-line note for any front end that cannot show it (an HTML export,
        a notebook opened without its kernel): they show those instead of the widget's ``VBox(children=...`` text."""
        bundle = dict(self.widget()._repr_mimebundle_() or {})
        bundle["image/png"] = base64.b64encode(self.still()).decode()
        bundle["text/plain"] = (f"[{type(self).__name__}: an interactive widget; run this notebook in JupyterLab to "
                                "use its controls. The figure shows its first view.]")
        display(bundle, raw=True)


def _outline_segments(mask: np.ndarray) -> np.ndarray:
    """Pixel-edge segments ``(n, 2, 2)`` in data coordinates around the True pixels of ``mask`` (y, x)."""
    m = np.pad(np.asarray(mask, bool), 1)
    # horizontal edges: between rows y-1 and y (padded index), vertical edges: between columns
    ys, xs = np.nonzero(m[1:, 1:-1] != m[:-1, 1:-1])
    horizontal = np.stack([np.stack([xs - 0.5, ys - 0.5], -1), np.stack([xs + 0.5, ys - 0.5], -1)], 1)
    ys, xs = np.nonzero(m[1:-1, 1:] != m[1:-1, :-1])
    vertical = np.stack([np.stack([xs - 0.5, ys - 0.5], -1), np.stack([xs - 0.5, ys + 0.5], -1)], 1)
    return np.concatenate([horizontal, vertical]).astype(float)


def xrsb_peak_step(cube: xr.Dataset, times: np.ndarray) -> int:
    """Index into ``times`` of the step whose span (to the next step) holds the highest GOES XRS-B flux: the
    stretch's biggest flare as the X-ray curve shows it (:func:`flarelib.evaluate.summary.biggest_flare_step` is the
    cube's largest *listed* flare instead); 0 without ``xrsb`` or with fewer than two steps."""
    if "xrsb" not in cube or len(times) < 2:
        return 0
    flux_times = cube["time"].values
    flux = np.nan_to_num(cube["xrsb"].values.astype(float), nan=-np.inf)
    step = np.diff(times).min()
    starts = np.searchsorted(flux_times, times)
    ends = np.searchsorted(flux_times, times + step)
    peaks = [flux[a:b].max() if b > a else -np.inf for a, b in zip(starts, ends)]
    return int(np.argmax(peaks)) if np.isfinite(np.max(peaks)) else 0


class SaliencyBrowser(_Browser):
    """Browse ``saliency(time, attribution, channel, y, x)`` over a cube's AIA frames and GOES curve.

    ``cube`` is the flarelib cube, ``saliency`` a store written by
    :func:`flarelib.explain.write_saliency_store` (its ``time`` is a subset of the cube's).
    The stretch is read into memory once. ``step`` is where it opens (default: the biggest flare,
    :func:`xrsb_peak_step`).
    The figure is a matplotlib figure on an Agg canvas (:meth:`show` sets its artists to a step,
    :meth:`still` renders it); :meth:`widget` shows it as pre-rendered layers (module docstring).
    """

    def __init__(self, cube: xr.Dataset, saliency: xr.Dataset, *, channel: int | None = None,
                 method: str | None = None, alpha: float = 0.7, step: int | None = None,
                 figsize: tuple[float, float] = FIGSIZE):
        self.cube = cube
        self.saliency = saliency
        self.times = saliency["time"].values
        self.time_index = saliency["time_index"].values
        super().__init__(len(self.times))
        channels = [int(c) for c in saliency["channel"].values]
        methods = [str(m) for m in saliency["attribution"].values]
        self.channel = W.Dropdown(options=channels, value=channel or channels[0], description="channel (Å)",
                                  layout=W.Layout(width="200px"))
        self.method = W.Dropdown(options=[(method_label(m), m) for m in methods], value=method or methods[0],
                                 description="method", layout=W.Layout(width="280px"))
        self.alpha = W.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="overlay",
                                   continuous_update=False,  # a change recomposes every step: once, on release
                                   layout=W.Layout(width="280px"))
        self.channel_note = W.HTML(layout=W.Layout(width="auto"))
        self.label = data_kind(cube)
        self.name = cube.attrs.get("name", "")
        # the displayed stretch, in memory: a step reads no store
        self._aia = np.asarray(cube["aia"].isel(time=self.time_index).values, dtype=np.float32)
        self._channels = channels
        self._methods = methods
        self._sal = np.asarray(saliency["saliency"].values, dtype=np.float32)
        self._mask = (cube["flare_mask"].isel(time=self.time_index).values.astype(bool)
                      if "flare_mask" in cube else None)
        self._region = self._flaring_region(cube)
        self._norms: dict = {}
        self._signed: dict = {}
        self._shared: dict = {}
        self._frames: dict = {}
        self._segments: dict = {}
        self.start_step = xrsb_peak_step(cube, self.times) if step is None else int(step)

        self.fig = self._make_figure(figsize, offscreen=True)
        self._build_figure(cube)
        self._layers: _Layers | None = None  # built by widget()
        self.restyle_seconds: list[float] = []
        self.slider.value = self.play.value = self.start_step  # before the observers; jslink syncs in a browser
        self.slider.observe(_guarded(self.errors, lambda change: self.show(change["new"])), names="value")
        for control in (self.channel, self.method, self.alpha):
            control.observe(_guarded(self.errors, lambda change: self._restyle()), names="value")
        self._restyle()

    # ------------------------------------------------------------------ data

    def _flaring_region(self, cube: xr.Dataset) -> np.ndarray | None:
        """(time, y, x): the region (``region_id``) under the biggest flare's mask, through the stretch."""
        if "region_id" not in cube or self._mask is None:
            return None
        ids = cube["region_id"].isel(time=self.time_index).values
        peak = xrsb_peak_step(cube, self.times)
        under = ids[peak][self._mask[peak] & (ids[peak] > 0)]
        if not under.size:
            return None
        return ids == np.bincount(under).argmax()

    def aia_frame(self, step: int) -> np.ndarray:
        """The AIA frame (DN/s) of the shown channel at ``step``."""
        return self._aia[step, self._channels.index(self.channel.value)]

    def saliency_frame(self, step: int) -> np.ndarray:
        """The attribution map of the shown method and channel at ``step``."""
        return self._sal[step, self._methods.index(self.method.value), self._channels.index(self.channel.value)]

    def signed(self, method: str | None = None) -> bool:
        """Whether ``method``'s maps over the stretch take both signs (then a diverging colour map)."""
        method = method or self.method.value
        if method not in self._signed:
            values = self._sal[:, self._methods.index(method)]
            scale = float(np.abs(values).max())
            self._signed[method] = bool(scale > 0 and -float(values.min()) > 1e-3 * scale)
        return self._signed[method]

    def _scales(self, channel: int | None = None, method: str | None = None) -> tuple[LogNorm, float]:
        """The AIA colour scale of a channel (default: the shown one) over the whole stretch, and the
        attribution scale of a method in that channel (its 99.5th percentile of |attribution|)."""
        key = (channel or self.channel.value, method or self.method.value)
        if key not in self._norms:
            c = self._channels.index(key[0])
            frames = self._aia[:, c]
            lo, hi = frame_range(frames)
            values = np.abs(self._sal[:, self._methods.index(key[1]), c])
            limit = float(np.nanpercentile(values, 99.5)) or 1.0
            self._norms[key] = (LogNorm(max(lo, 1e-3), max(hi, lo * 1.01)), limit)
        return self._norms[key]

    def _style_key(self) -> tuple:
        return self.channel.value, self.method.value, round(self.alpha.value, 3)

    def _compose(self, steps: slice | list[int]) -> np.ndarray:
        """RGBA frames (len(steps), y, x, 4): the AIA frames in their colour map (one scale over the
        stretch), the attribution on top in its own colour map, transparent near zero and opaque from
        ``OPAQUE_ABOVE`` of its scale."""
        norm, limit = self._scales()
        c, m = self._channels.index(self.channel.value), self._methods.index(self.method.value)
        frames = np.clip(self._aia[steps, c], norm.vmin, None)
        scaled = norm(frames.reshape(len(frames), -1)).reshape(frames.shape)  # a LogNorm takes 2-D at most
        base = aia_cmap(self.channel.value)(scaled, bytes=True)[..., :3]
        s = np.clip(self._sal[steps, m, c] / limit, -1, 1)
        if self.signed():
            colours = matplotlib.colormaps[SIGNED_CMAP]((s + 1) / 2, bytes=True)[..., :3]
        else:
            colours = matplotlib.colormaps[UNSIGNED_CMAP](np.clip(s, 0, 1), bytes=True)[..., :3]
        weight = np.clip((np.abs(s) - TRANSPARENT_BELOW) / (OPAQUE_ABOVE - TRANSPARENT_BELOW), 0, 1)
        weight = (self.alpha.value * weight)[..., None].astype(np.float32)
        rgba = np.full(base.shape[:-1] + (4,), 255, np.uint8)
        rgba[..., :3] = np.rint(base * (1 - weight) + colours * weight)
        return rgba

    def stretch_rgba(self) -> np.ndarray:
        """The composed RGBA frames (time, y, x, 4) of the shown channel, method and opacity (composed once)."""
        key = self._style_key()
        if key not in self._frames:
            if len(self._frames) >= 4:  # a few recent settings, not every one ever shown
                self._frames.pop(next(iter(self._frames)))
            self._frames[key] = self._compose(slice(None))
        return self._frames[key]

    def frame_rgba(self, step: int) -> np.ndarray:
        """The composed RGBA image (y, x, 4) of ``step``: from the stretch when it is composed, else alone."""
        if self._style_key() in self._frames:
            return self._frames[self._style_key()][step]
        return self._compose([step])[0]

    # ------------------------------------------------------------------ figure

    def _build_figure(self, cube: xr.Dataset) -> None:
        fig = self.fig
        width, height = fig.get_size_inches()
        side = 0.78 * height / width  # a square image panel, 78 % of the figure's height
        self.ax_img = fig.add_axes((0.01, 0.05, side, 0.78))
        self.cax = fig.add_axes((0.02 + side, 0.05, 0.012, 0.78))
        self.aia_cax = fig.add_axes((0.02 + side + 0.085, 0.05, 0.012, 0.78))
        left = 0.02 + side + 0.225
        self.ax_goes = fig.add_axes((left, 0.24, 0.96 - left, 0.59))
        ny, nx = self._aia.shape[-2:]
        self.image = self.ax_img.imshow(np.zeros((ny, nx, 4), np.uint8), origin="lower", interpolation="nearest",
                                        extent=(-0.5, nx - 0.5, -0.5, ny - 0.5))
        self.ax_img.set_xticks([])
        self.ax_img.set_yticks([])
        self.mask_outline = LineCollection([], colors="lime", linewidths=1.4)
        self.region_outline = LineCollection([], colors="white", linewidths=0.8, linestyles=(0, (2, 2)))
        self.ax_img.add_collection(self.mask_outline)
        self.ax_img.add_collection(self.region_outline)
        self.ax_img.set_xlim(-0.5, nx - 0.5)
        self.ax_img.set_ylim(-0.5, ny - 0.5)
        self.colorbar = self.cax.imshow(np.linspace(-1, 1, 256)[:, None], origin="lower", aspect="auto",
                                        extent=(0, 1, -1, 1))
        self.cax.set_xticks([])
        self.cax.yaxis.tick_right()
        self.cax.yaxis.set_label_position("right")
        self.cax.set_ylabel("attribution / 99.5th pct", fontsize=8)
        self.cax.tick_params(labelsize=8)
        self.aia_scale = ScalarMappable(norm=LogNorm(1, 10), cmap="gray")
        self.aia_bar = fig.colorbar(self.aia_scale, cax=self.aia_cax)
        self.aia_cax.yaxis.set_minor_locator(NullLocator())
        self.aia_cax.tick_params(labelsize=7)
        self.aia_bar.set_label("AIA (DN/s)", fontsize=8)
        self.panel_title = self.ax_img.set_title("", fontsize=9)
        flux = cube["xrsb"].values
        self.ax_goes.semilogy(cube["time"].values, np.where(flux > 0, flux, np.nan), color="tab:red", lw=0.8,
                              label="XRS-B, mean of the cadence interval before each step")
        lo, hi = self.times[0], self.times[-1]
        pad = (hi - lo) * 0.05 if hi > lo else np.timedelta64(1, "h")
        self.ax_goes.set_xlim(lo - pad, hi + pad)
        add_class_bands(self.ax_goes)
        self.marker = self.ax_goes.axvline(self.times[0], color="k", lw=1.2)
        self.ax_goes.set_ylabel("XRS-B (W/m²)", fontsize=9)
        self.ax_goes.yaxis.set_minor_locator(NullLocator())  # dozens of log minor ticks cost more than the images
        self.ax_goes.tick_params(labelsize=8)
        for tick in self.ax_goes.get_xticklabels():
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")
        self.ax_goes.set_title(f"{self.label} GOES XRS-B, black line: now", fontsize=9)
        self.ax_goes.legend(loc="upper left", fontsize=7, frameon=False)
        self.suptitle = fig.suptitle(f"{self.label} {self.name}:", fontsize=10, x=0.3, y=0.98, ha="right")
        self.clock = fig.text(0.31, 0.98, "", fontsize=10, ha="left", va="top")  # the shown step's time
        if self._mask is not None:
            fig.text(0.01, 0.005, "green: true flare mask · dashed: the flaring region", fontsize=7, color="0.3")

    def one_map_for_all_channels(self, method: str | None = None) -> bool:
        """Whether ``method`` gives the same map in every channel over the stretch (Grad-CAM and HiResCAM weight one
        map of the last convolution layer, which has no channel axis): then the channel control picks only the AIA
        image under it."""
        method = method or self.method.value
        if method not in self._shared:
            values = self._sal[:, self._methods.index(method)]
            self._shared[method] = bool(len(self._channels) > 1 and np.array_equal(values, values[:, :1].repeat(
                values.shape[1], axis=1), equal_nan=True))
        return self._shared[method]

    def _style_artists(self, channel: int, method: str) -> None:
        """Set the panel title, the colour bars and the channel note for ``channel`` and ``method``."""
        self.channel_note.value = (f"<small>{method_label(method)} gives one map for all channels: the channel "
                                   "changes the AIA image only</small>" if self.one_map_for_all_channels(method)
                                   else "")
        signed = self.signed(method)
        self.colorbar.set_cmap(SIGNED_CMAP if signed else UNSIGNED_CMAP)
        self.colorbar.set_extent((0, 1, -1 if signed else 0, 1))
        self.colorbar.set_data(np.linspace(-1 if signed else 0, 1, 256)[:, None])
        self.cax.set_ylim(-1 if signed else 0, 1)
        self.cax.set_yticks([-1, 0, 1] if signed else [0, 0.5, 1])
        self.panel_title.set_text(f"{self.label} {channel} Å + {method_label(method)}")
        norm, _ = self._scales(channel, method)
        self.aia_scale.set_cmap(aia_cmap(channel))
        self.aia_scale.set_norm(LogNorm(norm.vmin, norm.vmax))
        self.aia_cax.yaxis.set_minor_locator(NullLocator())

    def _restyle(self) -> None:
        """A new channel, method or opacity: new colour maps and scales, the same artists (and layers)."""
        start = _time.perf_counter()
        self._style_artists(self.channel.value, self.method.value)
        self.show(self.slider.value)
        if self._layers is not None:
            self._layers.restyle(self.slider.value, start)

    def show(self, step: int) -> None:
        """Set the figure's artists to time step ``step`` of the stretch (render it with :meth:`still`)."""
        start = _time.perf_counter()
        self.image.set_data(self.frame_rgba(step))
        for outline, masks in ((self.mask_outline, self._mask), (self.region_outline, self._region)):
            if masks is not None:
                key = (id(outline), step)
                if key not in self._segments:
                    self._segments[key] = _outline_segments(masks[step])
                outline.set_segments(self._segments[key])
        self.marker.set_xdata([self.times[step], self.times[step]])
        self.clock.set_text(np.datetime_as_string(self.times[step], unit="m").replace("T", " ") + " UTC")
        self.redraw_seconds.append(_time.perf_counter() - start)

    def describe(self) -> str:
        """One line on the stretch: its span to the minute, its steps and where the biggest flare is."""
        first, last, peak = (np.datetime_as_string(self.times[k], unit="m").replace("T", " ")
                             for k in (0, -1, self.start_step))
        return (f"{self.label} {self.name}: {len(self.times)} steps from {first} to {last} UTC; "
                f"the browser opens at the biggest flare, {peak} UTC (step {self.start_step})")

    def figure_widget(self) -> W.Widget:
        """The figure as pre-rendered layers whose step follows the slider in the page (built once)."""
        if self._layers is None:
            self._layers = _Layers(self)
        return self._layers.box

    def widget(self) -> W.Widget:
        controls = W.HBox([self.play, self.slider])
        options = W.HBox([self.channel, self.method, self.alpha, self.channel_note])
        return W.VBox([controls, options, self.figure_widget(), self.errors])

    def median_restyle_ms(self) -> float:
        """Median kernel milliseconds of a channel, method or opacity change, until the shown step is sent."""
        return 1e3 * float(np.median(self.restyle_seconds)) if self.restyle_seconds else float("nan")


def _img_html(png: bytes, size: tuple[int, int]) -> str:
    """An ``<img>`` of ``png`` as a data URL, ``size`` (width, height) CSS pixels, decoded before it is painted."""
    return (f'<img decoding="sync" style="display:block;width:{size[0]}px;height:{size[1]}px" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}"/>')


def layer_png(layer: W.HTML) -> bytes:
    """The PNG that a layer's ``<img>`` shows (see :func:`_img_html`)."""
    return base64.b64decode(layer.value.split("base64,", 1)[1].split('"', 1)[0])


_browser_ids = itertools.count()


class _Layers:
    """A :class:`SaliencyBrowser`'s figure as stacked images in one CSS grid cell, every step already in the page.

    * ``background``: the figure without the artists that move; one per channel and method (the title and
      the colour bar), all rendered when the layers are built;
    * ``panels``: per step, the composed frame at its own resolution (y, x), which the page scales onto
      the image panel's pixels, nearest pixel (CSS ``image-rendering: pixelated``);
    * ``overlays``: per step, a transparent figure-sized image with the mask outlines, the panel's
      frame, the GOES marker and the time;
    * ``selector``: a ``Stack`` of empty boxes whose ``selected_index`` follows the slider in the page
      (``jsdlink``); a style rule per step (CSS ``:has``) shows that step's panel and overlay while its
      box is the one shown.

    Every step's images are loaded once; a step only switches which are visible. It sends nothing to
    the kernel and waits for nothing from it.
    """

    def __init__(self, browser: SaliencyBrowser):
        self.browser = b = browser
        fig, canvas = b.fig, b.fig.canvas
        self.moving = [b.mask_outline, b.region_outline, *b.ax_img.spines.values(), b.marker, b.clock]
        self.styled = [b.panel_title, b.cax]
        hidden = [b.image, *self.moving, *self.styled]
        for artist in hidden:  # a draw leaves animated artists out (and still places the titles)
            artist.set_animated(True)
        canvas.draw()
        self._base = canvas.copy_from_bbox(fig.bbox)
        for artist in hidden:
            artist.set_animated(False)
        renderer = canvas.get_renderer()
        height, width = int(renderer.height), int(renderer.width)
        box = b.ax_img.bbox  # the panel's pixels: those whose centres lie inside the axes, as Agg samples them
        c0, c1 = int(np.ceil(box.x0 - 0.5)), int(np.floor(box.x1 - 0.5)) + 1
        r0, r1 = int(np.ceil(height - box.y1 - 0.5)), int(np.floor(height - box.y0 - 0.5)) + 1
        self.panel_rect = (r0, r1, c0, c1)
        self.size, self.panel_size = (width, height), (c1 - c0, r1 - r0)
        name = f"flarelib-b{next(_browser_ids)}"
        n = len(b.times)

        def cell(**layout) -> W.Layout:  # every layer in the one grid cell, with no widget margin
            return W.Layout(grid_area="figure", margin=layout.pop("margin", "0"), **layout)

        def stacked(children: list, *classes: str, **layout) -> W.GridBox:
            for step, child in enumerate(children):
                child.add_class(f"{name}-f{step}")
            grid = W.GridBox(children, layout=cell(grid_template_areas='"figure"', overflow="hidden", **layout))
            for css_class in (f"{name}-frames", *classes):
                grid.add_class(css_class)
            return grid

        start = _time.perf_counter()
        b.stretch_rgba()  # composed once here: show() below and every step's panel take their frames from it
        overlays = []
        for step in range(n):
            b.show(step)
            renderer.clear()  # transparent
            for artist in self.moving:
                fig.draw_artist(artist)
            overlays.append(W.HTML(_img_html(_png(np.asarray(renderer.buffer_rgba())), self.size), layout=cell()))
        self.overlays = stacked(overlays)
        self.panels = stacked([W.HTML(layout=cell()) for _ in range(n)], "flarelib-pixelated",
                              margin=f"{r0}px 0 0 {c0}px", width=f"{c1 - c0}px", height=f"{r1 - r0}px")
        self.background = W.HTML(layout=cell())
        selectors = [W.Box(layout=W.Layout(width="0", height="0")) for _ in range(n)]
        for step, selector in enumerate(selectors):
            selector.add_class(f"{name}-s{step}")
        self.selector = W.Stack(selectors, selected_index=b.slider.value, layout=cell(width="0", height="0"))
        self.selector.add_class("flarelib-selector")
        self.link = W.jsdlink((b.slider, "value"), (self.selector, "selected_index"))
        # every channel and method's background (title, colour bar) and colour scales, so that a change sends
        # only the shown step's frame before the page can paint it
        self.backgrounds = {}
        for channel in b._channels:
            for method in b._methods:
                b._scales(channel, method)
                b._style_artists(channel, method)
                canvas.restore_region(self._base)
                for artist in self.styled:
                    fig.draw_artist(artist)
                self.backgrounds[channel, method] = _img_html(_png(np.asarray(renderer.buffer_rgba())), self.size)
        b._style_artists(b.channel.value, b.method.value)
        self.prerender_ms_per_step = 1e3 * (_time.perf_counter() - start) / max(n, 1)
        self._pending = None
        b.show(b.slider.value)
        self.restyle(b.slider.value)
        if self._pending is not None:  # at build time every frame goes at once: nothing is shown yet
            self._pending.cancel()
            self._send_others(b.slider.value)
        rules = [f".{name} .{name}-frames > * {{visibility: hidden;}}",
                 ".flarelib-pixelated img {image-rendering: pixelated;}",
                 *(f".{name}:has(.{name}-s{k}) .{name}-f{k} {{visibility: visible;}}" for k in range(n))]
        style = W.HTML("<style>" + "\n".join(rules) + "</style>", layout=cell(display="none"))
        self.box = W.GridBox([self.background, self.panels, self.overlays, self.selector, style],
                             layout=W.Layout(grid_template_areas='"figure"', width=f"{width}px", height=f"{height}px",
                                             justify_items="flex-start", align_items="flex-start", overflow="hidden"))
        self.box.add_class("flarelib-figure")
        self.box.add_class(name)

    SEND_OTHERS_AFTER_S = 0.05  #: the page paints the shown step's new frame before the others arrive

    def _panel(self, frame: np.ndarray) -> str:
        return _img_html(_png(np.ascontiguousarray(frame[::-1])), self.panel_size)  # a PNG's rows go down

    def restyle(self, shown: int, start: float | None = None) -> None:
        """The shown step's frame and the background (title, colour bar), then every other step's frame.

        The time from ``start`` (``perf_counter``) until what is shown has been sent goes to the
        browser's ``restyle_seconds``. In a kernel the other steps' frames follow after
        ``SEND_OTHERS_AFTER_S`` (a newer change replaces them); without an event loop, at once.
        """
        b = self.browser
        self.panels.children[shown].value = self._panel(b.frame_rgba(shown))
        self.background.value = self.backgrounds[b.channel.value, b.method.value]
        if start is not None:
            b.restyle_seconds.append(_time.perf_counter() - start)
        if self._pending is not None:
            self._pending.cancel()
        self._pending = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._send_others(shown)
            return
        self._pending = loop.call_later(self.SEND_OTHERS_AFTER_S, _guarded(b.errors, self._send_others), shown)

    def _send_others(self, shown: int) -> None:
        """Every step's frame but ``shown``'s, in the current style."""
        self._pending = None
        frames = self.browser.stretch_rgba()
        for step, image in enumerate(self.panels.children):
            if step != shown:
                image.value = self._panel(frames[step])


class FilterBrowser(_Browser):
    """Browse the activations of one conv layer over time, filter by filter.

    ``activations`` is a dict ``{layer name: DataArray(time, filter, fy, fx)}`` from
    :func:`flarelib.explain.layer_activations`; ``cube`` supplies the AIA frame shown beside.
    """

    def __init__(self, cube: xr.Dataset, activations: dict[str, xr.DataArray], *, channel: int = 94):
        self.cube = cube
        self.activations = activations
        first = next(iter(activations.values()))
        self.time_index = first["time_index"].values
        super().__init__(first.sizes["time"], interval_ms=200)
        self.layer = W.Dropdown(options=list(activations), description="layer")
        self.filter = W.IntSlider(value=0, min=0, max=first.sizes["filter"] - 1, description="filter")
        self.channel = channel
        self.fig = self._make_figure((8, 3.8))
        self.ax_img, self.ax_act = self.fig.subplots(1, 2)
        frame = cube["aia"].isel(time=int(self.time_index[0])).sel(channel=channel).values
        self.image = self.ax_img.imshow(frame, origin="lower", cmap=aia_cmap(channel), norm=_frame_norm(frame))
        self.act = self.ax_act.imshow(first.isel(time=0, filter=0).values, origin="lower", cmap="magma")
        for ax in (self.ax_img, self.ax_act):
            ax.set_xticks([])
            ax.set_yticks([])
        self.suptitle = self.fig.suptitle("")
        self.fig.tight_layout(rect=(0, 0, 1, 0.9))  # the figure title sits above the panel titles, not on them
        self.slider.observe(_guarded(self.errors, lambda c: self.show(c["new"])), names="value")
        self.filter.observe(_guarded(self.errors, lambda c: self.show(self.slider.value)), names="value")
        self.layer.observe(_guarded(self.errors, lambda c: self._new_layer()), names="value")
        self.show(0)

    def _new_layer(self) -> None:
        acts = self.activations[self.layer.value]
        self.filter.max = acts.sizes["filter"] - 1
        self.show(self.slider.value)

    def show(self, step: int) -> None:
        start = _time.perf_counter()
        acts = self.activations[self.layer.value].isel(time=step, filter=self.filter.value).values
        frame = self.cube["aia"].isel(time=int(self.time_index[step])).sel(channel=self.channel).values
        self.image.set_data(frame)
        self.image.set_norm(_frame_norm(frame))
        self.act.set_data(acts)
        self.act.set_clim(0, max(float(acts.max()), 1e-6))
        self.ax_act.set_title(f"{self.layer.value} filter {self.filter.value}", fontsize=10)
        t = np.datetime_as_string(self.cube["time"].values[int(self.time_index[step])], unit="m")
        self.suptitle.set_text(f"{data_kind(self.cube)} {self.cube.attrs.get('name', '')}: {t} UTC, "
                               f"{self.channel} Å and activations")
        self._finish(self.fig)
        self.redraw_seconds.append(_time.perf_counter() - start)

    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.play, self.slider]), W.HBox([self.layer, self.filter]), self.figure_widget(),
                       self.errors])


def save_animation(cube: xr.Dataset, saliency: xr.Dataset, path: str | Path, *, method: str | None = None,
                   channel: int | None = None, max_frames: int = 40, fps: int = 6, dpi: int = 60) -> Path:
    """Write a GIF of the browser's frames, with the overlay and the moving GOES marker (static fallback).

    Renders the figure of a :class:`SaliencyBrowser`, so the animation shows exactly what the browser
    shows; ``dpi`` and ``max_frames`` keep it small enough to inline in the HTML.
    """
    browser = SaliencyBrowser(cube, saliency, channel=channel, method=method)
    return _write_animation(browser, path, max_frames=max_frames, fps=fps, dpi=dpi)


def _write_animation(browser: SaliencyBrowser, path: str | Path, *, max_frames: int, fps: int = 6,
                     dpi: int = 60) -> Path:
    """:func:`save_animation` with a browser that is already built (it is left at its last frame)."""
    from PIL import Image

    steps = np.unique(np.linspace(0, len(browser.times) - 1, min(max_frames, len(browser.times))).astype(int))
    frames = []
    for step in steps:
        browser.show(int(step))
        with io.BytesIO() as png:
            browser.fig.savefig(png, format="png", dpi=dpi)
            frames.append(Image.open(io.BytesIO(png.getvalue())).convert("RGB").quantize(colors=128))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0,
                   optimize=False)
    return path


class StaticFallback:
    """What a reader of the HTML (or GitHub) sees without a kernel: a still of the browser and the animation.

    Both are inlined as base64 images: no kernel, no CDN, no file beside the HTML.
    """

    def __init__(self, still_png: bytes, gif: Path, caption: str):
        self.still_png = still_png
        self.gif = Path(gif)
        self.caption = caption

    def html(self) -> str:
        still = base64.b64encode(self.still_png).decode()
        gif = base64.b64encode(self.gif.read_bytes()).decode()
        return (f'<figure style="margin:0"><img alt="still of the saliency browser" style="max-width:100%" '
                f'src="data:image/png;base64,{still}"/>'
                f'<img alt="animation of the saliency browser over the stretch" style="max-width:100%" '
                f'src="data:image/gif;base64,{gif}"/><figcaption>{self.caption}</figcaption></figure>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html(), "image/png": base64.b64encode(self.still_png).decode(),
                "text/plain": f"{self.caption} (still and animation: {self.gif.name})"}


def static_fallback(cube: xr.Dataset, saliency: xr.Dataset, gif_path: str | Path, *, method: str | None = None,
                    channel: int | None = None, max_frames: int = 40) -> StaticFallback:
    """The browser's still (at the biggest flare) and its animation (a GIF at ``gif_path``), for the HTML."""
    browser = SaliencyBrowser(cube, saliency, channel=channel, method=method)
    still = browser.still()
    gif = _write_animation(browser, gif_path, max_frames=max_frames)
    caption = (f"Without a kernel: the browser at the biggest flare, then {min(max_frames, len(browser.times))} "
               f"frames of the stretch ({browser.label} {browser.name}, {browser.channel.value} Å, "
               f"{method_label(browser.method.value)}).")
    return StaticFallback(still, gif, caption)


def kernel_timings(browser: SaliencyBrowser, steps: int = 20) -> dict[str, float]:
    """Median kernel milliseconds of a slider step and of a channel change, and of pre-rendering one step.

    A step in the page needs no kernel (the layers follow the slider there); the kernel only sets
    its artists, so that :meth:`SaliencyBrowser.still` shows the same step. A channel change is
    timed until the shown step's frame and the background are sent (the other steps' frames
    follow). Builds the layers if the widget was not shown yet; leaves the browser at the step and
    channel it showed.
    """
    browser.figure_widget()
    start_step, start_channel = browser.slider.value, browser.channel.value
    n = browser.slider.max + 1
    browser.redraw_seconds.clear()
    for _ in range(min(steps, n - 1)):
        browser.slider.value = (browser.slider.value + 1) % n
    step_ms = browser.median_redraw_ms()
    browser.restyle_seconds.clear()
    channels = list(browser.channel.options)
    for channel in channels[channels.index(start_channel) + 1:] + channels[:channels.index(start_channel) + 1]:
        browser.channel.value = channel
    browser.slider.value = start_step
    return {"step_ms": step_ms, "change_ms": browser.median_restyle_ms(),
            "prerender_ms_per_step": browser._layers.prerender_ms_per_step}
