"""A long synthetic sun with ground truth - SYNTHETIC DATA, not observations.

Real AIA data with matching GOES light curves cannot ship with the project at the length
a flare forecaster needs (flares are rare; FlareNet's lesson is "long data"), and real
data have no ground truth for *where* a flare happens. This generator fills both gaps.
Every store it writes says ``synthetic: true`` and carries the generator parameters.

The generative model (all random draws from ``numpy.random.default_rng(seed)``):

* **Quiet Sun.** The real AIA frames of 2014-01-01 00:00 UT (six channels, curated
  copies under ``data/real``) calibrated to DN/s, block-averaged to ``size`` and clipped
  at the 90th percentile of the disk, so the limb and quiet-Sun texture are real but the
  2014 active regions are flattened away. The texture is static; a slow +-3 % modulation
  per channel drifts over days.
* **Active regions (ARs)** are born as a Poisson process over the whole sphere
  (``ar_birth_rate`` per day) at latitudes of 5-35 degrees in either hemisphere, live
  ``ar_lifetime_days`` (uniform), grow and decay as ``sin(pi * age / lifetime) ** 0.5``,
  and rotate with the synodic differential rotation ``13.2 - 2.8 sin^2(lat)`` deg/day.
  They are Gaussian brightenings (channel-dependent contrast) visible on the near side.
  Each AR has a "complexity" that follows a mean-reverting random walk.
* **Flares.** Each visible AR flares as a Poisson process with rate
  ``flare_rate * envelope * complexity**2`` per day. Peak fluxes follow a power law
  ``dN/dF ~ F**-powerlaw_index`` above ``flux_min`` (B1 by default), capped at X20,
  so B and C flares are common, M flares few and X flares rare. The GOES light curve of a
  flare rises as a half-Gaussian (``tau_rise`` 2-6 min) and decays exponentially
  (``tau_decay`` 8-40 min, longer for bigger flares).
* **Precursors.** For ``precursor_hours`` before each flare of class C or above, its AR
  brightens in the hot channels (94, 131 Å; weaker in 335 Å) by an amount that grows
  with log peak flux. The amplitude is set so that one AR's precursor is about
  ``precursor_snr`` times the pixel noise at its peak: visible but noisy.
* **GOES XRS-B** = quiet background ``background_flux`` + a contribution of each visible
  AR (``ar_flux`` x envelope x complexity) + the flare light curves, with 2 % multiplicative noise,
  sampled every minute (targets use the 1-minute series; ``xrsb`` is the slot mean).
* **AIA flare emission.** A compact kernel at the AR centre whose brightness follows the
  GOES light curve to the power 0.7, strongest in 131 and 94 Å.
* **Noise.** Gaussian, with variance proportional to the intensity (photon-like) and a
  quiet-Sun signal-to-noise of about ``quiet_snr`` per pixel.
* **Ground truth.** ``flare_mask(time, y, x)`` is 1 within 2 kernel widths of every flare
  of class C1 or above, from its start until its flux decays below 10 % of its peak, while
  its AR is on the visible disk.

Signal-to-noise, honestly: flares are obvious once they happen, so nowcasting is easy.
Forecasting is hard by design: the precursor is faint, most flaring ARs are already bright
(so persistence of the current flux is a strong competitor), and flare times are Poisson.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from flarelib import align, store
from flarelib.checksums import fingerprint, sha256_of
from flarelib.prep import DEFAULT_CHANNELS, prep_frame, read_frame_info

#: Channel contrast of an AR over the quiet Sun (relative brightening at the AR core).
AR_CONTRAST = {94: 6.0, 131: 3.0, 171: 1.5, 193: 3.0, 211: 3.5, 335: 5.0}
#: Flare kernel gain per channel, in units of the channel's quiet-Sun median, for a C1 flare.
FLARE_GAIN = {94: 8.0, 131: 20.0, 171: 1.0, 193: 4.0, 211: 4.0, 335: 5.0}
#: Relative precursor weight per channel (hot channels carry it).
PRECURSOR_WEIGHT = {94: 1.0, 131: 0.8, 171: 0.0, 193: 0.0, 211: 0.0, 335: 0.4}
START = np.datetime64("2031-01-01T00:00", "ns")  # a date no instrument has observed: unmistakably synthetic


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic sun (see the module docstring for the model)."""

    days: float = 60.0
    cadence_minutes: int = 12
    size: int = 64
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    seed: int = 2017
    ar_birth_rate: float = 0.9  #: per day, whole sphere
    ar_lifetime_days: tuple[float, float] = (5.0, 25.0)
    flare_rate: float = 5.0  #: flares above flux_min per day for an AR at full envelope and complexity 1
    flux_min: float = 1e-7  #: W/m², B1
    powerlaw_index: float = 2.0
    background_flux: float = 2e-8  #: W/m²
    ar_flux: float = 2.5e-7  #: W/m² per AR at full envelope and complexity 1
    precursor_hours: float = 3.0
    precursor_snr: float = 1.5
    quiet_snr: float = 25.0
    forecasts: tuple[tuple[str, str], ...] = (("0min", "1h"), ("1h", "6h"), ("1h", "24h"))

    @property
    def n_steps(self) -> int:
        return int(round(self.days * 24 * 60 / self.cadence_minutes))


