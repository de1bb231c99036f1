"""The committed recordings in ``recordings/``: intact, readable, replayable and analysable, each against
the truth it carries (simulator parameters in the spec, force-treadmill contacts, optical orientation).

Golden files: a missing, added or changed file fails the checksum test; nothing here regenerates them
(``python recordings/make_recordings.py`` does, by hand).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pelvimon.cli import main as cli_main
from pelvimon.dsp._gait_eval import match_times
from pelvimon.dsp.records import Alert, Step
from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch
from pelvimon.sensors.replay import ReplaySource
from pelvimon.sensors.session_file import SessionReader
from pelvimon.sensors.simulator import SimParams
from pelvimon.sensors.source import SourceStatus
from pelvimon.sensors.spec import SIM_ALIASES, parse_spec

REC = Path(__file__).resolve().parents[2] / "recordings"
EMULATED = sorted((REC / "emulated").glob("*.mcap"))
RUNNING = sorted((REC / "running").glob("*.mcap"))
ORIENTATION = sorted((REC / "orientation").glob("*.mcap"))
SESSIONS = EMULATED + RUNNING + ORIENTATION


def _id(p: Path) -> str:
    return p.stem


def _sums() -> dict[str, str]:
    path = REC / "SHA256SUMS"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    out = {}
    for line in path.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        out[name.strip()] = digest
    return out


def _batches(path: Path) -> list[ImuBatch]:
    return [i for i in SessionReader(path).items() if isinstance(i, ImuBatch)]


def _analyze_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    code = cli_main(["analyze", "--json", str(path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _spec_truth(path: Path) -> tuple[dict[str, Any], SimParams]:
    """The spec options the session was recorded with and the simulator parameters they mean."""
    spec = SessionReader(path).header.extra["spec"]
    opts = parse_spec(spec).options
    sim = {SIM_ALIASES.get(k, k): v for k, v in opts.items() if k in SIM_ALIASES or k in ("cadence", "gait")}
    return opts, SimParams(**sim)


# -- integrity ----------------------------------------------------------------------------------------
def test_the_folder_holds_what_the_task_needs() -> None:
    protocols = {SessionReader(p).header.source.protocol for p in EMULATED}
    assert protocols == set(registry.available())
    assert len(RUNNING) >= 3 and len(ORIENTATION) >= 1
    assert all(p.with_suffix(".reference.json").is_file() for p in RUNNING + ORIENTATION)
    total = sum(p.stat().st_size for p in REC.rglob("*") if p.is_file())
    assert total < 12e6
    assert max(p.stat().st_size for p in SESSIONS) < 1.5e6


def test_checksums_match_every_data_file_and_nothing_is_unlisted() -> None:
    sums = _sums()
    present = {p.relative_to(REC).as_posix() for p in REC.rglob("*") if p.is_file() and p.suffix in (".mcap", ".json")}
    assert set(sums) == present, f"unlisted: {sorted(present - set(sums))}; missing: {sorted(set(sums) - present)}"
    for name, digest in sums.items():
        assert hashlib.sha256((REC / name).read_bytes()).hexdigest() == digest, f"{name} changed"


@pytest.mark.parametrize("path", SESSIONS, ids=_id)
def test_every_session_file_reads_completely(path: Path) -> None:
    reader = SessionReader(path)
    items = list(reader.items())
    assert reader.complete and reader.damage is None
    assert reader.header.extra["made_by"] == "recordings/make_recordings.py"
    batches = [i for i in items if isinstance(i, ImuBatch)]
    t = np.concatenate([b.t_s for b in batches])
    assert t.size > 1000 and np.all(np.diff(t) > 0)
    rate = reader.header.source.rate_hz
    # the session's samples (received or counted lost) cover its duration at the nominal rate
    n_lost = sum(b.n_lost for b in batches)
    assert (t.size + n_lost) == pytest.approx((t[-1] - t[0]) * rate + 1, rel=0.01)


# -- emulated sessions ------------------------------------------------------------------------------------
async def _replay(path: Path) -> tuple[list[ImuBatch], list[SourceStatus]]:
    batches, status = [], []
    async with ReplaySource(path) as src:
        assert src.redecoding
        async for ev in src:
            if isinstance(ev, ImuBatch):
                batches.append(ev)
            elif isinstance(ev, SourceStatus):
                status.append(ev)
    return batches, status


@pytest.mark.parametrize("path", EMULATED, ids=_id)
def test_emulated_sessions_decode_again_to_exactly_the_recorded_samples(path: Path) -> None:
    recorded = _batches(path)
    replayed, status = asyncio.run(_replay(path))
    assert len(replayed) == len(recorded) > 0
    for a, b in zip(recorded, replayed, strict=True):
        assert np.array_equal(a.t_s, b.t_s)
        assert np.array_equal(a.acc_mps2, b.acc_mps2)
        assert np.array_equal(a.gyr_rads, b.gyr_rads)
        assert a.gap_before == b.gap_before and a.n_lost == b.n_lost
    opts, _ = _spec_truth(path)
    n_lost = sum(b.n_lost for b in recorded)
    if opts.get("loss") or opts.get("disconnect_at"):
        kinds = {s.kind for s in status}
        assert {"gap", "disconnected", "reconnecting"} <= kinds
        # the counted loss fits the injected faults: at least the lost notifications' share; at most four
        # times it (a sample may need two notifications, and a decoder may drop a neighbouring packet it
        # cannot prove whole) plus the samples of the link's down time
        total = n_lost + sum(len(b) for b in recorded)
        t_down = next(s.t_s for s in status if s.kind == "disconnected")
        t_up = next(s.t_s for s in status if s.kind == "connected" and s.t_s > t_down)
        rate = SessionReader(path).header.source.rate_hz
        assert opts["loss"] * total < n_lost < 4 * opts["loss"] * total + (t_up - t_down + 0.1) * rate
    else:
        assert n_lost == 0 and not any(b.gap_before for b in recorded)


@pytest.mark.parametrize("path", EMULATED, ids=_id)
def test_analyze_finds_the_simulated_gait_and_the_alerts_it_implies(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _analyze_json(path, capsys)
    opts, sim = _spec_truth(path)
    assert out["summary"]["n_steps"] > 80
    assert out["summary"]["cadence_spm"] == pytest.approx(sim.cadence, rel=0.02)
    assert out["quality"]["calibration_state"] == "calibrated"
    cpd = [a for a in out["alerts"] if a["metric"] == "cpd_deg"]
    diff = sim.cpd_left_deg - sim.cpd_right_deg
    if abs(diff) >= 4:
        assert cpd and cpd[0]["side"] == ("L" if diff > 0 else "R")
        assert cpd[0]["left_value"] - cpd[0]["right_value"] == pytest.approx(diff, abs=1.5)
    else:
        assert cpd == []
    # the live analysis found steps and the alerts too when it recorded the session
    items = list(SessionReader(path).items())
    assert sum(isinstance(i, Step) for i in items) > 80
    live_cpd = [a for a in items if isinstance(a, Alert) and a.metric == "cpd_deg"]
    assert [a.side for a in live_cpd[:1]] == [a["side"] for a in cpd[:1]]



@pytest.mark.parametrize("path", EMULATED, ids=_id)
def test_the_steps_recorded_live_are_those_of_the_current_analysis(path: Path) -> None:
    """The steps stored in a sample session are what ``pelvimon analyze`` finds in its samples today, so that
    ``review`` (stored steps) and ``analyze`` (recomputed) of a shipped file agree. Fails when the analysis
    changed and the recordings were not made again (``python recordings/make_recordings.py --only emulated``).
    The same steps, with values equal to 1e-9 relative: another CPU's vector units may round the last bit of a
    sum differently (same code, same numpy)."""
    from pelvimon.analysis import analyze_file

    stored = [i for i in SessionReader(path).items() if isinstance(i, Step)]
    fresh = analyze_file(path).steps
    assert len(stored) == len(fresh)
    for a, b in zip(stored, fresh, strict=True):
        for f in dataclasses.fields(Step):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, float):
                assert x == pytest.approx(y, rel=1e-9, abs=1e-12, nan_ok=True), (f.name, a, b)
            else:
                assert x == y, (f.name, a, b)


# -- real running --------------------------------------------------------------------------------------
def _reference(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".reference.json").read_text())


def test_running_recordings_score_against_the_force_treadmill(capsys: pytest.CaptureFixture[str]) -> None:
    tp = n_det = n_ref = 0
    for path in RUNNING:
        ref = _reference(path)
        out = _analyze_json(path, capsys)
        ics = np.array([s["t_ic_s"] for s in out["steps"] if not s["gap"]])
        ref_ic = np.array(ref["steps_ic_to_s"], dtype=float)[:, 0]
        m = match_times(ics, ref_ic, ref["match_tolerance_s"])
        # (each excerpt starts mid-run: soft steps before the step period is known are found too)
        assert m.f1 >= 0.95, f"{path.name}: F1 {m.f1:.3f}"
        tp, n_det, n_ref = tp + m.tp, n_det + m.n_det, n_ref + m.n_ref
    f1 = 2 * tp / (n_det + n_ref)
    assert f1 >= 0.98, f"pooled F1 {f1:.3f} (tp {tp}, det {n_det}, ref {n_ref})"


def test_running_conversion_keeps_the_data_set_and_its_reference_rule(shared_dir: Path) -> None:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("_recordings_validate", REC.parent / "benchmarks" / "validate.py")
    assert spec is not None and spec.loader is not None
    v = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = v  # dataclasses look their module up while the file executes
    spec.loader.exec_module(v)
    acc_v, acc_ap, grf, info = v.load_running(shared_dir / "datasets" / "alcantara_running_sacral_grf")
    for path in RUNNING:
        ref = _reference(path)
        k = ref["trial_index"]
        header = SessionReader(path).header
        assert header.source.metadata["ml_axis_measured"] is False
        assert (float(info["Speed"][k]), float(info["Slope"][k])) == (ref["speed_mps"], ref["slope_deg"])
        acc = np.concatenate([b.acc_mps2 for b in _batches(path)])
        assert np.array_equal(acc[:, 0], acc_ap[k] * G_MPS2)
        assert np.array_equal(acc[:, 1], np.zeros(acc.shape[0]))
        assert np.array_equal(acc[:, 2], acc_v[k] * G_MPS2)
        assert ref["match_tolerance_s"] == v.RUN_TOL_S and ref["rule"]["grf_threshold_bw"] == v.GRF_THRESHOLD_BW
        assert np.allclose(ref["contacts_ic_to_s"], v.reference_contacts(grf[k], 500.0), atol=1e-4)
        assert np.allclose(ref["steps_ic_to_s"], v.reference_steps(grf[k], 500.0), atol=1e-4)


# -- real orientation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ORIENTATION, ids=_id)
def test_orientation_reference_lines_up_with_the_samples(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _reference(path)
    header = SessionReader(path).header
    assert header.source.rate_hz == pytest.approx(285.714, abs=1e-3) == ref["fs_hz"]
    b = ImuBatch.concat(_batches(path))
    q = np.array([[np.nan] * 4 if r is None or r[0] is None else r for r in ref["quat_wxyz"]], dtype=float)
    moving = np.array(ref["movement"], dtype=bool)
    assert q.shape == (len(b), 4) and moving.size == len(b)
    assert b.mag_uT is not None and b.gyr_rads is not None
    # at rest, the reference orientation maps the measured specific force onto ENU up
    rest = ~moving & np.isfinite(q[:, 0])
    assert rest.sum() > 500
    up = Rotation.from_quat(q[rest][:, [1, 2, 3, 0]]).apply(b.acc_mps2[rest])
    ang = np.degrees(np.arccos(np.clip(up[:, 2] / np.linalg.norm(up, axis=1), -1, 1)))
    assert np.median(ang) < 2.0
    # the reference's angular rate fits the gyroscope sample by sample, and much worse when either is
    # shifted by a tenth of a second: the two streams are paired as in the data set
    mv = np.flatnonzero(moving & np.all(np.isfinite(q), axis=1))
    dt = 1.0 / ref["fs_hz"]
    qa = Rotation.from_quat(q[mv[:-1]][:, [1, 2, 3, 0]])
    qb = Rotation.from_quat(q[mv[:-1] + 1][:, [1, 2, 3, 0]])
    ok = np.flatnonzero(np.isfinite(q[mv[:-1] + 1, 0]))
    w_ref = (qa[ok].inv() * qb[ok]).as_rotvec() / dt
    w_imu = b.gyr_rads[mv[:-1]][ok]
    aligned = np.median(np.linalg.norm(w_ref - w_imu, axis=1))
    ahead = np.median(np.linalg.norm(w_ref[:-28] - w_imu[28:], axis=1))
    behind = np.median(np.linalg.norm(w_ref[28:] - w_imu[:-28], axis=1))
    assert aligned < 0.5 * min(ahead, behind)
    # analyze runs on it (hand-held motion, not gait: no step count asserted)
    out = _analyze_json(path, capsys)
    assert out["quality"]["n_samples"] == len(b)
