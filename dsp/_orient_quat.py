"""Small vectorised quaternion and rotation-matrix helpers shared by calibration and orientation.

Quaternions are scalar first, ``[w, x, y, z]``, unit norm, and rotate vectors from the frame named first
in the variable's suffix into the frame named second (``q_world_pelvis`` maps pelvis-frame vectors into
the world frame).
"""

from __future__ import annotations

import numpy as np


def quat_to_matrix(q_wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrices of unit quaternions.

    Parameters
    ----------
    q_wxyz : ndarray, shape (..., 4)
        Unit quaternions, scalar first.

    Returns
    -------
    ndarray, shape (..., 3, 3)
        ``R`` with ``v_out = R @ v_in``.
    """
    q = np.asarray(q_wxyz, dtype=np.float64)
    r = np.empty(q.shape[:-1] + (3, 3))
    for k, e in enumerate(matrix_entries(q[..., 0], q[..., 1], q[..., 2], q[..., 3])):
        r[..., k // 3, k % 3] = e
    return r


def matrix_entries(
    w: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rotation matrix entries ``r00, r01, r02, r10, ..., r22`` of unit quaternions given by their
    components (arrays of one shape), each a separate array, for callers that use the entries one by one.

    ``r00 = 1 - 2 (y² + z²)``, ``r01 = 2 (xy - wz)``, ``r02 = 2 (xz + wy)``, ``r10 = 2 (xy + wz)``,
    ``r11 = 1 - 2 (x² + z²)``, ``r12 = 2 (yz - wx)``, ``r20 = 2 (xz - wy)``, ``r21 = 2 (yz + wx)``,
    ``r22 = 1 - 2 (x² + y²)``, each product computed once."""
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    return (
        1 - 2 * (yy + zz),
        2 * (xy - wz),
        2 * (xz + wy),
        2 * (xy + wz),
        1 - 2 * (xx + zz),
        2 * (yz - wx),
        2 * (xz - wy),
        2 * (yz + wx),
        1 - 2 * (xx + yy),
    )


def rotate_by_entries(
    r: tuple[np.ndarray, ...], a0: np.ndarray, a1: np.ndarray, a2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``R @ a`` element by element, from the entries of :func:`matrix_entries` and the components of ``a``
    (identical whatever the chunking)."""
    return tuple(r[3 * i] * a0 + r[3 * i + 1] * a1 + r[3 * i + 2] * a2 for i in range(3))  # type: ignore[return-value]


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (scalar first, ``w >= 0``) of one proper rotation matrix, shape (3, 3) -> (4,)."""
    m = np.asarray(r, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    # Shepperd's method: pick the largest of the four squared components for stability.
    cand = np.array([tr, m[0, 0], m[1, 1], m[2, 2]])
    i = int(np.argmax(cand))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    elif i == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s])
    elif i == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of scalar-first quaternions, shapes broadcast over (..., 4)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def check_unit_quat(name: str, q: object) -> np.ndarray:
    """Return ``q`` as a float (4,) unit quaternion or raise ``ValueError`` with a one-line reason."""
    arr = np.asarray(q, dtype=np.float64)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be 4 finite numbers [w, x, y, z], got shape {arr.shape}")
    n = float(np.linalg.norm(arr))
    if abs(n - 1.0) > 1e-3:
        raise ValueError(f"{name} must be a unit quaternion [w, x, y, z] (norm {n:.4f})")
    return arr / n