SIZES: dict[str, SyntheticConfig] = {
    "small": SyntheticConfig(days=4.0, size=32),
    "default": SyntheticConfig(days=60.0, size=64),
}


def _quiet_sun_base(channel_frames: dict[int, np.ndarray], size: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Quiet-Sun base (C, size, size) in DN/s and the disk mask, for a disk of ``radius`` px."""
    frames = []
    for channel in sorted(channel_frames):
        frame = np.asarray(channel_frames[channel], dtype=np.float64)
        factor = frame.shape[0] // size
        small = frame[: size * factor, : size * factor].reshape(size, factor, size, factor).mean(axis=(1, 3))
        frames.append(small)
    base = np.stack(frames)
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    rr = np.hypot(yy - centre, xx - centre)
    disk = rr <= radius
    for c in range(base.shape[0]):
        cap = np.percentile(base[c][disk], 90)
        base[c] = np.minimum(np.maximum(base[c], 0.0), cap)
    return base.astype(np.float32), disk


def load_quiet_sun(files: Sequence[str | Path], channels: Sequence[int], size: int):
    """Calibrate the real full-disk frames (DN/s) and make the quiet-Sun base for ``size``.

    Returns ``(base (C, size, size) float32 DN/s, disk mask (size, size) bool, radius px)``.
    """
    by_channel, radius = {}, None
    for f in files:
        info = read_frame_info(f)
        if info.channel in channels:
            smap, _ = prep_frame(info)
            by_channel[info.channel] = smap.data
            radius = float((smap.rsun_obs / smap.scale.axis1).value) * size / smap.data.shape[1]
    missing = sorted(set(channels) - set(by_channel))
    if missing:
        raise ValueError(f"no full-disk frame for channels {missing} among {len(files)} files")
    base, disk = _quiet_sun_base(by_channel, size, radius)
    return base, disk, radius


@dataclass
class History:
    """The latent state of the synthetic sun on the cube's time grid (no pixels)."""

    times: np.ndarray  #: (T,) datetime64[ns]
    ar_x: np.ndarray  #: (T, A) pixel column of each AR (NaN when not visible)
    ar_y: np.ndarray  #: (T, A)
    ar_amp: np.ndarray  #: (T, A) envelope x foreshortening (0 when not visible)
    ar_sigma: np.ndarray  #: (A,) pixels
    precursor: np.ndarray  #: (T, A) precursor amplitude in units of pixel noise
    flare_flux_steps: np.ndarray  #: (T, A) flare flux of each AR at the step time, W/m²
    mask_on: np.ndarray  #: (T, A) bool: a >= C1 flare of the AR is in progress
    goes_time: np.ndarray  #: (M,) 1-minute times
    goes_flux: np.ndarray  #: (M,) W/m²
    events: list[dict]
    modulation: np.ndarray  #: (T, C) slow quiet-Sun modulation


def _flare_curve(t_min: np.ndarray, t_peak: float, flux: float, tau_rise: float, tau_decay: float) -> np.ndarray:
    dt = t_min - t_peak
    return flux * np.where(dt < 0, np.exp(-0.5 * (dt / tau_rise) ** 2), np.exp(-np.clip(dt, 0, None) / tau_decay))


def simulate_history(config: SyntheticConfig, disk_radius: float) -> History:
    """Draw ARs, their motion, complexity and flares, and the 1-minute GOES light curve."""
    rng = np.random.default_rng(config.seed)
    n_steps, cadence = config.n_steps, config.cadence_minutes
    t_days = np.arange(n_steps) * cadence / 1440.0
    size = config.size
    centre = (size - 1) / 2

    lo, hi = config.ar_lifetime_days
    span = (-hi, config.days)
    n_ar = rng.poisson(config.ar_birth_rate * (span[1] - span[0]))
    birth = rng.uniform(*span, n_ar)
    life = rng.uniform(lo, hi, n_ar)
    lat = np.deg2rad(rng.uniform(5, 35, n_ar) * rng.choice([-1, 1], n_ar))
    lon0 = rng.uniform(-180, 180, n_ar)
    strength = rng.lognormal(0.0, 0.4, n_ar)
    sigma = rng.uniform(0.025, 0.05, n_ar) * disk_radius

    age = (t_days[:, None] - birth[None, :]) / life[None, :]
    alive = (age > 0) & (age < 1)
    envelope = np.where(alive, np.sin(np.pi * np.clip(age, 0, 1)) ** 0.5, 0.0) * strength
    omega = 13.2 - 2.8 * np.sin(lat) ** 2  # deg/day, synodic
    lon = np.deg2rad(((lon0[None, :] + omega[None, :] * (t_days[:, None] - birth[None, :]) + 180) % 360) - 180)
    mu = np.cos(lon) * np.cos(lat)[None, :]
    visible = alive & (np.abs(lon) < np.pi / 2)
    ar_x = np.where(visible, centre + disk_radius * np.sin(lon) * np.cos(lat)[None, :], np.nan)
    ar_y = np.where(visible, centre + disk_radius * np.sin(lat)[None, :], np.nan)
    ar_amp = np.where(visible, envelope * np.clip(mu, 0, 1) ** 0.3, 0.0)

    # complexity: mean-reverting random walk (Ornstein-Uhlenbeck in log space), per AR
    log_c = np.zeros((n_steps, n_ar))
    kicks = rng.normal(0, 0.12, (n_steps, n_ar))
    for k in range(1, n_steps):
        log_c[k] = 0.985 * log_c[k - 1] + kicks[k]
    complexity = np.exp(log_c - 0.5)

    minutes = np.arange(int(config.days * 1440))
    goes = np.full(minutes.shape, config.background_flux)
    step_of_min = np.minimum(minutes // cadence, n_steps - 1)
    # complex ARs are hotter: their X-ray background scales with complexity as their flare rate does
    goes += config.ar_flux * np.where(visible, envelope * complexity, 0.0)[step_of_min].sum(axis=1)

    rate = config.flare_rate * np.where(visible, envelope, 0.0) * complexity ** 2 * cadence / 1440.0
    counts = rng.poisson(rate)
    precursor = np.zeros((n_steps, n_ar))
    flare_flux_steps = np.zeros((n_steps, n_ar))
    mask_on = np.zeros((n_steps, n_ar), dtype=bool)
    events = []
    step_minutes = t_days * 1440.0
    pre_steps = int(round(config.precursor_hours * 60 / cadence))
    for k, a in zip(*np.nonzero(counts)):
        for _ in range(counts[k, a]):
            u = rng.uniform()
            flux = min(config.flux_min * u ** (-1.0 / (config.powerlaw_index - 1.0)), 2e-3)
            scale = (flux / 1e-6) ** 0.15
            tau_rise = rng.uniform(2, 6) * scale
            tau_decay = rng.uniform(8, 25) * scale ** 1.3
            t_start = step_minutes[k] + rng.uniform(0, cadence)
            t_peak = t_start + 2 * tau_rise
            t_end = t_peak + tau_decay * np.log(10)  # flux back to 10 % of peak
            window = (minutes >= t_start - 4 * tau_rise) & (minutes <= t_peak + 10 * tau_decay)
            goes[window] += _flare_curve(minutes[window], t_peak, flux, tau_rise, tau_decay)
            sw = (step_minutes >= t_start - 4 * tau_rise) & (step_minutes <= t_peak + 10 * tau_decay)
            flare_flux_steps[sw, a] += _flare_curve(step_minutes[sw], t_peak, flux, tau_rise, tau_decay)
            if flux >= 1e-6:
                mask_on[(step_minutes >= t_start) & (step_minutes <= t_end), a] = True
                ramp_lo = max(k - pre_steps, 0)
                ramp = np.linspace(0, 1, k - ramp_lo + 1)[1:] if k > ramp_lo else np.zeros(0)
                precursor[ramp_lo + 1:k + 1, a] += config.precursor_snr * np.log10(flux / 1e-6 * 10) * ramp
            events.append({
                "start": START + np.timedelta64(int(t_start * 60e9), "ns"),
                "peak": START + np.timedelta64(int(t_peak * 60e9), "ns"),
                "end": START + np.timedelta64(int(t_end * 60e9), "ns"),
                "peak_flux": flux, "source": "synthetic", "noaa_ar": int(a),
            })
    goes *= 1 + 0.02 * rng.standard_normal(goes.shape)
    mask_on &= ar_amp > 0  # an AR that rotated behind the limb (or died) during a flare shows no mask
    events.sort(key=lambda e: e["peak"])
    modulation = 1 + 0.03 * np.sin(2 * np.pi * t_days[:, None] / rng.uniform(5, 15, len(config.channels))[None, :]
                                   + rng.uniform(0, 2 * np.pi, len(config.channels))[None, :])
    times = START + (np.arange(n_steps) * cadence * 60 * 10**9).astype("timedelta64[ns]")
    goes_time = START + (minutes * 60 * 10**9).astype("timedelta64[ns]")
    return History(times, ar_x, ar_y, ar_amp, sigma, precursor, flare_flux_steps, mask_on, goes_time, goes,
                   events, modulation)


def render_frames(history: History, base: np.ndarray, config: SyntheticConfig, i0: int, i1: int) -> dict:
    """Pixels of steps ``i0:i1``: ``aia`` (n, C, y, x) float32 DN/s and ``flare_mask`` (n, y, x) uint8.

    Deterministic per step (noise from ``default_rng([seed, step])``), so a resumed write
    gives the same pixels as an uninterrupted one.
    """
    size = config.size
    channels = config.channels
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    quiet = np.array([np.median(base[c][base[c] > 0]) for c in range(len(channels))], dtype=np.float32)
    contrast = np.array([AR_CONTRAST[c] for c in channels], dtype=np.float32)
    gain = np.array([FLARE_GAIN[c] for c in channels], dtype=np.float32)
    pre_w = np.array([PRECURSOR_WEIGHT[c] for c in channels], dtype=np.float32)
    aia = np.empty((i1 - i0, len(channels), size, size), dtype=np.float32)
    mask = np.zeros((i1 - i0, size, size), dtype=np.uint8)
    for n, k in enumerate(range(i0, i1)):
        rng = np.random.default_rng([config.seed, k])
        image = base * history.modulation[k][:, None, None]
        for a in np.flatnonzero(history.ar_amp[k] > 0):
            x0, y0, s = history.ar_x[k, a], history.ar_y[k, a], history.ar_sigma[a]
            blob = np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / s**2)
            image += (contrast * quiet * history.ar_amp[k, a])[:, None, None] * blob
            noise_at_core = quiet * np.sqrt(1 + contrast * history.ar_amp[k, a]) / config.quiet_snr
            if history.precursor[k, a] > 0:
                image += (pre_w * noise_at_core * history.precursor[k, a])[:, None, None] * blob
            flare = history.flare_flux_steps[k, a]
            if flare > 1e-8:
                ks = max(s / 3, 0.8)
                kernel = np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / ks**2)
                image += (gain * quiet * (flare / 1e-6) ** 0.7)[:, None, None] * kernel
            if history.mask_on[k, a]:
                ks = max(s / 3, 0.8)
                mask[n] |= (((xx - x0) ** 2 + (yy - y0) ** 2) <= (2 * ks + 0.5) ** 2).astype(np.uint8)
        sigma = np.sqrt(np.maximum(image, 0) * quiet[:, None, None]) / config.quiet_snr
        aia[n] = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return {"aia": aia, "flare_mask": mask}


