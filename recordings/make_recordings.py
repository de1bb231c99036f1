"""Make every file of ``recordings/``: emulated sessions and converted real data, deterministically.

    python recordings/make_recordings.py            # everything (about a minute)
    python recordings/make_recordings.py --only emulated|running|orientation
    python recordings/make_recordings.py --check    # make everything in a temporary folder and compare
                                                    # with recordings/SHA256SUMS (nothing is overwritten)

What it makes (described file by file in ``recordings/README.md``):

* ``emulated/<protocol>_*.mcap``: one session per protocol, recorded through the path ``pelvimon record``
  uses: ``SessionEngine(open_source("emulated:PROTOCOL?..."), record_to=..., seconds=...)``. The emulated
  sensor, its bleak backend, the BLE client, the decoders, the session clock, the live analysis and the
  session writer are the real ones. Two things make the result reproducible to the byte:

  - time is virtual: the asyncio loop runs on a clock that jumps straight to the next timer instead of
    waiting, and the emulated world and the BLE client read that clock, so host receive times, connection
    events and the fault schedule do not depend on how busy the machine is (and a minute of session
    takes a few seconds);
  - the recorded file is then copied message by message into the final file with a fixed session start
    (``START_UNIX_NS``) and chunks cut by size only (the live writer closes a chunk every second of wall
    time). Every message body and every host receive time is kept exactly; ``extra`` in the header gains
    the spec string and this script's name.

* ``running/alcantara_*.mcap`` + ``*.reference.json``: treadmill running trials of the Alcantara et al.
  data set (Apache-2.0), sacral accelerometer as a session file, force-treadmill contacts beside it.
* ``orientation/broad_*.mcap`` + ``*.reference.json``: two trimmed BROAD trials (CC BY 4.0), IMU as a
  session file, the optical reference orientation beside it.

The real data are read from ``../shared/datasets`` (the folder next to the repository) or ``--datasets``.
After making the files the script rewrites ``recordings/SHA256SUMS``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import selectors
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch
from pelvimon.sensors.session_file import (
    SessionReader,
    SessionWriter,
)
from pelvimon.sensors.source import SourceInfo, SourceStatus

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATASETS = REPO.parent / "shared" / "datasets"

START_UNIX_NS = 1_767_225_600_000_000_000
"""Session start written into every file: 2026-01-01T00:00:00Z (the real start time would change the bytes)."""

MADE_BY = "recordings/make_recordings.py"


# ------------------------------------------------------------------------------------------ emulated
@dataclass(frozen=True)
class EmulatedSession:
    """One emulated recording: file stem, protocol, spec options, session seconds and what it shows."""

    stem: str
    protocol: str
    options: str
    seconds: float
    shows: str

    @property
    def spec(self) -> str:
        return f"emulated:{self.protocol}?{self.options}"


EMULATED: tuple[EmulatedSession, ...] = (
    EmulatedSession(
        "movesense_weak_left_glute", "movesense", "speed=20&seed=3&sim_seed=3&cpd_left=8&cpd_right=4", 55.0,
        "weak left hip abductors: left-stance CPD 8 deg, right 4 deg; a left CPD alert",
    ),
    EmulatedSession(
        "movesense_loss_disconnect", "movesense",
        "speed=20&seed=5&sim_seed=5&cpd_left=6&cpd_right=6&loss=0.05&disconnect_at=20", 50.0,
        "5 % of notifications lost and a link drop at 20 s (1 s down, then reconnect): gaps",
    ),
    EmulatedSession(
        "polar_pmd_symmetric", "polar_pmd", "speed=20&seed=1&sim_seed=1&cpd_left=5&cpd_right=5", 50.0,
        "symmetric runner (CPD 5 deg both sides), Polar PMD at 52 Hz",
    ),
    EmulatedSession(
        "metawear_weak_right_glute", "metawear", "speed=20&seed=2&sim_seed=2&cpd_left=4&cpd_right=8", 55.0,
        "weak right hip abductors: right-stance CPD 8 deg, left 4 deg; host-timed protocol (no device clock)",
    ),
    EmulatedSession(
        "witmotion_symmetric", "witmotion", "speed=20&seed=4&sim_seed=4&cpd_left=5&cpd_right=5", 50.0,
        "symmetric runner, WitMotion WT901BLE at 100 Hz (host-timed)",
    ),
    EmulatedSession(
        "movella_dot_fast_cadence", "movella_dot",
        "speed=20&seed=6&sim_seed=6&cadence=190&cpd_left=5&cpd_right=6", 50.0,
        "cadence 190 steps/min, Movella DOT at 60 Hz",
    ),
    EmulatedSession(
        "pelvimon_weak_left_glute", "pelvimon", "speed=20&seed=7&sim_seed=7&cpd_left=9&cpd_right=4", 50.0,
        "pelvimon reference firmware at 200 Hz, weak left hip abductors (CPD 9 vs 4 deg)",
    ),
)


class _VirtualSelector:
    """A selector that never waits for a timer: it moves the loop's virtual clock forward instead."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = self._inner.select(0)
        if ready or timeout is None:
            return ready or self._inner.select(timeout)
        if timeout > 0:
            self._loop.virtual_s += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: ``time()`` only advances when every task waits for a timer."""

    def __init__(self) -> None:
        super().__init__()
        self.virtual_s = 0.0
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[arg-type, has-type]

    def time(self) -> float:
        return self.virtual_s


class VirtualClock:
    """The emulation clock on a :class:`VirtualTimeLoop` (same interface as ``EmulatedClock``)."""

    def __init__(self, loop: VirtualTimeLoop, speed: float) -> None:
        self.loop = loop
        self.speed = float(speed)
        self.max_lag_s = None
        self.paused_s = 0.0
        self._t0 = loop.time()

    def now(self) -> float:
        return (self.loop.time() - self._t0) * self.speed

    def restart(self) -> None:
        self._t0 = self.loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)


class _GiveLoop(asyncio.DefaultEventLoopPolicy):
    """Hands ``asyncio.run`` (inside ``SessionEngine.run``) the prepared virtual-time loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._given = loop

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return self._given


