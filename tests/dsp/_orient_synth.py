"""Exact synthetic IMU signals of a rigid pelvis with known angles, for self-checks of calibration and
orientation (independent of the full gait simulator).

Quaternions scalar first ``[w, x, y, z]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from pelvimon.firmware_protocols.batch import G_MPS2


@dataclass(frozen=True)
class SynthRun:
    """Synthetic samples and their truth."""

    t_s: np.ndarray
    acc_mps2: np.ndarray  # (N, 3) sensor frame
    gyr_rads: np.ndarray  # (N, 3) sensor frame
    tilt_deg: np.ndarray
    obliquity_deg: np.ndarray
    rotation_deg: np.ndarray  # relative to the running direction
    heading_deg: np.ndarray  # running direction in the world frame
    mount_quat_wxyz: np.ndarray  # sensor -> pelvis
    t_ic_s: np.ndarray  # initial contacts (alternating L, R, starting with L)
    contact_s: float


def synth_run(
    rate_hz: float = 200.0,
    stand_s: float = 3.0,
    run_s: float = 20.0,
    cadence_spm: float = 170.0,
    mount_quat_wxyz: np.ndarray | None = None,
    heading_drift_dps: float = 0.0,
    turns: tuple[tuple[float, float, float], ...] = (),
    tilt_amp_deg: float = 3.0,
    obliquity_amp_deg: float = 4.0,
    rotation_amp_deg: float = 6.0,
    run_tilt_deg: float = 5.0,
    contact_frac: float = 0.38,
    noise_acc: float = 0.0,
    noise_gyr: float = 0.0,
    bias_gyr: np.ndarray | None = None,
    seed: int = 0,
) -> SynthRun:
    """Stand still for ``stand_s`` (all angles 0), then run for ``run_s`` with stride-locked motion.

    The world linear acceleration during running follows a simple spring-mass pattern: during each stance
    a half-sine vertical specific force (mean 1 g over the step), an anterior-posterior force that brakes
    in the first half of stance and propels in the second, and a medio-lateral force towards the stance
    side; zero specific force in flight. ``turns``: ``(start s, duration s, angle deg)`` each, turns of
    the running direction (left for a positive angle) along a half cosine.
    """
    rng = np.random.default_rng(seed)
    n = int(round((stand_s + run_s) * rate_hz))
    t = np.arange(n) / rate_hz
    step_s = 60.0 / cadence_spm
    tr = np.clip(t - stand_s, 0.0, None)
    running = t >= stand_s
    ramp = np.clip(tr / 1.0, 0.0, 1.0)  # angles fade in over 1 s
    ph_step = 2 * np.pi * tr / step_s
    ph_stride = np.pi * tr / step_s
    tilt = ramp * (run_tilt_deg + tilt_amp_deg * np.sin(ph_step))
    obl = ramp * obliquity_amp_deg * np.sin(ph_stride + 0.3)
    rot = ramp * rotation_amp_deg * np.sin(ph_stride - 0.5)
    heading = heading_drift_dps * t
    for t0, dur, angle in turns:  # (start s, duration s, deg): the running direction turns smoothly
        heading = heading + angle * 0.5 * (1.0 - np.cos(np.pi * np.clip((t - t0) / dur, 0.0, 1.0)))
    r_wp = Rotation.from_euler("ZXY", np.radians(np.stack([rot + heading, obl, tilt], axis=1)))

    # World linear specific force (excluding gravity), per step.
    k = np.floor(tr / step_s)
    tau = (tr - k * step_s) / (contact_frac * step_s)  # fraction of stance
    stance = running & (tau < 1.0)
    side = np.where(k % 2 == 0, 1.0, -1.0)  # +1 left stance, -1 right stance
    peak = np.pi * G_MPS2 / (2 * contact_frac)
    fz = np.where(stance, peak * np.sin(np.pi * np.clip(tau, 0, 1)), np.where(running, 0.0, G_MPS2))
    fx = np.where(stance, -0.25 * G_MPS2 * np.sin(2 * np.pi * np.clip(tau, 0, 1)), 0.0)
    fy = np.where(stance, 0.1 * G_MPS2 * side * np.sin(np.pi * np.clip(tau, 0, 1)), 0.0)
    c, s = np.cos(np.radians(heading)), np.sin(np.radians(heading))
    f_world = np.stack([c * fx - s * fy, s * fx + c * fy, fz], axis=1)
    acc_p = r_wp.inv().apply(f_world)

    rv = (r_wp[:-1].inv() * r_wp[1:]).as_rotvec() * rate_hz
    gyr_p = np.vstack([np.zeros((1, 3)), rv])

    if mount_quat_wxyz is None:
        mount_quat_wxyz = np.array([1.0, 0.0, 0.0, 0.0])
    q = np.asarray(mount_quat_wxyz, dtype=float)
    r_ps = Rotation.from_quat([q[1], q[2], q[3], q[0]])  # sensor -> pelvis
    acc_s = r_ps.inv().apply(acc_p) + noise_acc * rng.standard_normal((n, 3))
    gyr_s = r_ps.inv().apply(gyr_p) + noise_gyr * rng.standard_normal((n, 3))
    if bias_gyr is not None:
        gyr_s = gyr_s + np.asarray(bias_gyr, dtype=float)
    n_steps = int(np.floor(run_s / step_s))
    return SynthRun(
        t_s=t,
        acc_mps2=acc_s,
        gyr_rads=gyr_s,
        tilt_deg=tilt,
        obliquity_deg=obl,
        rotation_deg=rot,
        heading_deg=heading,
        mount_quat_wxyz=q,
        t_ic_s=stand_s + step_s * np.arange(n_steps),
        contact_s=contact_frac * step_s,
    )
