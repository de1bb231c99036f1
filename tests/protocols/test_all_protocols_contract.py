"""The contract every registered protocol keeps (parametrised over ``registry.available()``).

- the spec is sane (lower-case UUIDs, default rate among the rates, regexes that compile);
- start/stop sequences (stop may be empty) are ``GattWrite``s to the spec's write characteristic (or one it lists in
  ``spec.extra["other_write_uuids"]``);
- arbitrary bytes on every notify characteristic give ``list[ImuBatch]`` or a ``ProtocolError`` subclass;
- a peripheral started by the client's own writes encodes a few seconds of running-like samples on a device
  clock, and a fresh decoder gives the samples back within the protocol's quantisation.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import (
    Decoder,
    GattWrite,
    PeripheralModel,
    ProtocolError,
    StreamConfig,
)
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch

NAMES = registry.available()
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Worst-case error of a decoded sample (acc m/s², gyro rad/s) for each protocol's number format, with the
# ranges the round trip asks for (±16 g, ±2000 deg/s). int16 at ±16 g: half a count = 16·g/32768/2.
_INT16_ACC = 0.5 * 16 * G_MPS2 / 32768 * 1.01
_INT16_GYR = 0.5 * np.deg2rad(1 / 16.4) * 1.01
QUANTUM: dict[str, tuple[float, float]] = {
    "movesense": (1e-5, 1e-6),  # float32 m/s² and deg/s
    "movella_dot": (1e-5, 1e-6),  # float32 m/s² and deg/s
    "polar_pmd": (0.5 * 1e-3 * G_MPS2 * 1.01, _INT16_GYR),  # 1 mG steps; gyro counts of ~0.061 deg/s
    "metawear": (_INT16_ACC, _INT16_GYR),
    "witmotion": (_INT16_ACC, _INT16_GYR),
    "pelvimon": (_INT16_ACC, _INT16_GYR),
}
COARSEST = (0.5 * 1e-3 * G_MPS2 * 1.01, _INT16_GYR)  # for a protocol added later without an entry here


def _config(spec) -> StreamConfig:
    return StreamConfig(rate_hz=spec.default_rate_hz, acc_range_g=16.0, gyro_range_dps=2000.0)


def _context(spec, config: StreamConfig) -> dict:
    """Decoder context a client knows from the configuration it started: the protocol's own
    ``decoder_context(config)`` where it has one, else filled by the spec's key names."""
    hook = getattr(registry.get(spec.name), "decoder_context", None)
    if callable(hook):
        return dict(hook(config))
    ctx: dict = {}
    for key in spec.context_keys:
        if key in ("sample_rate_hz", "rate_hz", "output_rate_hz"):
            ctx[key] = config.rate_hz
        elif key == "acc_range_g":
            ctx[key] = config.acc_range_g
        elif key == "gyro_range_dps":
            ctx[key] = config.gyro_range_dps
    return ctx


def _writable(spec) -> set[str]:
    return {spec.write_uuid, *spec.extra.get("other_write_uuids", ())} - {None}


@pytest.fixture(params=NAMES)
def proto(request):
    return registry.get(request.param)


# ---------------------------------------------------------------------------------------------------- spec