def record_emulated(session: EmulatedSession, path: Path) -> dict[str, Any]:
    """Record one emulated session into ``path`` (through a raw file in a temporary folder)."""
    from pelvimon.engine import SessionEngine
    from pelvimon.sensors.spec import open_source

    loop = VirtualTimeLoop()
    src = open_source(session.spec)
    world = src.backend_kwargs["world"]
    clock = VirtualClock(loop, world.clock.speed)
    world.clock = clock
    for s in world.sensors:
        s.clock = clock
    src.timebase = clock
    old_policy = asyncio.get_event_loop_policy()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.mcap"
        eng = SessionEngine(src, record_to=raw, seconds=session.seconds, name=session.stem)
        asyncio.set_event_loop_policy(_GiveLoop(loop))
        try:
            eng.run()
        finally:
            asyncio.set_event_loop_policy(old_policy)
        extra = {"spec": session.spec, "seconds": session.seconds, "shows": session.shows, "made_by": MADE_BY}
        copy_session(raw, path, extra)
    return {"n_samples": eng.n_samples, "n_lost": eng.n_lost, "n_raw": eng.n_raw, "n_steps": len(eng.steps),
            "alerts": [(a.metric, a.side, round(a.t_start_s, 2)) for a in eng.alerts]}


def copy_session(src: Path, dst: Path, extra: dict[str, Any]) -> None:
    """Copy every message of a session file into a new one with the fixed start and size-cut chunks."""
    reader = SessionReader(src)
    header = reader.header
    if dst.exists():
        dst.unlink()
    with SessionWriter(dst, header.source, start_unix_ns=START_UNIX_NS, flush_interval_s=float("inf"),
                       extra={**header.extra, **extra}) as w:
        for item in reader.items():
            w.write_item(item)
    if not reader.complete or reader.damage:
        raise RuntimeError(f"{src}: the recording did not close cleanly ({reader.damage})")


