"""Real treadmill running (alcantara_running_sacral_grf): contacts from the sacral accelerometer alone,
scored against the force treadmill (see benchmarks/validate.py for the reference and matching rules)."""

import importlib.util
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def validate(repo_dir):
    spec = importlib.util.spec_from_file_location("pelvimon_validate", repo_dir / "benchmarks" / "validate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_running_contacts_against_force(shared_dir, validate):
    d = shared_dir / "datasets" / "alcantara_running_sacral_grf"
    av, aap, grf, info = validate.load_running(d)
    # every speed and slope is represented in this subset
    trials = list(range(0, 31, 2))
    assert len(set(info.Slope[trials])) == 5 and len(set(info.Speed[trials])) == 3
    sc = [validate.score_running_trial(av[k], aap[k], grf[k]) for k in trials]
    tp = sum(s.tp for s in sc)
    f1 = 2 * tp / sum(s.n_det + s.n_ref for s in sc)
    ic = np.concatenate([s.ic_err_s for s in sc])
    ct = np.concatenate([s.contact_err_s for s in sc])
    assert f1 >= 0.97
    assert np.median(np.abs(ic)) <= 0.020
    # contact time: the target is 25 ms RMSE; this subset measures 21.4 ms, all 31 trials 21.8 ms (25.0 and
    # 25.1 ms when a two-stage rise was timed at its second, steeper stage); the median error is -11 ms
    assert np.sqrt(np.nanmean(ct**2)) <= 0.023
    assert abs(np.nanmedian(ct)) <= 0.015
    # the toe-off rule does not follow the slope: the mean error per slope spans 20 ms here (31 ms with the
    # earlier rule at a fixed 1 g level, which read +10 deg steps long and level ones short)
    slope = np.concatenate([np.full(s.contact_err_s.shape, info.Slope[k]) for k, s in zip(trials, sc, strict=True)])
    per_slope = [np.nanmean(ct[slope == x]) for x in np.unique(slope)]
    assert max(per_slope) - min(per_slope) <= 0.022
