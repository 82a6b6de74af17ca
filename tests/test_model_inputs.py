"""The one path from a cube to model input (data.stack_inputs): offsets from a duration, the data module and
explanations fed the same frames, and the data -> model contract (data.model_settings)."""

import numpy as np
import pytest
import xarray as xr

from flarelib import explain
from flarelib import learn as M
from flarelib.cube.store import cube_cadence
from flarelib.learn import data
from flarelib.learn.data import DataConfigError, Normalizer, frame_offsets, stack_inputs

CHANNELS = [94, 131, 171, 193, 211, 335]


def _cube(cadence_min: int = 12, n: int = 30, recorded: bool = True) -> xr.Dataset:
    """A bare cube whose every pixel of step k is k + 1 DN/s, so a stacked input says which steps it read."""
    times = np.datetime64("2011-02-15T00:00") + np.arange(n) * np.timedelta64(cadence_min, "m")
    values = np.broadcast_to((np.arange(n, dtype=np.float32) + 1)[:, None, None, None], (n, 6, 8, 8)).copy()
    attrs = {"name": "twelve-minute", "synthetic": True}
    if recorded:
        attrs["alignment"] = f'{{"cadence": "{cadence_min}min"}}'
    return xr.Dataset({"aia": (("time", "channel", "y", "x"), values)},
                      coords={"time": times.astype("datetime64[ns]"), "channel": CHANNELS}, attrs=attrs)


def _identity_log() -> Normalizer:
    """log10 of DN/s, unscaled: a normalized pixel of step k is log10(k + 1)."""
    return Normalizer(tuple(CHANNELS), "log", (1e-3,) * 6, (0.0,) * 6, (1.0,) * 6)


def _steps_read(x: np.ndarray) -> np.ndarray:
    """(n, frames) cube steps that each stacked frame came from."""
    return np.rint(10 ** x[:, ::6, 0, 0] - 1).astype(int)


def test_offsets_are_a_duration_over_the_cube_cadence():
    twelve = np.timedelta64(12, "m")
    np.testing.assert_array_equal(frame_offsets(3, "1h", twelve), [10, 5, 0])
    np.testing.assert_array_equal(frame_offsets(1, "1h", twelve), [0])
    with pytest.raises(DataConfigError, match="not a positive multiple of the cube's cadence"):
        frame_offsets(2, "30min", np.timedelta64(1, "h"))
    with pytest.raises(DataConfigError, match="at least one frame"):
        frame_offsets(0, "1h", twelve)


def test_the_recorded_cadence_is_read_and_the_commonest_step_stands_in_when_none_is():
    assert cube_cadence(_cube(12)) == np.timedelta64(12, "m")
    assert cube_cadence(_cube(12, recorded=False)) == np.timedelta64(12, "m")
    one = _cube(12, n=1)
    assert cube_cadence(one) == np.timedelta64(12, "m")  # recorded: one step still has a cadence
    with pytest.raises(ValueError, match="records no cadence and has one time step"):
        cube_cadence(_cube(12, n=1, recorded=False))


def test_stack_inputs_reads_each_frame_from_its_own_step_and_refuses_what_it_cannot_read():
    cube = _cube()
    x = stack_inputs(cube, _identity_log(), [12, 20], [10, 5, 0])
    assert x.shape == (2, 18, 8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(_steps_read(x), [[2, 7, 12], [10, 15, 20]])
    with pytest.raises(IndexError, match="time index 4 has no 3 frames 10 steps back"):
        stack_inputs(cube, _identity_log(), [12, 4], [10, 5, 0])
    with pytest.raises(IndexError, match="out of range"):
        stack_inputs(cube, _identity_log(), [30], [0])
    bad = cube.copy(deep=True)
    bad["aia"][7, 1, 3, 3] = np.inf
    with pytest.raises(DataConfigError, match="twelve-minute: the frame at 2011-02-15T01:24 .* infinite pixels"):
        stack_inputs(bad, _identity_log(), [12], [10, 5, 0])
    absurd = cube.copy(deep=True)
    absurd["aia"][7, 1, 3, 3] = 1e30  # finite, but no AIA pixel records it: damage, not a flare
    with pytest.raises(DataConfigError, match="outside -10000 to 2e[+]08 DN/s"):
        stack_inputs(absurd, _identity_log(), [12], [10, 5, 0])
    with pytest.raises(DataConfigError, match=r"lacks the channels \[1600\]"):
        stack_inputs(cube, Normalizer((1600,), "log", (1.0,), (0.0,), (1.0,)), [0], [0])


def _three_frame_model(frame_step: str | None = "1h") -> M.FlareNet:
    model = M.FlareNet(channels=CHANNELS, frames=3, frame_step=frame_step or "1h",
                       architecture=M.Architecture(widths=(4,))).eval()
    model.set_normalizer(_identity_log())
    if frame_step is None:  # a checkpoint from before frame_step was recorded
        del model.hparams["frame_step"]
    return model


def test_a_three_frame_model_is_explained_on_a_12_minute_cube_with_frames_an_hour_apart():
    cube = _cube(12)
    got = explain.model_inputs(_three_frame_model("1h"), cube, [10, 29])
    np.testing.assert_array_equal(_steps_read(got.x.numpy()), [[0, 5, 10], [19, 24, 29]])  # 1 h = 5 steps of 12 min
    attr = explain.attribute(_three_frame_model("1h"), cube, [10, 29], "saliency")
    assert attr.shape == (2, 6, 8, 8)
    assert attr.time.values.tolist() == cube["time"].values[[10, 29]].tolist()
    with pytest.raises(IndexError, match="time index 9 has no 3 frames"):
        explain.model_inputs(_three_frame_model("1h"), cube, [9])  # no silent repeat of the first frame
    with pytest.raises(ValueError, match="records no frame_step"):
        explain.model_inputs(_three_frame_model(None), cube, [10])


def test_the_model_is_built_with_what_the_data_module_dictates(small_cube_path):
    dm = data.FlareDataModule(cube=str(small_cube_path), target="lead60min_window360min",
                              inputs=data.InputOptions(frames=3, frame_step="2h", goes=("now", "6h"),
                                                       normalization="asinh"))
    settings = data.model_settings(dm)
    assert settings == {"channels": CHANNELS, "target": "lead60min_window360min", "normalization": "asinh",
                        "frames": 3, "frame_step": "2h", "aux_inputs": 2}
    assert set(settings) == set(data.MODEL_LINKS)
    model = M.FlareNet(**settings, architecture=M.Architecture(widths=(4,)))
    assert model.hparams.frame_step == "2h" and model.features[0].in_channels == 18