# ------------------------------------------------------------------------------------------ running
RUNNING_DIR = "alcantara_running_sacral_grf"
RUNNING_CONDITIONS: tuple[tuple[float, float], ...] = ((2.5, 0.0), (3.33, 0.0), (4.17, 0.0), (3.33, 10.0), (3.33, -10.0))
"""(speed m/s, slope deg) of the converted trials; the first trial of each condition in the data set's order."""
RUNNING_FS_HZ = 500.0
RUNNING_ATTRIBUTION = (
    "R.S. Alcantara et al., 'Predicting continuous ground reaction "
    "forces from accelerometers during uphill and downhill running: a recurrent neural network solution', "
    "PeerJ 10:e12752 (2022); data: github.com/alcantarar/Recurrent_GRF_Prediction (data/, commit 8f21836), "
    "Apache License 2.0"
)
RUNNING_AXES = {
    "x": "anterior-posterior sacral acceleration (the authors' AP channel, sign convention not documented)",
    "y": "NOT MEASURED: filled with zeros (the data set has no medio-lateral channel)",
    "z": "vertical sacral acceleration (clipped at 0 g by the authors: about 17 % zeros, mostly in flight)",
}


def _validate_module(repo: Path = REPO) -> Any:
    """``benchmarks/validate.py`` as a module (its reference-contact rule is the one used here)."""
    path = repo / "benchmarks" / "validate.py"
    spec = importlib.util.spec_from_file_location("pelvimon_benchmarks_validate", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def running_trials(info: Any) -> list[int]:
    """Row index of the first trial of each condition in :data:`RUNNING_CONDITIONS`."""
    out = []
    for speed, slope in RUNNING_CONDITIONS:
        rows = np.flatnonzero(np.isclose(info["Speed"].to_numpy(), speed) & np.isclose(info["Slope"].to_numpy(), slope))
        if rows.size == 0:
            raise RuntimeError(f"no running trial at {speed} m/s and {slope} deg")
        out.append(int(rows[0]))
    return out


def running_stem(speed: float, slope: float, trial: int) -> str:
    grade = "level" if slope == 0 else (f"up{slope:g}deg" if slope > 0 else f"down{-slope:g}deg")
    return f"alcantara_{speed:.2f}mps_{grade}_trial{trial:02d}".replace(".", "p", 1)


def _round(a: np.ndarray, decimals: int) -> list[Any]:
    """Rows as lists with NaN as None (strict JSON)."""
    r = np.round(np.asarray(a, dtype=np.float64), decimals)
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.atleast_2d(r)]


def write_imu_session(path: Path, info: SourceInfo, extra: dict[str, Any], t_s: np.ndarray, acc: np.ndarray,
                      gyr: np.ndarray | None = None, mag: np.ndarray | None = None, block: int = 50) -> None:
    """Samples as a session file: ``/imu`` messages of ``block`` samples on session time, nothing else."""
    if path.exists():
        path.unlink()
    with SessionWriter(path, info, start_unix_ns=START_UNIX_NS, flush_interval_s=float("inf"), extra=extra) as w:
        w.write_status(SourceStatus("connected", float(t_s[0]), f"converted from {info.name}"))
        for a in range(0, t_s.size, block):
            sl = slice(a, a + block)
            w.write_batch(ImuBatch(
                t_s=t_s[sl], acc_mps2=acc[sl], gyr_rads=None if gyr is None else gyr[sl],
                mag_uT=None if mag is None else mag[sl], time_base="session",
            ))
        w.write_status(SourceStatus("stopped", float(t_s[-1]), "end of the converted trial"))


