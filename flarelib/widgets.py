"""Widgets stage: browse saliency and filter activations over time in Jupyter (ipywidgets + ipympl).

:class:`SaliencyBrowser` shows, for one time step of a cube, the AIA frame of a channel in its
sunpy colormap with a saliency overlay, and the GOES light curve with a moving "now" marker
and the flare-class bands. A ``Play`` button is linked to the time slider; channel, method
and overlay alpha are selectable. Every update reuses the existing artists (``set_data``,
``set_xdata``); no figure is built per step. Errors in callbacks are shown in the widget's
output area instead of vanishing. Without ipympl (``%matplotlib widget``) the figure is
redrawn into an output area as a static image (the inline fallback).

:class:`FilterBrowser` does the same for the activations of a conv layer, filter by filter.
:func:`save_animation` writes the static fallback: a GIF of frames with the overlay and
the GOES marker, for readers without a kernel.
"""

from __future__ import annotations

import functools
import io
import time as _time
from collections.abc import Callable
from pathlib import Path

import ipywidgets as W
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import display
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import NullLocator

from flarelib.labels import data_kind
from flarelib.plotting import add_class_bands, aia_cmap, frame_range


def ipympl_active() -> bool:
    """True when matplotlib draws through ipympl (interactive canvases in the notebook)."""
    return "ipympl" in matplotlib.get_backend() or matplotlib.get_backend() == "widget"


def use_interactive_backend() -> str:
    """Switch a notebook to ``%matplotlib widget`` (ipympl) when it is installed; else stay inline.

    Returns the backend in use. Call it in the cell before a browser is built.
    """
    try:
        import ipympl  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return matplotlib.get_backend()
    if _in_kernel():
        get_ipython().run_line_magic("matplotlib", "widget")
    return matplotlib.get_backend()


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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


class _Browser:
    """Shared plumbing: figure, output areas, slider + Play, redraw timing."""

    def __init__(self, n_steps: int, interval_ms: int = 200):
        self.errors = W.Output()
        self.static = W.Output()
        self.slider = W.IntSlider(value=0, min=0, max=max(n_steps - 1, 0), description="step",
                                  continuous_update=True, layout=W.Layout(width="60%"))
        self.play = W.Play(value=0, min=0, max=max(n_steps - 1, 0), interval=interval_ms, description="play")
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.redraw_seconds: list[float] = []
        self._blit = False
        self._background = None
        self._animated: list = []

    def _setup_blit(self, animated: list, enabled: bool = True) -> None:
        """Blit the artists that change per step where the canvas can (ipympl); the rest is drawn once.

        The standard matplotlib blitting pattern: a full draw (``draw_event``) stores the
        background without the animated artists; a slider step restores it, draws only those
        artists and sends the frame.
        """
        self._animated = animated
        # ipympl's canvas (matplotlib's WebAgg core) says supports_blit = False because diff frames on a
        # restored region can go stale; we send whole frames (_force_full), which makes blitting safe there.
        self._blit = enabled and ipympl_active() and hasattr(self.fig.canvas, "copy_from_bbox")
        if self._blit:
            for artist in animated:
                artist.set_animated(True)
            self.fig.canvas.mpl_connect("draw_event", self._on_draw)

    def _on_draw(self, event) -> None:
        self._background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        for artist in self._animated:
            self.fig.draw_artist(artist)

    def render_now(self) -> None:
        """Render the current state synchronously, as the user would wait for it (for timing)."""
        if self._blit and self._background is not None:
            return  # show() already blitted and sent the frame
        if type(self.fig.canvas) is FigureCanvasBase:  # inline fallback: what display() renders
            self.fig.savefig(io.BytesIO(), format="png")
        else:
            self.fig.canvas.draw()

    @staticmethod
    def _detach(fig) -> None:
        """Inline fallback: keep pyplot from showing the figure again at the end of the cell."""
        if not ipympl_active():
            plt.close(fig)

    def _finish(self, fig, *, full: bool = False) -> None:
        if self._blit and self._background is not None and not full and fig.canvas.manager is not None:
            fig.canvas.restore_region(self._background)
            for artist in self._animated:
                fig.draw_artist(artist)
            fig.canvas._force_full = True
            fig.canvas.blit(fig.bbox)
            return
        if ipympl_active():
            # send whole frames: diff frames on a stale base left half-old images when steps came fast (Play)
            fig.canvas._force_full = True
        fig.canvas.draw_idle()
        if not ipympl_active() and _in_kernel():
            with self.static:
                self.static.clear_output(wait=True)
                display(fig)

    def median_redraw_ms(self) -> float:
        return 1e3 * float(np.median(self.redraw_seconds)) if self.redraw_seconds else float("nan")


