"""PelvisOrientation processes long chunks block by block: the results equal the whole-array formulas."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import vqf
from scipy import signal
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).parent))

from _orient_synth import synth_run  # noqa: E402

from pelvimon.dsp import orientation as orientation_module  # noqa: E402
from pelvimon.dsp._orient_quat import quat_multiply, quat_to_matrix  # noqa: E402
from pelvimon.dsp.orientation import OrientationParams, PelvisMotion, PelvisOrientation  # noqa: E402

_q = Rotation.random(random_state=11).as_quat()
MOUNT = np.r_[_q[3], _q[:3]]
FIELDS = ("tilt_deg", "obliquity_deg", "rotation_deg", "acc_pelvis_mps2", "acc_level_mps2", "gyr_pelvis_rads", "valid")


def _reference(t: np.ndarray, acc: np.ndarray, gyr: np.ndarray) -> dict[str, np.ndarray]:
    """The readable whole-array form: VQF over everything, angles from the rotation matrix, the heading
    tracker ``2B - B·B`` with ``sosfilt`` over the whole recording."""
    p = OrientationParams()
    f = vqf.VQF(1 / 200.0, tauAcc=p.tau_acc_s, motionBiasEstEnabled=True, restBiasEstEnabled=True)
    q_ws = f.updateBatch(np.ascontiguousarray(gyr), np.ascontiguousarray(acc))["quat6D"]
    q = quat_multiply(q_ws, MOUNT * np.array([1.0, -1.0, -1.0, -1.0]))
    r = quat_to_matrix(q)
    tilt = np.arctan2(-r[:, 2, 0], r[:, 2, 2])
    obl = np.arcsin(np.clip(r[:, 2, 1], -1.0, 1.0))
    rot = np.arctan2(-r[:, 0, 1], r[:, 1, 1])
    sos = signal.butter(p.heading_order, p.heading_cutoff_hz, fs=200.0, output="sos")
    cs = np.stack([np.cos(rot), np.sin(rot)], axis=-1)
    zi = signal.sosfilt_zi(sos)[:, :, None] * cs[0][None, None, :]
    lp1, _ = signal.sosfilt(sos, cs, axis=0, zi=zi)
    lp2, _ = signal.sosfilt(sos, lp1, axis=0, zi=zi)
    cs_lp = 2.0 * lp1 - lp2
    head = np.arctan2(cs_lp[:, 1], cs_lp[:, 0])
    rm = quat_to_matrix(MOUNT)
    acc_p = np.stack([rm[i, 0] * acc[:, 0] + rm[i, 1] * acc[:, 1] + rm[i, 2] * acc[:, 2] for i in range(3)], axis=1)
    acc_w = np.stack(
        [r[:, i, 0] * acc_p[:, 0] + r[:, i, 1] * acc_p[:, 1] + r[:, i, 2] * acc_p[:, 2] for i in range(3)], axis=1
    )
    c, s = np.cos(head), np.sin(head)
    level = np.stack([c * acc_w[:, 0] + s * acc_w[:, 1], -s * acc_w[:, 0] + c * acc_w[:, 1], acc_w[:, 2]], axis=1)
    rel = (rot - head + np.pi) % (2 * np.pi) - np.pi
    return {
        "tilt_deg": np.degrees(tilt),
        "obliquity_deg": np.degrees(obl),
        "rotation_deg": np.degrees(rel),
        "acc_level_mps2": level,
        "acc_pelvis_mps2": acc_p,
    }


@pytest.mark.parametrize("block_n", [4096, orientation_module._BLOCK_N])
def test_long_chunks_equal_the_whole_array_reference_and_any_chunking(block_n: int, monkeypatch) -> None:
    monkeypatch.setattr(orientation_module, "_BLOCK_N", block_n)
    r = synth_run(stand_s=2.0, run_s=40.0 if block_n < 8192 else 2.0 + 3 * block_n / 200.0, mount_quat_wxyz=MOUNT,
                  noise_acc=0.05, noise_gyr=0.005, seed=4)
    n = r.t_s.size
    assert n > 2 * block_n + 100  # several blocks and a partial one
    whole = PelvisOrientation(200.0, MOUNT).update(r.t_s, r.acc_mps2, r.gyr_rads)
    ref = _reference(r.t_s, r.acc_mps2, r.gyr_rads)
    for f in ("tilt_deg", "obliquity_deg", "acc_pelvis_mps2"):  # the same expressions: the same bits
        np.testing.assert_array_equal(getattr(whole, f), ref[f], err_msg=f)
    # the rotation relative to the running direction and the level frame come from unit vectors rather than
    # from the angles' cos and sin: equal up to rounding (1e-9 deg, 1e-9 m/s²)
    np.testing.assert_allclose(whole.rotation_deg, ref["rotation_deg"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(whole.acc_level_mps2, ref["acc_level_mps2"], rtol=0, atol=1e-9)
    cuts = [0, 7, 4096, 4100, 8191, 8193, 9000, n]
    po = PelvisOrientation(200.0, MOUNT)
    parts = [po.update(r.t_s[a:b], r.acc_mps2[a:b], r.gyr_rads[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    chunked = PelvisMotion.concat(parts)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(chunked, f), getattr(whole, f), err_msg=f)
    assert whole.valid.any() and not whole.valid[0]


def test_matrix_entries_are_the_quaternion_formulas_bit_for_bit() -> None:
    """Each product is computed once in ``matrix_entries``: the entries stay those of the textbook formulas
    (and ``quat_to_matrix`` is built from them)."""
    from pelvimon.dsp._orient_quat import matrix_entries

    q = Rotation.random(5000, random_state=3).as_quat()[:, [3, 0, 1, 2]]
    w, x, y, z = q.T
    expected = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    for got, e in zip(matrix_entries(w, x, y, z), expected, strict=True):
        np.testing.assert_array_equal(got, e)
    np.testing.assert_array_equal(quat_to_matrix(q).reshape(-1, 9), np.stack(expected, axis=1))



def test_heading_unit_vector_is_the_cos_and_sin_of_the_baker_rotation() -> None:
    """The heading is taken as a unit vector from the rotation matrix, without the angle: it equals the cos
    and sin of the Baker rotation up to rounding, and is 0 (no vote for the running direction) where the
    heading is not defined (pelvis x axis vertical)."""
    q = Rotation.random(5000, random_state=5).as_quat()[:, [3, 0, 1, 2]]
    r = quat_to_matrix(q)
    head = orientation_module._heading_unit(r[:, 0, 1], r[:, 1, 1])
    rot = np.arctan2(-r[:, 0, 1], r[:, 1, 1])
    np.testing.assert_allclose(head, np.stack([np.cos(rot), np.sin(rot)]), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(orientation_module._heading_unit(np.zeros(2), np.zeros(2)), np.zeros((2, 2)))
