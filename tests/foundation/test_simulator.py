"""Tier-1 truths of the simulator: physics checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from pelvimon.firmware_protocols.batch import G_MPS2
from pelvimon.sensors.simulator import SimParams, simulate


def test_gravity_at_rest_has_magnitude_g() -> None:
    sim = simulate(SimParams.ideal(seconds=4.0, stand_s=3.0))
    stand = sim.batch.t_s < 3.0
    norm = np.linalg.norm(sim.batch.acc_mps2[stand], axis=1)
    assert np.allclose(norm, G_MPS2, atol=1e-9)
    assert np.allclose(sim.batch.gyr_rads[stand], 0.0, atol=1e-12)


def test_seeds_reproduce_and_differ() -> None:
    a = simulate(SimParams(seconds=10.0, seed=3))
    b = simulate(SimParams(seconds=10.0, seed=3))
    c = simulate(SimParams(seconds=10.0, seed=4))
    assert np.array_equal(a.batch.acc_mps2, b.batch.acc_mps2)
    assert np.array_equal(a.batch.gyr_rads, b.batch.gyr_rads)
    assert not np.array_equal(a.batch.acc_mps2, c.batch.acc_mps2)


@pytest.mark.parametrize("gait", ["run", "walk"])
def test_truth_cpd_is_the_knob_in_steady_gait(gait: str) -> None:
    sim = simulate(SimParams.ideal(seconds=20.0, gait=gait, cpd_left_deg=8.0, cpd_right_deg=4.0))
    full = [s for s in sim.truth.steps if s.ramp == 1.0]
    assert len(full) > 10
    for s in full:
        assert s.cpd_deg == pytest.approx(8.0 if s.side == "L" else 4.0, abs=1e-12)