def test_at_least_the_protocols_of_this_area_are_registered() -> None:
    assert {"movella_dot", "pelvimon"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_sane(name: str) -> None:
    spec = registry.get(name).spec
    assert spec.name == name
    assert spec.title.strip() and spec.loss_detection.strip()
    uuids = [*spec.service_uuids, *spec.notify_uuids, *_writable(spec)]
    assert spec.notify_uuids, "a protocol notifies on at least one characteristic"
    for u in uuids:
        assert UUID_RE.match(u), f"{name}: UUID {u!r} must be lower-case 8-4-4-4-12 hex"
    assert len(set(spec.notify_uuids)) == len(spec.notify_uuids)
    assert spec.rates_hz and all(r > 0 for r in spec.rates_hz)
    assert spec.default_rate_hz in spec.rates_hz
    for pattern in spec.name_patterns:
        re.compile(pattern)
    assert all(isinstance(k, str) and k.isidentifier() for k in spec.context_keys)
    assert isinstance(spec.has_gyro, bool) and isinstance(spec.has_mag, bool)
    assert isinstance(spec.device_clock, bool)


@pytest.mark.parametrize("name", NAMES)
def test_start_and_stop_are_writes_to_the_write_characteristic(name: str) -> None:
    p = registry.get(name)
    configs = [_config(p.spec), StreamConfig(rate_hz=p.spec.rates_hz[0])]
    if p.spec.has_mag:
        configs.append(StreamConfig(rate_hz=p.spec.default_rate_hz, mag=True))
    starts = [p.start_sequence(c) for c in configs]
    assert all(starts), f"{name}: empty start sequence"
    # A stop sequence may be empty for a sensor that streams while notifications are enabled (WitMotion).
    for seq in starts + [p.stop_sequence()]:
        for w in seq:
            assert isinstance(w, GattWrite)
            assert w.char_uuid in _writable(p.spec), f"{name}: write to {w.char_uuid}"
            assert isinstance(w.data, bytes) and w.data


@pytest.mark.parametrize("name", NAMES)
def test_decoder_and_peripheral_types(name: str) -> None:
    p = registry.get(name)
    assert isinstance(p.decoder(), Decoder)
    per = p.peripheral()
    assert isinstance(per, PeripheralModel)


# ----------------------------------------------------------------------------------------------------- fuzz


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_every_notify_characteristic(name: str, data) -> None:
    p = registry.get(name)
    spec = p.spec
    dec = p.decoder(**_context(spec, _config(spec)))
    payloads = data.draw(
        st.lists(st.tuples(st.sampled_from(spec.notify_uuids), st.binary(max_size=260)), max_size=4)
    )
    for k, (char, payload) in enumerate(payloads):
        try:
            out = dec.feed(char, payload, t_host_s=10.0 + 0.01 * k)
        except ProtocolError:
            continue
        assert isinstance(out, list)
        assert all(isinstance(b, ImuBatch) for b in out)


# ------------------------------------------------------------------------------------------ peripheral trip


def _running(n: int, rate_hz: float, t0_s: float) -> ImuBatch:
    """Running-like sacral IMU samples: 1.4 Hz stride, about ±1.2 g vertical, ±90 deg/s (device clock)."""
    t = t0_s + np.arange(n) / rate_hz
    ph = 2 * np.pi * 1.4 * t
    acc = np.c_[0.5 * np.sin(ph), 0.3 * np.sin(ph / 2), 1.0 + 1.2 * np.sin(ph)] * G_MPS2
    gyr = np.c_[1.0 * np.sin(ph / 2), 0.5 * np.cos(ph), 1.5 * np.sin(ph / 2 + 1.0)]
    rng = np.random.default_rng(7)
    acc = acc + rng.normal(0, 0.05, acc.shape)
    gyr = gyr + rng.normal(0, 0.01, gyr.shape)
    mag = np.c_[20.0 + np.sin(ph), 5.0 * np.cos(ph), -40.0 + np.zeros(n)]
    return ImuBatch(t_s=t, acc_mps2=acc, gyr_rads=gyr, mag_uT=mag)


@pytest.mark.parametrize("name", NAMES)
def test_peripheral_round_trip(name: str) -> None:
    p = registry.get(name)
    spec = p.spec
    config = _config(spec)
    per = p.peripheral()
    dec = p.decoder(**_context(spec, config))
    for w in p.start_sequence(config):
        for char, payload in per.handle_write(w.char_uuid, w.data):
            if char in spec.notify_uuids:  # start responses carry what decoders need (factors, scales)
                assert all(isinstance(b, ImuBatch) for b in dec.feed(char, payload, t_host_s=0.0))
    assert per.streaming and per.config is not None
    fs = spec.default_rate_hz
    n = int(round(3.0 * fs))
    truth = _running(n, fs, t0_s=250.0)
    notes = per.encode(truth)
    assert notes and all(c in spec.notify_uuids and isinstance(b, bytes) for c, b in notes)
    batches: list[ImuBatch] = []
    for k, (char, payload) in enumerate(notes):
        batches += dec.feed(char, payload, t_host_s=250.0 + 3.0 * (k + 1) / len(notes))
    assert batches
    assert not any(b.gap_before or b.n_lost for b in batches), f"{name}: loss reported on a clean stream"
    acc_tol, gyr_tol = QUANTUM.get(name, COARSEST)
    for key, tol in (("acc_mps2", acc_tol), ("gyr_rads", gyr_tol)):
        parts = [b for b in batches if getattr(b, key) is not None]
        if key == "gyr_rads" and not spec.has_gyro:
            assert not parts
            continue
        assert parts, f"{name}: no {key} decoded"
        got = np.concatenate([getattr(b, key) for b in parts])
        t = np.concatenate([b.t_s for b in parts])
        m = len(got)
        assert n // 2 <= m <= n, f"{name}: {m} of {n} {key} samples came back"
        err = np.abs(got - getattr(truth, key)[:m]).max()
        assert err <= tol, f"{name}: {key} off by {err:.3g} (> {tol:.3g})"
        assert np.isfinite(t).all()
        if parts[0].time_base == "device":
            assert np.all(np.diff(t) > 0)
            # Device time: the spacing of the samples is the truth's, to the clock's resolution (≤ 1 ms).
            dt_err = np.abs(np.diff(t) - np.diff(truth.t_s[:m])).max()
            assert dt_err <= 1e-3 + 1e-9, f"{name}: device time spacing off by {dt_err:.3g} s"
    stop = p.stop_sequence()
    for w in stop:
        per.handle_write(w.char_uuid, w.data)
    if stop:
        assert not per.streaming


@pytest.mark.parametrize("name", NAMES)
def test_sensors_doc_has_a_row_for_every_protocol(repo_dir, name: str) -> None:
    doc = (repo_dir / "docs" / "sensors.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("|") and f"(`{name}`" in line]
    assert rows, f"docs/sensors.md has no table row for `{name}`"
    spec = registry.get(name).spec
    assert f"**{spec.default_rate_hz:g}**" in rows[0], f"{name}: default rate not shown in bold in its row"
