"""A long synthetic sun with ground truth (v3) - SYNTHETIC DATA, not observations.

Real AIA data with matching GOES light curves cannot ship with the project at the length
a flare forecaster needs (flares are rare; FlareNet's lesson is "long data"), and real
data have no ground truth for *where* a flare happens, nor for how well a forecast *could*
do. This generator fills those gaps. Every store it writes says ``synthetic: true``, its
title says SYNTHETIC, its time axis starts in 2031 (a date no instrument has observed), and
it carries the generator parameters (``generator``) and this text (``generator_model``).

The generative model (all random draws from ``numpy.random.default_rng(seed)``; the pixels
of step ``k`` from ``default_rng([seed, k])``). Each relation and why:

* **Time.** Images every ``cadence_minutes`` (default 1 h) for ``days`` (default 365) from
  2031-01-01; the latent sun and the 1-minute GOES series also run ``pad_days`` before the
  first image (so the nowcast and the flare history of the first step are defined) and
  past the last image by the longest forecast horizon (so every forecast target is defined).
* **Quiet Sun.** The real AIA frames of 2014-01-01 00:00 UT (six channels, curated copies
  under ``data/real``) calibrated to DN/s, block-averaged to ``size`` and clipped at the 90th
  percentile of the disk, so the limb and quiet-Sun texture are real but the 2014 active
  regions are flattened away. The texture is static; a slow +-3 % modulation per channel
  drifts over days.
* **Activity level: a segment of a solar cycle.** Active regions (ARs) are born as an
  inhomogeneous Poisson process over the whole sphere at ``ar_birth_rate * a(t)`` per day,
  with ``a(t)`` rising linearly from ``activity[0]`` at the first image to ``activity[1]``
  at the last (the rising phase of a cycle: the default year goes from a nearly spotless to an
  active Sun, 0.05 -> 1, as the real Sun did from 2009 to 2011). Birth latitudes drift towards the equator over the span
  (Spoerer's law / the butterfly diagram): mean ``|lat|`` from ``ar_latitude_deg[0]`` to
  ``ar_latitude_deg[1]``, spread 6 deg, in either hemisphere.
* **AR life and motion.** Each AR lives ``ar_lifetime_days`` (uniform), its magnetic
  envelope grows and decays as ``strength * sin(pi * age / lifetime) ** 0.5`` (fast
  emergence, slow decay; ``strength`` lognormal, the AR's magnetic flux), and it rotates
  with the synodic differential rotation ``13.2 - 2.8 sin^2(lat)`` deg/day. It is visible
  (and counts in GOES: the far side is occulted) while ``|longitude| < 90`` deg.
* **Complexity** (shear, delta-spots; hidden): ``log c`` is an Ornstein-Uhlenbeck process
  per AR with correlation time ``complexity_days`` and stationary spread
  ``complexity_spread`` about ``-0.5``, capped at ``complexity_max`` (the most flare-productive
  regions, with delta-spots, give at most a few M flares a day, not dozens).
* **X-ray background (what drives GOES).** A visible AR contributes
  ``X_bg = ar_flux * envelope * c_eff`` (W/m^2) to XRS-B, where ``c_eff`` is its complexity
  including any precursor (below): stressed, complex regions hold more hot plasma. The
  whole Sun adds ``background_flux``.
* **Hot channels see what drives GOES (94, 131, 335 A).** Both the 1-8 A flux and the
  Fe XVIII 94 A line (Fe XVI 335 A, Fe XXI 131 A) come from the same 3-10 MK plasma: at a
  fixed temperature both are linear in its emission measure. Hotter sources raise the
  1-8 A flux faster than the 94 A line (the GOES response climbs steeply from 5 to 15 MK
  while Fe XVIII peaks near 7 MK), so X-ray-bright regions are relatively fainter in
  94 A: we use ``hot emission ∝ X ** HOT_INDEX`` with ``HOT_INDEX = 0.8``. An AR's hot
  core is a Gaussian of width ``sigma`` whose *integrated* brightness is
  ``HOT_CONTRAST[c] * quiet[c] * 2 pi sigma_ref**2 * (X_bg / X_REF) ** HOT_INDEX``
  (``quiet[c]``: the channel's quiet-Sun median, ``X_REF`` = 1e-7 W/m^2, ``sigma_ref`` =
  0.09 R_sun): so summing a region's hot excess recovers its X-ray background. Optically
  thin: no limb darkening.
* **Cool channels see the magnetic envelope only (171, 193, 211 A, and the warm 1 MK parts
  of 94, 131 and 335 A).** The loops of 1-2 MK plasma fill the region's magnetic
  envelope: a Gaussian of width ``2 sigma`` with peak contrast
  ``WARM_CONTRAST[c] * envelope * mu ** 0.3`` (``mu`` the cosine of the heliocentric
  angle: a mild foreshortening dimming). They do not know the complexity.
* **Resolved regions.** ``sigma = R_sun * clip(0.09 * strength ** 0.25 * U(0.85, 1.15),
  0.078, 0.15)``: at 64x64 px (R_sun ~ 25 px) an AR core has FWHM = 2.355 sigma >= 4.6 px
  (the envelope twice that); flare kernels have ``sigma_k = 0.45 sigma`` (FWHM >= 2 px).
* **Flares.** Each visible AR flares at the rate ``flare_rate * envelope * c ** 2`` per day
  (``c`` without the precursor: the flares are drawn first, the precursors are their
  announcement), plus its self-excitation (v3, below). Peak fluxes follow a power law
  ``dN/dF ~ F ** -powerlaw_index`` from ``flux_min`` (B1) to ``flux_cap``. The GOES light
  curve rises as a half-Gaussian (``tau_rise`` 2-6 min) and decays exponentially
  (``tau_decay`` 8-25 min), both longer for bigger flares (x (F/1e-6)^0.15 and ^0.2).
* **Self-excitation (v3: flares cluster as on the Sun).** Each flare of class C1 or above
  adds ``excitation`` flares per day (above flux_min) to its own AR's rate, decaying with
  e-folding time ``excitation_hours`` (a Hawkes process, drawn step by step). A flare begets
  on average ``excitation * excitation_hours / 24 * frac(C1)`` more flares >= C1 (0.27 at the
  defaults; the generator refuses a setting >= 1, where the rate would run away). So a
  region that just flared is likelier to flare again soon, and flare-history persistence
  works as it does on the real Sun, where it is a strong reference.
* **AIA flare emission.** A kernel of width ``sigma_k`` at the AR core whose integrated
  brightness is ``FLARE_CONTRAST[c] * quiet[c] * 2 pi sigma_kref**2 * (F(t) / 1e-6) **
  HOT_INDEX`` with ``F(t)`` the flare's GOES flux at the frame time (an AIA frame is a
  snapshot): strongest in 131 and 94 A (10-20 MK flare plasma), present in 171/193/211
  (ribbons, flare loops, Fe XXIV in 193).
* **Detector saturation.** AIA's CCD saturates at 16383 DN (14-bit ADC) per pixel; at the
  nominal exposure times (``EXPTIME``: 2.9 s for 94/131/211/335 A, 2.0 s for 171/193 A) that
  is ``SATURATION[c] = 16383 / EXPTIME[c]`` DN/s (AIA's flare-mode short exposures are not
  modelled). Pixels above it read exactly the saturation level, and the excess charge
  blooms along the CCD column (the ``y`` axis): it spills half up and half down into the
  neighbouring pixels, filling each to saturation (charge that reaches the edge is lost).
  Medium M flares saturate 131/171/193/211 A; large X flares also 94 A.
* **Precursors (learnable but noisy).** A fraction ``precursor_fraction`` of the flares of
  class C1 or above is preceded, for ``precursor_hours``, by flux emergence / shearing in
  its AR: ``c_eff = c * (1 + pre)``, with ``pre`` rising linearly from 0 to
  ``precursor_strength * (1 + log10(F / 1e-6)) * LogNormal(0, 0.3)`` at the flare start
  and vanishing once it starts (energy released). The AR's hot channels and X-ray
  background brighten accordingly (a C1 flare: ~+40 % in 94 A at the default strength 0.5,
  an M1 flare: ~+75 %); the natural complexity drift (~ +-30-40 % in 6 h) and the flares
  without precursor make it noisy.
* **Flux emergence (v3: an image signal that GOES barely sees).** A fraction
  ``emergence_fraction`` of the flares of class ``emergence_min_flux`` (M1) or above is
  preceded by ``emergence_hours`` (24 h) of flux emergence in its AR: new magnetic flux
  grows the region's envelope, so its warm 1-2 MK loops (171, 193, 211 A and the warm parts
  of 94/131/335 A) brighten by ``1 + e``, ``e`` rising linearly from 0 to
  ``min(emergence_strength * sqrt(F / emergence_min_flux), 5) * LogNormal(0, 0.3)`` at the flare
  start (an M1 flare: x4 at the default strength 3), then relaxing with e-folding time
  ``emergence_hours`` after it. Large flares need large reservoirs of free energy, which
  emerging flux supplies (e.g. Schrijver 2009, Adv. Space Res. 43, 739); the envelope is
  the part of the region that is not hot, so the X-ray background rises only by
  ``emergence_xray * e`` (5 % of the envelope gain): GOES barely sees the emergence, the
  warm channels do. Young regions emerging at birth (``sin ** 0.5``) and the relaxation of
  earlier emergences make it noisy.
* **GOES XRS-B** = ``background_flux`` + the visible ARs' ``X_bg`` (interpolated from the
  image grid to the minute) + the flare light curves, times ``1 + goes_noise * N(0, 1)`` per
  minute; 1-minute samples. Targets come from this series through ``align.goes_targets``
  (nowcast: mean over ``(t - cadence, t]``; forecasts: max over ``[t + lead, t + lead +
  window]``); ``xrsb`` is the slot mean.
* **Noise.** Gaussian, with variance proportional to the intensity (photon-like) and a
  quiet-Sun signal-to-noise of about ``quiet_snr`` per pixel, before saturation.
* **Ground truth.** ``flare_mask(time, y, x)`` is 1 within ``2 sigma_k + 0.5`` px of every
  flare of class C1 or above, from its start until its flux decays below 10 % of its
  peak, while its AR is visible. ``region_id(time, y, x)`` is the AR index + 1 on the
  pixels within 2 sigma of an AR's core where that AR's hot emission dominates (0
  elsewhere); ``region_on_disk(time, region)`` is 1 while the AR is visible; events carry
  the AR index in ``event_noaa_ar``.
* **Observables (v3).** ``observables(time, observable)``: what a perfect image model could
  measure at ``t`` without noise (:func:`observables`): a flare-rate proxy
  (sum over regions of hot**2 / warm, ~ envelope x complexity**2), the largest 24 h growth of
  a warm envelope (emergence), the X-ray background. The **observable oracle**
  (:func:`flarelib.evaluate.baselines.observable_oracle`) is a logistic regression of the
  training events on these and the GOES history: the ceiling for a model of the images, where
  the latent oracle below knows hidden complexity and the flares already announced.
* **Oracle (the latent state as a forecaster).** ``oracle_flux_now`` is the noiseless
  XRS-B mean over ``(t - cadence, t]``. For each forecast ``(lead L, window W)``,
  ``oracle_prob(time, forecast, event_class)`` is the probability that the max over
  ``[t + L, t + L + W]`` reaches 1e-6 (C) / 1e-5 (M), from the state at ``t`` only:

  - ``B`` = the noiseless X-ray background at ``t`` (held constant);
  - ``D`` = the largest contribution in the window of the *known* flares: those whose
    precursor is active at ``t`` and those in progress at ``t`` (peak time and flux known);
  - unknown flares: a Poisson process with the current total rate
    ``Lambda = sum over visible ARs of flare_rate * envelope * c**2`` held constant, of which
    a fraction ``frac(y) = ((y / flux_min)^-g - (flux_cap / flux_min)^-g) / (1 -
    (flux_cap / flux_min)^-g)``, ``g = powerlaw_index - 1``, peaks above ``y``; within
    ``precursor_hours`` of ``t`` the flares of class >= C1 that have a precursor are already
    known, and within ``emergence_hours`` those >= M1 with an emergence, so the window is cut
    into segments where the fraction not yet known is ``frac(y) - q_p frac(max(y, C1)) -
    q_e frac(max(y, M1)) + q_p q_e frac(max(y, C1, M1))`` (``q_p``, ``q_e`` the shares
    announced there);
  - ``P(max >= x) = 1`` if ``B + D >= x``, else ``1 - exp(-N(x - B))`` with
    ``N(y) = Lambda * sum over segments of (width x that fraction)``.

  It neglects that ARs rotate or change over the window, the self-excitation of flares still
  to come, flares outside the window whose tails reach into it, the sum of overlapping flares
  and the 2 % GOES noise.
  ``oracle_flux_max(time, forecast)`` is the median of this predictive distribution
  (``x`` where ``P(max >= x) = 1/2``; ``B + D`` when even that is not reached).

Signal-to-noise, honestly: flares are obvious once they happen, so nowcasting is easy.
The X-ray background is now visible (hot cores), so a model that sums the hot emission of
all regions beats the brightest pixel. Forecasting stays hard by design: flare times are
random, precursors are faint, not universal and mimicked by the complexity drift, and
flare-history persistence (with self-excitation) is a strong competitor. Whether the images
can add to GOES is measured, not assumed: notebook 05 scores the observable oracle against
the GOES + flare-history model, paired, on every run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from flarelib.checksums import fingerprint, sha256_of
from flarelib.cube import align, goes, store
from flarelib.cube.prep import DEFAULT_CHANNELS, prep_frame, read_frame_info

#: Exponent of hot-channel emission against the X-ray flux it accompanies (see the module docstring).
HOT_INDEX = 0.8
#: X-ray flux (W/m²) at which an AR core has its channel's HOT_CONTRAST.
X_REF = 1e-7
#: Peak contrast (x quiet-Sun median) of an AR's hot core at X_REF and the reference width; 0 for cool channels.
HOT_CONTRAST = {94: 8.0, 131: 2.0, 171: 0.0, 193: 0.0, 211: 0.0, 335: 4.0}
#: Peak contrast of an AR's warm (1-2 MK) envelope at full envelope: the magnetic size, seen in every channel.
WARM_CONTRAST = {94: 1.0, 131: 1.5, 171: 1.5, 193: 3.0, 211: 3.5, 335: 1.0}
#: Peak contrast of a flare kernel at C1 (1e-6 W/m²) and the reference kernel width.
FLARE_CONTRAST = {94: 60.0, 131: 100.0, 171: 3.0, 193: 4.0, 211: 6.0, 335: 20.0}
#: Nominal AIA exposure times (s); the saturation level is 16383 DN over this.
EXPTIME = {94: 2.9, 131: 2.9, 171: 2.0, 193: 2.0, 211: 2.9, 335: 2.9, 304: 2.9}
SATURATION_DN = 16383.0
#: Per-channel saturation level in DN/s.
SATURATION = {c: SATURATION_DN / t for c, t in EXPTIME.items()}
SIGMA_REF = 0.09  #: reference AR core width, in solar radii
KERNEL_REF = 0.04  #: reference flare kernel width, in solar radii
KERNEL_FRACTION = 0.45  #: flare kernel width / AR core width
C1 = goes.FLARE_CLASS_THRESHOLDS["C"]  #: W/m², the flux that flare sizes, precursors and kernels are scaled to
CLASS_THRESHOLDS = {c: goes.FLARE_CLASS_THRESHOLDS[c] for c in goes.EVENT_CLASSES}  #: the oracle's event classes
EMERGENCE_MAX = 5.0  #: the largest warm-envelope gain of a flux emergence (x6 the envelope)
START = np.datetime64("2031-01-01T00:00", "ns")  # a date no instrument has observed: unmistakably synthetic


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic sun (see the module docstring for the model)."""

    days: float = 365.0
    cadence_minutes: int = 60
    size: int = 64
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    seed: int = 2017
    ar_birth_rate: float = 1.3  #: per day, whole sphere, at activity 1
    activity: tuple[float, float] = (0.05, 1.0)  #: relative birth rate at the first and the last image
    ar_lifetime_days: tuple[float, float] = (5.0, 25.0)
    ar_latitude_deg: tuple[float, float] = (25.0, 15.0)  #: mean |latitude| of births, first and last image
    complexity_days: float = 3.0  #: correlation time of log complexity
    complexity_spread: float = 1.0  #: stationary standard deviation of log complexity
    complexity_max: float = 3.0  #: the most complex regions saturate here (caps the flare rate at 9x)
    flare_rate: float = 2.5  #: flares above flux_min per day for an AR at envelope 1 and complexity 1
    flux_min: float = 1e-7  #: W/m², B1
    flux_cap: float = 2e-3  #: W/m², X20: the largest flare
    powerlaw_index: float = 1.75
    background_flux: float = 2e-8  #: W/m², the whole Sun without ARs
    ar_flux: float = 1.6e-7  #: W/m² per AR at envelope 1 and complexity 1
    goes_noise: float = 0.02  #: multiplicative, per 1-minute sample
    precursor_hours: float = 6.0
    precursor_strength: float = 0.5  #: complexity gain at the start of a C1 flare (x (1 + log10(F/1e-6)))
    precursor_fraction: float = 0.75  #: share of >= C1 flares with a precursor
    emergence_hours: float = 24.0  #: flux emergence before a flare: how long the warm envelope grows
    emergence_min_flux: float = 1e-5  #: W/m²: flares from this size on (M1) can be announced by flux emergence
    emergence_strength: float = 3.0  #: warm-envelope gain at the start of such a flare (x sqrt(F / min), at most 5)
    emergence_fraction: float = 0.9  #: share of those flares announced by flux emergence
    emergence_xray: float = 0.05  #: share of the envelope gain that shows in the region's X-ray background
    excitation: float = 3.0  #: flares per day (above flux_min) that each >= C1 flare adds to its region's rate
    excitation_hours: float = 12.0  #: e-folding time of that raise
    quiet_snr: float = 25.0
    pad_days: float = 2.0  #: latent sun and GOES simulated this long before the first image
    forecasts: tuple[tuple[str, str], ...] = (("0min", "1h"), ("1h", "6h"), ("1h", "24h"))

    @property
    def n_steps(self) -> int:
        return int(round(self.days * 24 * 60 / self.cadence_minutes))