class SaliencyBrowser(_Browser):
    """Browse ``saliency(time, method, channel, y, x)`` over a cube's AIA frames and GOES curve.

    ``cube`` is the flarelib cube, ``saliency`` a store written by
    :func:`flarelib.explain.write_saliency_store` (its ``time`` is a subset of the cube's).
    ``blit=False`` redraws the whole figure on every step (what an animation writer needs).
    """

    def __init__(self, cube: xr.Dataset, saliency: xr.Dataset, *, channel: int | None = None,
                 method: str | None = None, alpha: float = 0.5, blit: bool = True):
        self.cube = cube
        self.saliency = saliency
        self.times = saliency["time"].values
        self.time_index = saliency["time_index"].values
        super().__init__(len(self.times))
        channels = [int(c) for c in saliency["channel"].values]
        methods = [str(m) for m in saliency["method"].values]
        self.channel = W.Dropdown(options=channels, value=channel or channels[0], description="channel (Å)")
        self.method = W.Dropdown(options=methods, value=method or methods[0], description="method")
        self.alpha = W.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="overlay α")

        label = data_kind(cube)
        self.fig, (self.ax_img, self.ax_goes) = plt.subplots(1, 2, figsize=(10, 4.2),
                                                             gridspec_kw={"width_ratios": [1, 1.4]})
        frame, sal = self._arrays(0)
        self.image = self.ax_img.imshow(frame, origin="lower", cmap=aia_cmap(self.channel.value),
                                        norm=_frame_norm(frame))
        self.overlay = self.ax_img.imshow(sal, origin="lower", cmap="RdBu_r", alpha=self.alpha.value,
                                          norm=self._sal_norm())
        self.ax_img.set_xticks([])
        self.ax_img.set_yticks([])
        self.fig.colorbar(self.overlay, ax=self.ax_img, fraction=0.046, label="attribution")
        flux = cube["xrsb"].values
        self.ax_goes.semilogy(cube["time"].values, np.where(flux > 0, flux, np.nan), color="tab:red", lw=0.8)
        lo, hi = self.times[0], self.times[-1]
        pad = (hi - lo) * 0.05 if hi > lo else np.timedelta64(1, "h")
        self.ax_goes.set_xlim(lo - pad, hi + pad)
        add_class_bands(self.ax_goes)
        self.marker = self.ax_goes.axvline(self.times[0], color="k", lw=1.2)
        self.ax_goes.set_ylabel("XRS-B (W/m²)")
        self.ax_goes.yaxis.set_minor_locator(NullLocator())  # dozens of log minor ticks cost more than the images
        self.ax_goes.set_title(f"{label} GOES XRS-B", fontsize=10)
        self.fig.autofmt_xdate()
        self.suptitle = self.fig.suptitle("")
        self.ax_img.set_title(f"{self.channel.value} Å + {self.method.value}", fontsize=10)
        self.fig.tight_layout()
        self._detach(self.fig)
        self._setup_blit([self.image, self.overlay, self.marker, self.suptitle], enabled=blit)

        self.slider.observe(_guarded(self.errors, lambda change: self.show(change["new"])), names="value")
        self.channel.observe(_guarded(self.errors, lambda change: self._restyle()), names="value")
        self.method.observe(_guarded(self.errors, lambda change: self._restyle()), names="value")
        self.alpha.observe(_guarded(self.errors, lambda change: self.show(self.slider.value)), names="value")
        self.show(0)

    def _arrays(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        t = int(self.time_index[step])
        frame = self.cube["aia"].isel(time=t).sel(channel=self.channel.value).values
        sal = self.saliency["saliency"].isel(time=step).sel({"method": self.method.value,
                                                             "channel": self.channel.value}).values
        return frame, sal

    def _sal_norm(self) -> Normalize:
        values = self.saliency["saliency"].sel({"method": self.method.value, "channel": self.channel.value})
        limit = float(np.nanpercentile(np.abs(values.values), 99.5)) or 1.0
        return Normalize(-limit, limit)

    def _restyle(self) -> None:
        """A new channel or method: new colormap and colour scales, same artists."""
        self.image.set_cmap(aia_cmap(self.channel.value))
        self.overlay.set_norm(self._sal_norm())
        self.ax_img.set_title(f"{self.channel.value} Å + {self.method.value}", fontsize=10)
        self.show(self.slider.value, full=True)

    def show(self, step: int, *, full: bool = False) -> None:
        """Draw time step ``step`` of the saliency store (what the slider does); ``full`` redraws everything."""
        start = _time.perf_counter()
        frame, sal = self._arrays(step)
        self.image.set_data(frame)
        self.image.set_norm(_frame_norm(frame))
        self.overlay.set_data(sal)
        self.overlay.set_alpha(self.alpha.value)
        self.marker.set_xdata([self.times[step], self.times[step]])
        t = np.datetime_as_string(self.times[step], unit="m")
        self.suptitle.set_text(f"{data_kind(self.cube)} {self.cube.attrs.get('name', '')}: {t} UTC")
        self._finish(self.fig, full=full)
        self.redraw_seconds.append(_time.perf_counter() - start)

    def widget(self) -> W.Widget:
        controls = W.HBox([self.play, self.slider])
        options = W.HBox([self.channel, self.method, self.alpha])
        figure = self.fig.canvas if ipympl_active() else self.static
        return W.VBox([controls, options, figure, self.errors])

    def _ipython_display_(self):
        display(self.widget())


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
        super().__init__(first.sizes["time"])
        self.layer = W.Dropdown(options=list(activations), description="layer")
        self.filter = W.IntSlider(value=0, min=0, max=first.sizes["filter"] - 1, description="filter")
        self.channel = channel
        self.fig, (self.ax_img, self.ax_act) = plt.subplots(1, 2, figsize=(8, 3.8))
        frame = cube["aia"].isel(time=int(self.time_index[0])).sel(channel=channel).values
        self.image = self.ax_img.imshow(frame, origin="lower", cmap=aia_cmap(channel), norm=_frame_norm(frame))
        self.act = self.ax_act.imshow(first.isel(time=0, filter=0).values, origin="lower", cmap="magma")
        for ax in (self.ax_img, self.ax_act):
            ax.set_xticks([])
            ax.set_yticks([])
        self.suptitle = self.fig.suptitle("")
        self.fig.tight_layout()
        self._detach(self.fig)
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
        figure = self.fig.canvas if ipympl_active() else self.static
        return W.VBox([W.HBox([self.play, self.slider]), W.HBox([self.layer, self.filter]), figure, self.errors])

    def _ipython_display_(self):
        display(self.widget())


def save_animation(cube: xr.Dataset, saliency: xr.Dataset, path: str | Path, *, method: str | None = None,
                   channel: int | None = None, max_frames: int = 120, fps: int = 6) -> Path:
    """Write a GIF of frames with the saliency overlay and the moving GOES marker (static fallback).

    Uses a :class:`SaliencyBrowser` off screen, so the animation shows exactly what the browser shows.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    # the animation writer renders whole frames, so no blitting
    browser = SaliencyBrowser(cube, saliency, channel=channel, method=method, blit=False)
    steps = np.unique(np.linspace(0, len(browser.times) - 1, min(max_frames, len(browser.times))).astype(int))

    def update(k):
        browser.show(int(steps[k]))
        return browser.image, browser.overlay, browser.marker

    animation = FuncAnimation(browser.fig, update, frames=len(steps), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(browser.fig)
    return path


def time_redraws(browser: _Browser, steps: int = 20) -> float:
    """Median milliseconds of one slider step: update the artists and render the figure (synchronously).

    The browser is left at the step it showed before.
    """
    durations = []
    start_step = browser.slider.value
    n = browser.slider.max + 1
    for _ in range(min(steps, n - 1)):
        start = _time.perf_counter()
        browser.slider.value = (browser.slider.value + 1) % n
        browser.render_now()
        durations.append(_time.perf_counter() - start)
    browser.slider.value = start_step
    return 1e3 * float(np.median(durations))
