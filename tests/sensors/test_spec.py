"""--sensor spec strings: parsing, one-line errors, and an emulated source built from one."""

from __future__ import annotations

import asyncio

import pytest

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.spec import SpecError, open_source, parse_spec


def test_emulated_spec_with_faults_and_simulator_knobs() -> None:
    s = parse_spec("emulated:movesense?loss=0.05&disconnect_at=12,30&cpd_left=8&cadence=170&seed=1&speed=4")
    assert s.kind == "emulated" and s.target == "movesense"
    assert s.options == {
        "loss": 0.05,
        "disconnect_at": (12.0, 30.0),
        "cpd_left": 8.0,
        "cadence": 170.0,
        "seed": 1,
        "speed": 4.0,
    }


def test_hardware_specs() -> None:
    assert parse_spec("AA:BB:CC:DD:EE:FF").kind == "ble"
    s = parse_spec("Movesense 223430000123?protocol=movesense")
    assert (s.target, s.options) == ("Movesense 223430000123", {"protocol": "movesense"})


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("emulated:movesense?los=0.1", "unknown option 'los'"),
        ("emulated:nosuch", "unknown emulated protocol 'nosuch'"),
        ("emulated:movesense?loss=abc", "not a number"),
        ("AA:BB:CC:DD:EE:FF?rate=3", "unknown option 'rate'"),
        ("", "empty"),
    ],
)
def test_bad_specs_give_one_line_errors(spec: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    if "unknown option 'los'" in msg:
        assert "loss" in msg and "cpd_left" in msg and "disconnect_at" in msg  # lists the valid keys


def test_bad_fault_value_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="loss must be in"):
        open_source("emulated:movesense?loss=2")


def test_open_source_streams_an_emulated_sensor() -> None:
    async def run() -> tuple[int, float]:
        src = open_source("emulated:pelvimon?speed=20&cpd_left=9&seconds=20", rate_hz=100)
        n = 0
        async with src:
            async for ev in src:
                if isinstance(ev, ImuBatch):
                    n += len(ev)
                    if n >= 300:
                        break
        return n, src.info.rate_hz

    n, rate = asyncio.run(run())
    assert n >= 300 and rate == 100.0