SIZES: dict[str, SyntheticConfig] = {
    # 35 days at 1 h, 64x64 px (fast for the tests and Binder, at the default's resolution, so that the Sun still
    # looks like the Sun), activity rising from 0.2 to 0.5: long enough that every split of
    # configs/small.yaml keeps samples after the purge of a 1 h / 24 h forecast with 24 h of GOES history, and
    # (with the catalog's seed) events and non-events at >= C1 and >= M1 in each (tests/test_synthetic.py counts)
    "small": SyntheticConfig(days=35.0, size=64, activity=(0.2, 0.5)),
    # one year at 1 h, 64x64 px, the rising phase of a cycle
    "default": SyntheticConfig(days=365.0, size=64),
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
    """The latent state of the synthetic sun on the cube's time grid (no pixels).

    Per-step arrays have one row per image step (``times``); ``A`` is the number of ARs
    (the ``region`` dimension of the cube).
    """

    times: np.ndarray  #: (T,) datetime64[ns]
    disk_radius: float  #: px
    ar_x: np.ndarray  #: (T, A) pixel column of each AR core (NaN when not visible)
    ar_y: np.ndarray  #: (T, A)
    ar_visible: np.ndarray  #: (T, A) bool
    ar_warm: np.ndarray  #: (T, A) envelope x mu**0.3 (0 when not visible): the cool-channel amplitude
    ar_background: np.ndarray  #: (T, A) X-ray background contribution, W/m² (0 when not visible)
    ar_flare: np.ndarray  #: (T, A) GOES flux of the AR's flares at the step time, W/m²
    ar_rate: np.ndarray  #: (T, A) current flare rate above flux_min, per day (0 when not visible)
    ar_sigma: np.ndarray  #: (A,) core width, px
    kernel_sigma: np.ndarray  #: (A,) flare kernel width, px
    precursor: np.ndarray  #: (T, A) precursor gain: c_eff = c (1 + precursor)
    mask_on: np.ndarray  #: (T, A) bool: a >= C1 flare of the AR is in progress while it is visible
    activity: np.ndarray  #: (T,) relative AR birth rate
    goes_time: np.ndarray  #: (M,) 1-minute times
    goes_flux: np.ndarray  #: (M,) W/m², with noise
    goes_clean: np.ndarray  #: (M,) W/m², noiseless
    events: list[dict]
    flares: dict  #: per flare (all in the GOES span): t_start, t_peak, flux, tau_rise, tau_decay, ar, precursor
    modulation: np.ndarray  #: (T, C) slow quiet-Sun modulation
    oracle_flux_now: np.ndarray  #: (T,) W/m²
    oracle_prob: np.ndarray  #: (T, F, 2) P(target >= C1, >= M1)
    oracle_flux_max: np.ndarray  #: (T, F) W/m², median of the oracle's predictive distribution

    @property
    def ar_xray(self) -> np.ndarray:
        """(T, A) each AR's contribution to XRS-B at the step time: background + flares, W/m²."""
        return self.ar_background + self.ar_flare


def _flare_curve(t_min: np.ndarray, t_peak: float, flux: float, tau_rise: float, tau_decay: float) -> np.ndarray:
    dt = t_min - t_peak
    return flux * np.where(dt < 0, np.exp(-0.5 * (dt / tau_rise) ** 2), np.exp(-np.clip(dt, 0, None) / tau_decay))


def _powerlaw_fraction(y: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """Fraction of flares (peak >= flux_min) whose peak is >= ``y``."""
    g = config.powerlaw_index - 1.0
    floor = (config.flux_cap / config.flux_min) ** -g
    y = np.maximum(np.asarray(y, dtype=np.float64), config.flux_min)
    return np.clip(((y / config.flux_min) ** -g - floor) / (1.0 - floor), 0.0, 1.0)


def _minutes(text: str) -> float:
    """A duration (``"1h"``, ``"0min"``) in minutes."""
    return float(align.to_timedelta(text) / np.timedelta64(1, "m"))


def _horizon_minutes(config: SyntheticConfig) -> float:
    return max(_minutes(lead) + _minutes(window) for lead, window in config.forecasts) if config.forecasts else 0.0


def simulate_history(config: SyntheticConfig, disk_radius: float) -> History:
    """Draw ARs, their motion, complexity, flares and precursors, the 1-minute GOES light curve and the oracle."""
    rng = np.random.default_rng(config.seed)
    cadence = config.cadence_minutes
    n_steps = config.n_steps
    n_pre = int(np.ceil(config.pad_days * 1440 / cadence))
    n_post = int(np.ceil((_horizon_minutes(config) + cadence) / cadence))
    n_all = n_pre + n_steps + n_post
    step_min = (np.arange(n_all) - n_pre) * float(cadence)  # minutes from START
    t_days = step_min / 1440.0
    img = slice(n_pre, n_pre + n_steps)
    size = config.size
    centre = (size - 1) / 2
    R = disk_radius

    # --- AR population: inhomogeneous Poisson births (thinning), rising activity, Spoerer drift
    lo, hi = config.ar_lifetime_days
    span = (t_days[0] - hi, t_days[-1])
    a0, a1 = config.activity

    def activity_at(t):
        return a0 + (a1 - a0) * np.clip(np.asarray(t) / max(config.days, 1e-9), 0.0, 1.0)

    amax = max(a0, a1)
    n_try = rng.poisson(config.ar_birth_rate * amax * (span[1] - span[0]))
    birth = np.sort(rng.uniform(*span, n_try))
    birth = birth[rng.uniform(size=n_try) < activity_at(birth) / amax]
    n_ar = birth.size
    life = rng.uniform(lo, hi, n_ar)
    frac_t = np.clip(birth / max(config.days, 1e-9), 0.0, 1.0)
    mean_lat = config.ar_latitude_deg[0] + (config.ar_latitude_deg[1] - config.ar_latitude_deg[0]) * frac_t
    lat = np.deg2rad(np.clip(rng.normal(mean_lat, 6.0), 3.0, 40.0) * rng.choice([-1, 1], n_ar))
    lon0 = rng.uniform(-180, 180, n_ar)
    strength = rng.lognormal(0.0, 0.4, n_ar)
    sigma = R * np.clip(SIGMA_REF * strength ** 0.25 * rng.uniform(0.85, 1.15, n_ar), 0.078, 0.15)
    kernel_sigma = KERNEL_FRACTION * sigma

    age = (t_days[:, None] - birth[None, :]) / life[None, :]
    alive = (age > 0) & (age < 1)
    envelope = np.where(alive, np.sin(np.pi * np.clip(age, 0, 1)) ** 0.5, 0.0) * strength
    omega = 13.2 - 2.8 * np.sin(lat) ** 2  # deg/day, synodic
    lon = np.deg2rad(((lon0[None, :] + omega[None, :] * (t_days[:, None] - birth[None, :]) + 180) % 360) - 180)
    mu = np.clip(np.cos(lon) * np.cos(lat)[None, :], 0, 1)
    visible = alive & (np.abs(lon) < np.pi / 2)
    del age
    ar_x = np.where(visible, centre + R * np.sin(lon) * np.cos(lat)[None, :], np.nan)
    ar_y = np.where(visible, centre + R * np.sin(lat)[None, :], np.nan)
    ar_warm = np.where(visible, envelope * mu ** 0.3, 0.0)
    del lon, mu

    # --- complexity: Ornstein-Uhlenbeck in log space, per AR
    phi = np.exp(-cadence / (config.complexity_days * 1440.0))
    kicks = rng.normal(0.0, config.complexity_spread * np.sqrt(1 - phi**2), (n_all, n_ar))
    log_c = np.empty((n_all, n_ar))
    log_c[0] = rng.normal(0.0, config.complexity_spread, n_ar)
    for k in range(1, n_all):
        log_c[k] = phi * log_c[k - 1] + kicks[k]
    del kicks
    complexity = np.minimum(np.exp(log_c - 0.5), config.complexity_max)
    del log_c

    env_vis = np.where(visible, envelope, 0.0)
    base_rate = config.flare_rate * env_vis * complexity**2  # per day, without self-excitation
    g = config.powerlaw_index - 1.0
    top = (config.flux_cap / config.flux_min) ** -g
    # --- flares step by step: each >= C1 flare adds `excitation` per day to its AR's rate, decaying over
    # excitation_hours (a Hawkes process; each >= C1 flare begets on average
    # excitation * excitation_hours / 24 * frac(C1) < 1 more, so the clustering cannot run away)
    branching = config.excitation * config.excitation_hours / 24.0 * float(_powerlaw_fraction(C1, config))
    if branching >= 1:
        raise ValueError(f"excitation {config.excitation}/day over {config.excitation_hours} h begets {branching:.2f} "
                         ">= 1 flare >= C1 per flare >= C1: the flare rate would run away")
    rate = np.empty_like(base_rate)
    excited = np.zeros(n_ar)
    decay = np.exp(-cadence / (max(config.excitation_hours, 1e-9) * 60.0))
    drawn_step, drawn_ar, drawn_flux = [], [], []
    for k in range(n_all):
        rate[k] = np.where(base_rate[k] > 0, base_rate[k] + excited, 0.0)  # a region off the disk shows none
        count = rng.poisson(rate[k] * cadence / 1440.0)
        excited *= decay
        if count.any():
            ars = np.repeat(np.arange(n_ar), count)
            flux = config.flux_min * (1 - rng.uniform(size=ars.size) * (1 - top)) ** (-1.0 / g)  # truncated power law
            np.add.at(excited, ars[flux >= C1], config.excitation)
            drawn_step.append(np.full(ars.size, k))
            drawn_ar.append(ars)
            drawn_flux.append(flux)
    f_step = np.concatenate(drawn_step) if drawn_step else np.zeros(0, np.int64)
    f_ar = np.concatenate(drawn_ar) if drawn_ar else np.zeros(0, np.int64)
    f_flux = np.concatenate(drawn_flux) if drawn_flux else np.zeros(0)
    n_fl = f_step.size
    scale = (f_flux / C1) ** 0.15
    f_rise = rng.uniform(2, 6, n_fl) * scale
    f_decay = rng.uniform(8, 25, n_fl) * scale ** (0.2 / 0.15)
    f_start = step_min[f_step] + rng.uniform(0, cadence, n_fl)
    f_peak = f_start + 2 * f_rise
    f_end = f_peak + f_decay * np.log(10)  # back to 10 % of the peak
    big = f_flux >= C1
    f_pre = np.where(big & (rng.uniform(size=n_fl) < config.precursor_fraction),
                     config.precursor_strength * (1 + np.log10(np.maximum(f_flux, C1) / C1))
                     * rng.lognormal(0.0, 0.3, n_fl), 0.0)

    # --- precursors: complexity grows over precursor_hours before the flare start
    P = config.precursor_hours * 60.0
    precursor = np.zeros((n_all, n_ar))
    for j in np.flatnonzero(f_pre > 0):
        k0 = int(np.searchsorted(step_min, f_start[j] - P, side="right"))
        k1 = int(np.searchsorted(step_min, f_start[j], side="left"))
        if k1 > k0:
            precursor[k0:k1, f_ar[j]] += f_pre[j] * (step_min[k0:k1] - (f_start[j] - P)) / P
    # --- flux emergence: the warm envelope grows over emergence_hours before the flare start, then relaxes
    major = f_flux >= config.emergence_min_flux
    f_emerge = np.where(major & (rng.uniform(size=n_fl) < config.emergence_fraction),
                        np.minimum(config.emergence_strength
                                   * np.sqrt(np.maximum(f_flux, config.emergence_min_flux) / config.emergence_min_flux),
                                   EMERGENCE_MAX) * rng.lognormal(0.0, 0.3, n_fl), 0.0)
    E = config.emergence_hours * 60.0
    emergence = np.zeros((n_all, n_ar))
    for j in np.flatnonzero(f_emerge > 0):
        k0 = int(np.searchsorted(step_min, f_start[j] - E, side="right"))
        k1 = int(np.searchsorted(step_min, f_start[j], side="left"))
        k2 = int(np.searchsorted(step_min, f_start[j] + 4 * E, side="left"))
        if k1 > k0:
            emergence[k0:k1, f_ar[j]] += f_emerge[j] * (step_min[k0:k1] - (f_start[j] - E)) / E
        if k2 > k1:
            emergence[k1:k2, f_ar[j]] += f_emerge[j] * np.exp(-(step_min[k1:k2] - f_start[j]) / E)
    ar_warm = ar_warm * (1 + emergence)
    background = (config.ar_flux * env_vis * complexity * (1 + precursor)
                  * (1 + config.emergence_xray * emergence))  # (n_all, A) W/m²

    # --- the 1-minute GOES series
    m0 = int(step_min[0])
    minutes = np.arange(m0, int(step_min[-1]) + 1)
    goes_clean = config.background_flux + np.interp(minutes, step_min, background.sum(axis=1))
    flare_at_steps = np.zeros((n_all, n_ar))
    mask_on = np.zeros((n_all, n_ar), dtype=bool)
    for j in range(n_fl):
        t0, t1 = f_start[j] - 4 * f_rise[j], f_peak[j] + 10 * f_decay[j]
        i0, i1 = max(int(np.ceil(t0)) - m0, 0), min(int(np.floor(t1)) - m0 + 1, minutes.size)
        if i1 > i0:
            goes_clean[i0:i1] += _flare_curve(minutes[i0:i1], f_peak[j], f_flux[j], f_rise[j], f_decay[j])
        k0, k1 = np.searchsorted(step_min, [t0, t1], side="left")
        if k1 > k0:
            flare_at_steps[k0:k1, f_ar[j]] += _flare_curve(step_min[k0:k1], f_peak[j], f_flux[j], f_rise[j],
                                                           f_decay[j])
        if big[j]:
            k0 = np.searchsorted(step_min, f_start[j], side="left")
            k1 = np.searchsorted(step_min, f_end[j], side="right")
            mask_on[k0:k1, f_ar[j]] = True
    mask_on &= visible  # an AR that rotated behind the limb (or died) during a flare shows no mask
    goes_flux = goes_clean * (1 + config.goes_noise * rng.standard_normal(goes_clean.shape))

    goes_time = START + (minutes.astype(np.int64) * 60 * 10**9).astype("timedelta64[ns]")
    times = START + (np.arange(n_steps, dtype=np.int64) * cadence * 60 * 10**9).astype("timedelta64[ns]")
    flares = {"t_start": f_start, "t_peak": f_peak, "t_end": f_end, "flux": f_flux, "tau_rise": f_rise,
              "tau_decay": f_decay, "ar": f_ar, "precursor": f_pre, "emergence": f_emerge}
    to_time = (lambda m: START + np.round(np.asarray(m) * 60e9).astype(np.int64).astype("timedelta64[ns]"))
    starts, peaks, ends = to_time(f_start), to_time(f_peak), to_time(f_end)
    order = np.argsort(peaks, kind="stable")
    events = [{"start": starts[j], "peak": peaks[j], "end": ends[j], "peak_flux": float(f_flux[j]),
               "source": "synthetic", "noaa_ar": int(f_ar[j]), "goes_scaling": "synthetic"} for j in order]

    # --- the oracle, from the latent state at each image step
    goes_da = xr.DataArray(goes_clean, coords={"time": goes_time}, dims="time")
    oracle_now = goes.resample_to_slots(goes_da, times, np.timedelta64(cadence, "m")).values.astype(np.float64)
    total_bg = config.background_flux + background.sum(axis=1)
    prob, fmax = _oracle(config, step_min, img, total_bg, rate.sum(axis=1) / 1440.0, flares)

    n_ch = len(config.channels)
    modulation = 1 + 0.03 * np.sin(2 * np.pi * t_days[img, None] / rng.uniform(5, 15, n_ch)[None, :]
                                   + rng.uniform(0, 2 * np.pi, n_ch)[None, :])
    return History(
        times=times, disk_radius=float(R), ar_x=ar_x[img], ar_y=ar_y[img], ar_visible=visible[img],
        ar_warm=ar_warm[img], ar_background=background[img], ar_flare=flare_at_steps[img], ar_rate=rate[img],
        ar_sigma=sigma, kernel_sigma=kernel_sigma, precursor=precursor[img], mask_on=mask_on[img],
        activity=activity_at(t_days[img]), goes_time=goes_time, goes_flux=goes_flux, goes_clean=goes_clean,
        events=events, flares=flares, modulation=modulation, oracle_flux_now=oracle_now, oracle_prob=prob,
        oracle_flux_max=fmax)


#: Names of the noiseless disk observables behind the observable oracle (:func:`observables`).
OBSERVABLES = ("log10_rate_proxy", "max_warm_growth_24h", "log10_xray_background")


def observables(history: History, config: SyntheticConfig) -> np.ndarray:
    """(T, 3) noiseless observables of the images at each step, what a perfect image model could measure:

    * ``log10_rate_proxy``: log10 of the sum over visible regions of ``X_a**2 / W_a``, with ``X_a`` the region's
      X-ray background (its hot-core brightness) and ``W_a`` its warm-envelope amplitude. Hot emission grows
      with envelope x complexity and the warm envelope with the envelope alone, so this tracks
      envelope x complexity**2, the flare rate, which the disk-integrated GOES flux cannot separate;
    * ``max_warm_growth_24h``: the largest relative growth of a region's warm envelope over the last 24 h, as
      ``log(W_a(t) / W_a(t - 24 h))`` (0 when none grew; regions visible at both times, ``W_a`` corrected for
      foreshortening by ``mu ** 0.3`` from the region's position): flux emergence;
    * ``log10_xray_background``: log10 of the summed X-ray background of the visible regions (W/m²).

    Nothing here is in the cube's pixels without noise; a model on the noisy frames can approach these, not pass
    them. The observable oracle is the best well-fit model on them (with the GOES history).
    """
    xray = history.ar_background
    visible = history.ar_visible & (history.ar_warm > 0)
    centre = (config.size - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.hypot(history.ar_x - centre, history.ar_y - centre) / history.disk_radius
        mu = np.sqrt(np.clip(1.0 - r ** 2, 1e-6, 1.0))
        warm = np.where(visible, history.ar_warm / mu ** 0.3, 0.0)
        proxy = np.where(visible, xray ** 2 / np.where(visible, warm, 1.0), 0.0).sum(axis=1)
        lag = int(round(24 * 60 / config.cadence_minutes))
        growth = np.full(warm.shape, -np.inf)
        both = visible[lag:] & visible[:-lag]
        growth[lag:] = np.where(both, warm[lag:] / np.where(both, warm[:-lag], 1.0) - 1.0, -np.inf)
        max_growth = np.log1p(np.maximum(growth.max(axis=1), 0.0))
        total = np.where(visible, xray, 0.0).sum(axis=1)
        return np.stack([np.log10(np.maximum(proxy, 1e-30)), max_growth, np.log10(np.maximum(total, 1e-30))],
                        axis=1)


def _oracle(config: SyntheticConfig, step_min: np.ndarray, img: slice, background: np.ndarray,
            rate_per_min: np.ndarray, flares: dict) -> tuple[np.ndarray, np.ndarray]:
    """``oracle_prob (T, F, 2)`` and ``oracle_flux_max (T, F)`` on the image steps (formula: module docstring)."""
    t = step_min[img]
    B = background[img]
    lam = rate_per_min[img]
    n_t, n_f = t.size, len(config.forecasts)
    leads = np.array([_minutes(lead) for lead, _ in config.forecasts], dtype=float)
    wins = np.array([_minutes(win) for _, win in config.forecasts], dtype=float)
    P, E = config.precursor_hours * 60.0, config.emergence_hours * 60.0
    # the window [t + lead, t + lead + window] cut where announcements stop reaching: a flare >= C1 starting
    # less than P after t is already known with probability q_p (its precursor is under way), one >= the
    # emergence class less than E after t with q_e (its emergence is under way), independently
    edges = sorted({0.0, P, E})
    segments = []  # (width (F,), q_p there, q_e there)
    for a, b in zip(edges, [*edges[1:], np.inf]):
        width = np.clip(np.minimum(leads + wins, b) - np.maximum(leads, a), 0.0, None)
        segments.append((width, config.precursor_fraction * (b <= P), config.emergence_fraction * (b <= E)))
    major = config.emergence_min_flux  # W/m²: the flares an emergence can announce

    # known flares: announced at t (precursor or emergence under way), or in progress at t (until 1 % of the peak)
    known = np.zeros((n_t, n_f))
    fs, fp, ff = flares["t_start"], flares["t_peak"], flares["flux"]
    fr, fd = flares["tau_rise"], flares["tau_decay"]
    ahead = np.maximum(np.where(flares["precursor"] > 0, P, 0.0), np.where(flares["emergence"] > 0, E, 0.0))
    last = fp + fd * np.log(100.0)
    k0s = np.where(ahead > 0, np.searchsorted(t, fs - ahead, side="right"),  # announcements start above 0
                   np.searchsorted(t, fs, side="left"))
    k1s = np.searchsorted(t, last, side="right")
    for j in np.flatnonzero(k1s > k0s):
        tk = t[k0s[j]:k1s[j], None]
        a, b = tk + leads[None, :], tk + leads[None, :] + wins[None, :]
        val = np.where(fp[j] < a, ff[j] * np.exp(-(a - fp[j]) / fd[j]),
                       np.where(fp[j] > b, ff[j] * np.exp(-0.5 * ((b - fp[j]) / fr[j]) ** 2), ff[j]))
        np.maximum(known[k0s[j]:k1s[j]], val, out=known[k0s[j]:k1s[j]])
    D = B[:, None] + known  # (T, F) deterministic part of the max

    def survival(x):  # P(max >= x) for x of shape (T, F, G)
        y = np.maximum(x - B[:, None, None], 0.0)
        f_all = _powerlaw_fraction(y, config)
        f_c = _powerlaw_fraction(np.maximum(y, C1), config)
        f_e = _powerlaw_fraction(np.maximum(y, major), config)
        f_both = _powerlaw_fraction(np.maximum(np.maximum(y, C1), major), config)
        # flares above y not yet announced: all, less the precursor-announced, less the emergence-announced,
        # plus those counted twice
        n_exp = sum(width[None, :, None] * np.clip(f_all - q_p * f_c - q_e * f_e + q_p * q_e * f_both, 0.0, None)
                    for width, q_p, q_e in segments)
        n_exp = lam[:, None, None] * n_exp
        return np.where((D[..., None] >= x) | (y <= 0), 1.0, -np.expm1(-n_exp))

    thresholds = np.array(list(CLASS_THRESHOLDS.values()))
    prob = survival(np.broadcast_to(thresholds, (n_t, n_f, thresholds.size)))
    # median: the largest x on a fine log grid with P(max >= x) >= 1/2 (refined by log interpolation)
    grid = np.logspace(-9, np.log10(config.flux_cap) + 0.5, 240)
    s = survival(np.broadcast_to(grid, (n_t, n_f, grid.size)))
    idx = np.clip((s >= 0.5).sum(axis=-1) - 1, 0, grid.size - 2)  # survival is non-increasing in x
    s0 = np.take_along_axis(s, idx[..., None], -1)[..., 0]
    s1 = np.take_along_axis(s, idx[..., None] + 1, -1)[..., 0]
    lg = np.log10(grid)
    frac = np.clip((s0 - 0.5) / np.maximum(s0 - s1, 1e-300), 0.0, 1.0)
    median = np.maximum(10 ** (lg[idx] + frac * (lg[idx + 1] - lg[idx])), D)
    return prob.astype(np.float64), median.astype(np.float64)


def _saturate(frame: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Clip ``frame`` (C, y, x) at ``levels`` (C,) DN/s and bloom the excess along each column (in place)."""
    over = frame > levels[:, None, None]
    if not over.any():
        return frame
    ny = frame.shape[1]
    for c, x in zip(*np.nonzero(over.any(axis=1))):
        col, sat = frame[c, :, x], levels[c]
        hot = np.flatnonzero(col > sat)
        charge = float((col[hot] - sat).sum())
        col[hot] = sat
        for direction, start in ((1, hot[-1] + 1), (-1, hot[0] - 1)):
            left, j = charge / 2, start
            while left > 0 and 0 <= j < ny:
                take = min(max(sat - col[j], 0.0), left)
                col[j] += take
                left -= take
                j += direction
    return frame


def _profiles(centre: np.ndarray, sigma: np.ndarray, size: int) -> np.ndarray:
    """(A, size) 1-D Gaussians exp(-(i - centre)^2 / 2 sigma^2) for separable 2-D profiles."""
    i = np.arange(size, dtype=np.float64)
    return np.exp(-0.5 * ((i[None, :] - centre[:, None]) / sigma[:, None]) ** 2)


def _add_separable(image: np.ndarray, amp: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> None:
    """image (C, y, x) += sum_a amp[c, a] gy[a, y] gx[a, x]."""
    image += np.matmul(amp[:, None, :] * gy.T[None, :, :], gx[None, :, :])


def render_frames(history: History, base: np.ndarray, config: SyntheticConfig, i0: int, i1: int) -> dict:
    """Pixels of steps ``i0:i1``: ``aia`` (n, C, y, x) float32 DN/s, ``flare_mask`` (n, y, x) uint8 and
    ``region_id`` (n, y, x) uint16.

    Deterministic per step (noise from ``default_rng([seed, step])``), so a resumed write
    gives the same pixels as an uninterrupted one.
    """
    size = config.size
    channels = config.channels
    R = history.disk_radius
    quiet = np.array([np.median(base[c][base[c] > 0]) for c in range(len(channels))], dtype=np.float64)
    hot = np.array([HOT_CONTRAST.get(c, 0.0) for c in channels]) * quiet
    warm = np.array([WARM_CONTRAST.get(c, 1.0) for c in channels]) * quiet
    flare_gain = np.array([FLARE_CONTRAST.get(c, 1.0) for c in channels]) * quiet
    levels = np.array([SATURATION.get(c, SATURATION_DN / 2.0) for c in channels], dtype=np.float64)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    aia = np.empty((i1 - i0, len(channels), size, size), dtype=np.float32)
    mask = np.zeros((i1 - i0, size, size), dtype=np.uint8)
    region = np.zeros((i1 - i0, size, size), dtype=np.uint16)
    base64 = base.astype(np.float64)
    for n, k in enumerate(range(i0, i1)):
        rng = np.random.default_rng([config.seed, k])
        image = base64 * history.modulation[k][:, None, None]
        ars = np.flatnonzero(history.ar_visible[k])
        if ars.size:
            x0, y0 = history.ar_x[k, ars], history.ar_y[k, ars]
            s, sk = history.ar_sigma[ars], history.kernel_sigma[ars]
            core_x, core_y = _profiles(x0, s, size), _profiles(y0, s, size)
            # warm envelope: width 2 sigma, peak WARM_CONTRAST x envelope x mu^0.3
            _add_separable(image, warm[:, None] * history.ar_warm[k, ars][None, :],
                           _profiles(y0, 2 * s, size), _profiles(x0, 2 * s, size))
            # hot core: integrated brightness ∝ (X_bg / X_REF)^HOT_INDEX
            x_bg = np.maximum(history.ar_background[k, ars], 0.0)
            hot_amp = (x_bg / X_REF) ** HOT_INDEX * (SIGMA_REF * R / s) ** 2
            _add_separable(image, hot[:, None] * hot_amp[None, :], core_y, core_x)
            # flare kernels: integrated brightness ∝ (F / C1)^HOT_INDEX
            fl = history.ar_flare[k, ars]
            on = fl > 1e-9
            if on.any():
                f_amp = (fl[on] / C1) ** HOT_INDEX * (KERNEL_REF * R / sk[on]) ** 2
                _add_separable(image, flare_gain[:, None] * f_amp[None, :],
                               _profiles(y0[on], sk[on], size), _profiles(x0[on], sk[on], size))
            # region identity: within 2 sigma of a core, the AR with the largest hot emission there
            r2 = ((xx[None] - x0[:, None, None]) ** 2 + (yy[None] - y0[:, None, None]) ** 2) / s[:, None, None] ** 2
            score = np.where(r2 <= 4.0, (np.maximum(x_bg + fl, 1e-12) ** HOT_INDEX / s**2)[:, None, None]
                             * np.exp(-0.5 * r2), -1.0)
            best = score.argmax(axis=0)
            region[n] = np.where(score.max(axis=0) > 0, ars[best] + 1, 0).astype(np.uint16)
            for a_pos in np.flatnonzero(history.mask_on[k, ars]):
                rad = 2 * sk[a_pos] + 0.5
                mask[n] |= (((xx - x0[a_pos]) ** 2 + (yy - y0[a_pos]) ** 2) <= rad**2).astype(np.uint8)
        sigma = np.sqrt(np.maximum(image, 0) * quiet[:, None, None]) / config.quiet_snr
        image = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
        aia[n] = _saturate(image, levels)
    return {"aia": aia, "flare_mask": mask, "region_id": region}


def build_synthetic_cube(
    path: str | Path,
    config: SyntheticConfig | str,
    disk_files: Sequence[str | Path],
    *,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_written=None,
) -> Path:
    """Generate the synthetic sun and write it as a cube (same schema as the real cubes).

    ``config`` is a :class:`SyntheticConfig` or a size name from :data:`SIZES`
    (``"small"``: 35 days at 64x64 px; ``"default"``: 365 days at 64x64 px, both at 1 h).
    ``disk_files`` are the real full-disk frames the quiet Sun is made from.
    """
    if isinstance(config, str):
        if config not in SIZES:
            raise ValueError(f"unknown synthetic size {config!r}; choose from {sorted(SIZES)}")
        config = SIZES[config]
    name = name or f"synthetic-sun-{config.days:g}d-{config.size}px"
    base, disk, radius = load_quiet_sun(disk_files, config.channels, config.size)
    history = simulate_history(config, radius)
    goes_ds = xr.Dataset({"xrsb": ("time", history.goes_flux, {"units": "W m-2"})},
                         coords={"time": history.goes_time},
                         attrs={"goes_scaling": "synthetic", "goes_satellite": "synthetic", "source": "synthetic"})
    cadence = f"{config.cadence_minutes}min"
    targets = align.goes_targets(goes_ds, history.times, cadence, config.forecasts)
    for var in targets.data_vars:
        if var.startswith(("flux_", "class_")):
            targets[var].attrs["target_source"] = "synthetic"
    events = align.events_dataset(history.events)
    nt, nc = len(history.times), len(config.channels)
    n_ar = history.ar_sigma.size
    generator = {"module": "flarelib.cube.synthetic", "version": 3, **dataclasses.asdict(config), "start": str(START),
                 "disk_radius_px": radius, "n_events": len(history.events), "n_regions": int(n_ar),
                 "hot_index": HOT_INDEX, "saturation_dn_per_s": {str(c): SATURATION[c] for c in config.channels},
                 "quiet_sun_from": [Path(f).name for f in disk_files]}
    template = xr.Dataset(
        coords={
            "time": ("time", history.times, {"long_name": "nominal cadence slot (SYNTHETIC)", "timezone": "UTC"}),
            "channel": ("channel", np.array(config.channels, dtype=np.int32), {"units": "angstrom"}),
            "y": ("y", np.arange(config.size, dtype=np.int32)),
            "x": ("x", np.arange(config.size, dtype=np.int32)),
            "region": ("region", np.arange(n_ar, dtype=np.int32),
                       {"long_name": "active-region index (region_id - 1; event_noaa_ar)"}),
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
    template["region_on_disk"] = (("time", "region"), history.ar_visible.astype(np.uint8),
                                  {"long_name": "1 while the active region is on the visible disk (SYNTHETIC)"})
    template = template.assign_coords(event_class=("event_class", np.array(list(CLASS_THRESHOLDS))))
    template["event_class"].attrs.update({"long_name": "oracle event class", "threshold_w_m2":
                                          store.json_attr(CLASS_THRESHOLDS)})
    oracle_note = "SYNTHETIC ground truth from the generator's latent state at t; formula in generator_model"
    template["oracle_flux_now"] = ("time", history.oracle_flux_now, {
        "units": "W m-2", "long_name": "noiseless XRS-B mean over (t - cadence, t] (the nowcast without GOES noise)",
        "note": oracle_note})
    template["oracle_prob"] = (("time", "forecast", "event_class"), history.oracle_prob, {
        "units": "1", "long_name": "oracle probability that max XRS-B over [t + lead, t + lead + window] >= the "
                                   "event class threshold (C: 1e-6, M: 1e-5 W m-2)", "note": oracle_note})
    template = template.assign_coords(observable=("observable", np.array(OBSERVABLES)))
    template["observables"] = (("time", "observable"), observables(history, config), {
        "long_name": "noiseless image observables at t (SYNTHETIC): the rate proxy, the largest 24 h growth of a "
                     "warm envelope, the X-ray background; the inputs of the observable oracle",
        "note": "flarelib.cube.synthetic.observables; not in the pixels without noise"})
    template["oracle_flux_max"] = (("time", "forecast"), history.oracle_flux_max, {
        "units": "W m-2", "long_name": "oracle point forecast of max XRS-B over [t + lead, t + lead + window]: "
                                       "the median of its predictive distribution", "note": oracle_note})
    template.attrs = {
        "title": f"{name}: SYNTHETIC sun (not observations)",
        "name": name,
        "description": ("SYNTHETIC AIA-like cube and GOES-like XRS-B flux (v3: hot channels track the X-ray "
                        "background, resolved regions, saturation, precursors, flux emergence before major flares, "
                        "self-exciting flares) with ground-truth flare masks, region identities, noiseless "
                        "observables and an oracle forecast"),
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
                "flare_mask": (("y", "x"), (config.size, config.size), "uint8"),
                "region_id": (("y", "x"), (config.size, config.size), "uint16")}
    return store.write_cube(path, template, streamed, lambda i0, i1: render_frames(history, base, config, i0, i1),
                            store.WriteOptions(steps_per_write=96, overwrite=overwrite, progress=progress,
                                               on_written=on_written))


def _event_positions(history: History, axis: str) -> np.ndarray:
    """Position of each event's AR at the last image step at or before its peak (NaN outside the images)."""
    pos = history.ar_x if axis == "x" else history.ar_y
    if not history.events:
        return np.zeros(0, dtype=np.float32)
    peaks = np.array([ev["peak"] for ev in history.events], dtype="datetime64[ns]")
    ars = np.array([ev["noaa_ar"] for ev in history.events], dtype=np.int64)
    k = np.searchsorted(history.times, peaks, side="right") - 1
    inside = (k >= 0) & (peaks <= history.times[-1] + (history.times[-1] - history.times[-2]
                                                        if history.times.size > 1 else np.timedelta64(0, "ns")))
    out = np.full(peaks.shape, np.nan, dtype=np.float32)
    out[inside] = pos[k[inside], ars[inside]]
    return out


def _fingerprint(generator: dict, disk_files) -> str:
    return fingerprint({"generator": generator, "disk": [sha256_of(f) for f in disk_files]})