def build_synthetic_cube(
    path: str | Path,
    config: SyntheticConfig | str,
    disk_files: Sequence[str | Path],
    *,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_block=None,
) -> Path:
    """Generate the synthetic sun and write it as a cube (same schema as the real cubes).

    ``config`` is a :class:`SyntheticConfig` or a size name from :data:`SIZES`
    (``"small"``: 4 days at 32x32 px; ``"default"``: 60 days at 64x64 px, both at 12 min).
    ``disk_files`` are the real full-disk frames the quiet Sun is made from.
    """
    if isinstance(config, str):
        if config not in SIZES:
            raise ValueError(f"unknown synthetic size {config!r}; choose from {sorted(SIZES)}")
        config = SIZES[config]
    name = name or f"synthetic-sun-{config.days:g}d-{config.size}px"
    base, disk, radius = load_quiet_sun(disk_files, config.channels, config.size)
    history = simulate_history(config, radius)
    goes = xr.Dataset({"xrsb": ("time", history.goes_flux, {"units": "W m-2"})}, coords={"time": history.goes_time},
                      attrs={"goes_scaling": "synthetic", "goes_satellite": "synthetic", "source": "synthetic"})
    cadence = f"{config.cadence_minutes}min"
    targets = align.goes_targets(goes, history.times, cadence, config.forecasts)
    for var in ("flux_now", "flux_max", "class_now", "class_max"):
        targets[var].attrs["target_source"] = "synthetic"
    events = align.events_dataset(history.events)
    nt, nc = len(history.times), len(config.channels)
    generator = {"module": "flarelib.synthetic", **dataclasses.asdict(config), "start": str(START),
                 "disk_radius_px": radius, "n_events": len(history.events),
                 "quiet_sun_from": [Path(f).name for f in disk_files]}
    template = xr.Dataset(
        coords={
            "time": ("time", history.times, {"long_name": "nominal cadence slot (SYNTHETIC)", "timezone": "UTC"}),
            "channel": ("channel", np.array(config.channels, dtype=np.int32), {"units": "angstrom"}),
            "y": ("y", np.arange(config.size, dtype=np.int32)),
            "x": ("x", np.arange(config.size, dtype=np.int32)),
            "t_obs": (("time", "channel"), np.repeat(history.times[:, None], nc, axis=1)),
            "exptime": (("time", "channel"), np.ones((nt, nc), dtype=np.float32), {"units": "s"}),
            "quality": (("time", "channel"), np.zeros((nt, nc), dtype=np.int32)),
            "source": (("time", "channel"), np.full((nt, nc), "synthetic")),
        }
    )
    template = xr.merge([template, targets, events], combine_attrs="drop_conflicts")
    template["event_x"] = ("event", _event_positions(history, "x"))
    template["event_y"] = ("event", _event_positions(history, "y"))
    template["disk_mask"] = (("y", "x"), disk.astype(np.uint8), {"long_name": "1 on the solar disk"})
    template.attrs = {
        "title": f"{name}: SYNTHETIC sun (not observations)",
        "name": name,
        "description": "Synthetic AIA-like cube and GOES-like XRS-B flux with ground-truth flare masks",
        "synthetic": True,
        "aia_units": "DN/s (synthetic)",
        "generator": store.json_attr(generator),
        "generator_model": __doc__,
        "inputs": store.json_attr([{"file": Path(f).name, "sha256": sha256_of(f)} for f in disk_files]),
        "prep_steps": store.json_attr([{"step": "synthetic", "see": "generator_model"}]),
        "alignment": store.json_attr({"cadence": cadence, "slot_rule": "generated on the grid"}),
        "skipped_inputs": "[]",
        "n_skipped": 0,
        "goes_satellite": "synthetic",
        "goes_scaling": "synthetic",
        "target_source": "synthetic",
        **store.provenance_attrs(),
        "input_fingerprint": _fingerprint(generator, disk_files),
    }
    streamed = {"aia": (("channel", "y", "x"), (nc, config.size, config.size), "float32"),
                "flare_mask": (("y", "x"), (config.size, config.size), "uint8")}
    return store.write_cube(path, template, streamed, lambda i0, i1: render_frames(history, base, config, i0, i1),
                            store.WriteOptions(block=48, overwrite=overwrite, progress=progress, on_block=on_block))


def _event_positions(history: History, axis: str) -> np.ndarray:
    pos = history.ar_x if axis == "x" else history.ar_y
    out = []
    for ev in history.events:
        k = int(np.clip(np.searchsorted(history.times, ev["peak"]) - 1, 0, len(history.times) - 1))
        out.append(pos[k, ev["noaa_ar"]])
    return np.array(out, dtype=np.float32)


def _fingerprint(generator: dict, disk_files) -> str:
    return fingerprint({"generator": generator, "disk": [sha256_of(f) for f in disk_files]})