def make_running(out: Path, datasets: Path) -> list[str]:
    """The running trials as session files with their force-plate reference."""
    v = _validate_module()
    data_dir = datasets / RUNNING_DIR
    acc_v, acc_ap, grf, info = v.load_running(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for k in running_trials(info):
        speed, slope = float(info["Speed"][k]), float(info["Slope"][k])
        stem = running_stem(speed, slope, k)
        n = acc_v.shape[1]
        t = np.arange(n) / RUNNING_FS_HZ
        acc = np.column_stack([acc_ap[k], np.zeros(n), acc_v[k]]) * G_MPS2
        meta = {
            "dataset": RUNNING_DIR,
            "trial_index": k,
            "speed_mps": speed,
            "slope_deg": slope,
            "licence": "Apache-2.0",
            "attribution": RUNNING_ATTRIBUTION,
            "axes": RUNNING_AXES,
            "units": "source in g, stored as m/s^2 (x 9.80665); already filtered by the authors",
            "ml_axis_measured": False,
            "reference": f"{stem}.reference.json",
        }
        src = SourceInfo(name=f"Alcantara sacral accelerometer, trial {k}", protocol="alcantara_sacral",
                         rate_hz=RUNNING_FS_HZ, has_gyro=False, address="", metadata=meta)
        write_imu_session(out / f"{stem}.mcap", src, {"made_by": MADE_BY}, t, acc)
        contacts = v.reference_contacts(grf[k], RUNNING_FS_HZ)
        steps = v.reference_steps(grf[k], RUNNING_FS_HZ)
        ref = {
            "what": "foot contacts from the force-instrumented treadmill (force normal to the belt, both feet)",
            "recording": f"{stem}.mcap",
            "dataset": RUNNING_DIR,
            "trial_index": k,
            "speed_mps": speed,
            "slope_deg": slope,
            "fs_hz": RUNNING_FS_HZ,
            "rule": {
                "grf_threshold_bw": v.GRF_THRESHOLD_BW,
                "merge_flight_shorter_than_s": 0.02,
                "drop_contact_shorter_than_s": 0.06,
                "ic": "rising crossing of the threshold", "to": "falling crossing",
                "same_as": "benchmarks/validate.py reference_contacts / reference_steps",
            },
            "match_tolerance_s": v.RUN_TOL_S,
            "contacts_ic_to_s": _round(contacts, 4),
            "steps_ic_to_s": _round(steps, 4),
            "steps_note": "contacts followed by another rising edge inside the trial (the scored reference)",
            "side": "unknown (the force signal does not tell left from right)",
            "licence": "Apache-2.0",
            "attribution": RUNNING_ATTRIBUTION,
        }
        (out / f"{stem}.reference.json").write_text(json.dumps(ref, indent=1) + "\n")
        made.append(stem)
    return made


# ------------------------------------------------------------------------------------------ orientation
BROAD_DIR = "broad_orientation"
BROAD_TRIALS: tuple[tuple[str, str], ...] = (
    ("02_undisturbed_slow_rotation_B", "slow_rotation"),
    ("16_undisturbed_fast_translation_B", "fast_translation"),
)
BROAD_REST_S = 5.0
"""Seconds of rest kept before the movement phase starts."""
BROAD_MOVE_S = 25.0
"""Seconds of the movement phase kept."""
BROAD_ATTRIBUTION = (
    "D. Laidig, M. Caruso, A. Cereatti, T. Seel, 'BROAD - A Benchmark for Robust Inertial Orientation "
    "Estimation', Data 6(7):72 (2021), https://doi.org/10.3390/data6070072; data: github.com/dlaidig/broad "
    "(data_hdf5/, commit 7e2f818), CC BY 4.0"
)


def make_orientation(out: Path, datasets: Path) -> list[str]:
    """Trimmed BROAD trials as session files with the optical reference orientation beside them."""
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    made = []
    for trial, short in BROAD_TRIALS:
        with h5py.File(datasets / BROAD_DIR / f"{trial}.hdf5", "r") as f:
            fs = float(f.attrs["sampling_rate"])
            acc, gyr, mag = (np.asarray(f[k][()], dtype=np.float64) for k in ("imu_acc", "imu_gyr", "imu_mag"))
            quat = np.asarray(f["opt_quat"][()], dtype=np.float64)
            moving = np.asarray(f["movement"][()], dtype=bool)
        k_move = int(np.argmax(moving))
        k0 = max(k_move - int(round(BROAD_REST_S * fs)), 0)
        k1 = min(k_move + int(round(BROAD_MOVE_S * fs)), acc.shape[0])
        sl = slice(k0, k1)
        n = k1 - k0
        t = np.arange(n) / fs
        stem = f"broad_{trial[:2]}_{short}"
        meta = {
            "dataset": BROAD_DIR,
            "trial": trial,
            "first_sample": k0,
            "n_samples": n,
            "trim": f"samples {k0}..{k1 - 1} of the original file: {BROAD_REST_S:g} s of rest before the "
                    f"movement phase and its first {BROAD_MOVE_S:g} s",
            "frame": "IMU frame of the data set; reference orientation rotates IMU-frame vectors into ENU",
            "licence": "CC BY 4.0",
            "attribution": BROAD_ATTRIBUTION,
            "reference": f"{stem}.reference.json",
        }
        src = SourceInfo(name=f"BROAD {trial}", protocol="broad", rate_hz=fs, has_gyro=True, address="",
                         metadata=meta)
        write_imu_session(out / f"{stem}.mcap", src, {"made_by": MADE_BY}, t, acc[sl], gyr[sl], mag[sl])
        ref = {
            "what": "optical (OptiTrack) orientation of the IMU, sample by sample with the session's /imu samples",
            "recording": f"{stem}.mcap",
            "dataset": BROAD_DIR,
            "trial": trial,
            "first_sample": k0,
            "fs_hz": fs,
            "t0_s": 0.0,
            "quat_convention": "scalar first [w, x, y, z], unit, rotates IMU-frame vectors into ENU (z up)",
            "quat_wxyz": _round(quat[sl], 7),
            "quat_note": "null rows: optical markers occluded; values rounded to 7 decimals",
            "movement": np.asarray(moving[sl], dtype=int).tolist(),
            "movement_note": "1 = sample of the movement phase (the paper scores errors on these only)",
            "licence": "CC BY 4.0",
            "attribution": BROAD_ATTRIBUTION,
        }
        (out / f"{stem}.reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
        made.append(stem)
    return made


# ------------------------------------------------------------------------------------------ checksums
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_files(root: Path) -> list[Path]:
    """Every data file of the folder (sessions and references), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".mcap", ".json"))


def write_sums(root: Path) -> str:
    lines = [f"{sha256(p)}  {p.relative_to(root).as_posix()}" for p in data_files(root)]
    text = "\n".join(lines) + "\n"
    (root / "SHA256SUMS").write_text(text)
    return text


def make_all(root: Path, datasets: Path, only: str | None = None, verbose: bool = True) -> None:
    if only in (None, "emulated"):
        (root / "emulated").mkdir(parents=True, exist_ok=True)
        for s in EMULATED:
            stats = record_emulated(s, root / "emulated" / f"{s.stem}.mcap")
            if verbose:
                print(f"emulated/{s.stem}.mcap: {stats}")
    if only in (None, "running"):
        for stem in make_running(root / "running", datasets):
            if verbose:
                print(f"running/{stem}.mcap")
    if only in (None, "orientation"):
        for stem in make_orientation(root / "orientation", datasets):
            if verbose:
                print(f"orientation/{stem}.mcap")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("emulated", "running", "orientation"), default=None)
    ap.add_argument("--datasets", type=Path, default=DATASETS, help="the shared datasets folder")
    ap.add_argument("--check", action="store_true", help="make everything elsewhere and compare with SHA256SUMS")
    args = ap.parse_args(argv)
    if not args.datasets.is_dir() and args.only != "emulated":
        print(f"datasets folder not found: {args.datasets} (give --datasets)", file=sys.stderr)
        return 1
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_all(root, args.datasets, verbose=False)
            made = write_sums(root)
        want = (HERE / "SHA256SUMS").read_text()
        if made == want:
            print("every file made again is identical to recordings/SHA256SUMS")
            return 0
        diff = sorted(set(made.splitlines()) ^ set(want.splitlines()))
        print("differences (sum  file):\n" + "\n".join(diff))
        return 1
    make_all(HERE, args.datasets, args.only)
    print(write_sums(HERE), end="")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
