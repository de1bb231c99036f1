"""The stages' Butterworth low-pass (pelvimon.dsp._lowpass) against scipy.signal, and chunked against whole."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from pelvimon.dsp._lowpass import Lowpass, butter_lowpass_sos

# (order, cut-off Hz, rate Hz): the stages' filters at the supported rates, and their extremes
DESIGNS = [(2, 6.0, 200.0), (2, 0.3, 200.0), (4, 0.2, 200.0), (2, 20.0, 52.0), (2, 80.0, 200.0), (4, 300.0, 1666.0),
           (2, 8.0, 20.0), (6, 1.0, 100.0)]  # fmt: skip


@pytest.mark.parametrize(("order", "fc", "fs"), DESIGNS)
def test_design_has_scipy_butter_response(order: int, fc: float, fs: float) -> None:
    ours = butter_lowpass_sos(order, fc, fs)
    ref = signal.butter(order, fc, fs=fs, output="sos")
    assert ours.shape == ref.shape == (order // 2, 6)
    assert np.all(ours[:, 3] == 1.0)
    f = np.linspace(0.0, 0.999 * fs / 2, 400)
    h, h_ref = signal.sosfreqz(ours, f, fs=fs)[1], signal.sosfreqz(ref, f, fs=fs)[1]
    assert np.max(np.abs(h - h_ref)) < 1e-9
    assert abs(abs(signal.sosfreqz(ours, [fc], fs=fs)[1][0]) - 2**-0.5) < 1e-9  # -3 dB at the cut-off
    # each section passes 0 Hz at gain 1
    assert np.allclose(ours[:, :3].sum(axis=1) / ours[:, 3:].sum(axis=1), 1.0, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("order", "fc", "fs"), DESIGNS)
def test_output_equals_scipy_sosfilt_from_rest(order: int, fc: float, fs: float) -> None:
    rng = np.random.default_rng(order * 1000 + int(fc))
    x = rng.normal(0.0, 3.0, (3, 4000)).cumsum(axis=1) + [[0.0], [0.0], [9.81]]
    lp = Lowpass(butter_lowpass_sos(order, fc, fs))
    y, _ = lp(x, lp.rest_state(x[:, 0]))
    sos = signal.butter(order, fc, fs=fs, output="sos")
    ref = signal.sosfilt(sos, x, axis=1, zi=signal.sosfilt_zi(sos)[:, None, :] * x[:, 0][None, :, None])[0]
    assert y.shape == x.shape
    assert np.max(np.abs(y - ref)) <= 1e-10 * np.max(np.abs(ref))


def test_rest_state_holds_a_constant_input() -> None:
    lp = Lowpass(butter_lowpass_sos(4, 0.5, 100.0))
    x = np.full((2, 500), [[9.81], [-1.5]])
    y, state = lp(x, lp.rest_state(x[:, 0]))
    assert np.allclose(y, x, rtol=1e-12, atol=0)
    assert state.shape == (2, 4, 2) and np.allclose(state, x[:, :1].T[None], rtol=1e-12, atol=0)


def test_one_dimensional_input_and_empty_chunk() -> None:
    lp = Lowpass(butter_lowpass_sos(2, 5.0, 200.0))
    x = np.sin(np.arange(300) * 0.05)
    state = lp.rest_state(x[0])
    assert state.shape == (1, 4)
    y, after = lp(x, state)
    assert y.shape == (300,)
    y0, same = lp(x[:0], after)
    assert y0.shape == (0,) and np.array_equal(same, after) and same is not after


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 700), max_size=12),
    order=st.sampled_from([2, 4]),
    channels=st.sampled_from([(), (1,), (3,)]),
)
def test_chunked_equals_whole_bit_for_bit(cuts: list[int], order: int, channels: tuple[int, ...]) -> None:
    """Any chunking (empty and one-sample chunks too) gives the same bits as one call, with the state carried."""
    rng = np.random.default_rng(len(cuts) + order)
    x = rng.normal(0.0, 1.0, (*channels, 700)).cumsum(axis=-1)
    lp = Lowpass(butter_lowpass_sos(order, 3.0, 100.0))
    start = lp.rest_state(x[..., 0])
    whole, end = lp(x, start)
    parts, state = [], start
    for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), 700], strict=True):
        y, state = lp(x[..., a:b], state)
        parts.append(y)
    assert np.concatenate(parts, axis=-1).tobytes() == whole.tobytes()
    assert state.tobytes() == end.tobytes()


def test_state_is_the_last_two_inputs_and_outputs_of_each_section() -> None:
    """Chunks of one and two samples (order 4: two sections), and the state laid out as documented."""
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 1.0, 50)
    lp = Lowpass(butter_lowpass_sos(4, 10.0, 100.0))
    start = lp.rest_state(x[0])
    whole, end = lp(x, start)
    parts, state, a = [], start, 0
    for size in [1, 2, 1, 1, 2, 2] * 6:
        y, state = lp(x[a : a + size], state)
        parts.append(y)
        a += size
    y, state = lp(x[a:], state)
    parts.append(y)
    assert np.concatenate(parts).tobytes() == whole.tobytes() and state.tobytes() == end.tobytes()
    first = Lowpass(lp.sos[:1])
    mid, _ = first(x, first.rest_state(x[0]))  # the first section's output: the second's input
    np.testing.assert_array_equal(end[0], [x[-2], x[-1], mid[-2], mid[-1]])
    np.testing.assert_array_equal(end[1], [mid[-2], mid[-1], whole[-2], whole[-1]])


def test_a_state_of_another_shape_is_refused() -> None:
    lp = Lowpass(butter_lowpass_sos(2, 5.0, 100.0))
    four = Lowpass(butter_lowpass_sos(4, 5.0, 100.0))
    with pytest.raises(ValueError, match="state must have shape"):
        lp(np.zeros((3, 10)), four.rest_state(np.zeros(3)))
    with pytest.raises(ValueError, match="state must have shape"):
        lp(np.zeros((3, 10)), lp.rest_state(0.0))
    with pytest.raises(ValueError, match="a0 = 1"):
        Lowpass(np.array([[1.0, 0.0, 0.0, 2.0, 0.0, 0.0]]))


def test_strided_input_is_read_as_given() -> None:
    """A transposed (column) view is filtered as its copy is (the stages pass ``acc.T``)."""
    rng = np.random.default_rng(9)
    acc = rng.normal(0.0, 1.0, (1000, 3))
    kept = acc.copy()
    lp = Lowpass(butter_lowpass_sos(2, 6.0, 200.0))
    state = lp.rest_state(acc[0])
    y_view, s_view = lp(acc.T, state)
    y_copy, s_copy = lp(np.ascontiguousarray(acc.T), state)
    assert y_view.tobytes() == y_copy.tobytes() and s_view.tobytes() == s_copy.tobytes()
    assert acc.tobytes() == kept.tobytes()  # the input is not written


@pytest.mark.parametrize(("order", "fc", "fs", "match"), [
    (3, 5.0, 100.0, "even"), (0, 5.0, 100.0, "even"), (2, 50.0, 100.0, "half the sample rate"),
    (2, 0.0, 100.0, "half the sample rate"), (2, -1.0, 100.0, "half the sample rate"),
])  # fmt: skip
def test_bad_design_is_refused(order: int, fc: float, fs: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        butter_lowpass_sos(order, fc, fs)


def test_streaming_stages_do_not_import_scipy_signal() -> None:
    """The import time the filter saves (see the module's docstring): the pipeline and the analysis modules
    load without scipy.signal."""
    import subprocess
    import sys

    code = (
        "import sys, pelvimon.analysis, pelvimon.motion_helper, pelvimon.dsp.pipeline, pelvimon.commands.analyze; "
        "print('scipy.signal' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
