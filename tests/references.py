"""Independent references for the elasticity tests, written here without the package's own physics code.

The package computes polycrystal bounds in ``aiida_multiscale.physics.elasticity`` (its own Bunge matrix, Voigt-notation
rotation and averages).  A test that recomputes a bound with that module compares the code with itself.  These
references take another route to the same numbers, so that a wrong convention in the package shows up as a mismatch:

- the orientation matrix from scipy's ``Rotation`` (intrinsic z-x-z Euler angles), not from a hand-written matrix;
- the Reuss bound in closed form, 1/E_R = sum_g w_g / E(n_g), with the directional modulus of a cubic crystal written
  from the closed-form compliances S11, S12, S44 (Nye, Physical Properties of Crystals, 1957, ch. VIII);
- the Voigt bound from the 4th-order stiffness built from Kronecker deltas, rotated with einsum and averaged.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def e_100(c11: float, c12: float) -> float:
    """Young's modulus of a cubic crystal along <100>: (C11 - C12)(C11 + 2 C12) / (C11 + C12)."""
    return (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)


def e_111(c11: float, c12: float, c44: float) -> float:
    """Young's modulus of a cubic crystal along <111>: 3 C44 (C11 + 2 C12) / (C11 + 2 C12 + C44)."""
    return 3 * c44 * (c11 + 2 * c12) / (c11 + 2 * c12 + c44)


def isotropic_youngs(c11: float, c12: float) -> float:
    """E of an isotropic solid given as a cubic one with C44 = (C11 - C12)/2: the same in every direction, = E_100."""
    return e_100(c11, c12)


def crystal_direction_of_sample_x(phi1: float, Phi: float, phi2: float) -> np.ndarray:  # noqa: N803
    """The crystal-axes components of the sample x axis for Bunge angles (degrees).

    Bunge's ``g`` (sample -> crystal) is the transpose of the active rotation that scipy builds from intrinsic z-x-z
    angles; sample x seen from the crystal is ``g @ [1, 0, 0]``.
    """
    g = Rotation.from_euler('ZXZ', [phi1, Phi, phi2], degrees=True).as_matrix().T
    return g[:, 0]


def directional_youngs(c11: float, c12: float, c44: float, direction) -> float:
    """E along a crystal direction: 1/E = S11 - 2 (S11 - S12 - S44/2)(n1^2 n2^2 + n2^2 n3^2 + n3^2 n1^2)."""
    n = np.asarray(direction, dtype=float)
    n = n / np.linalg.norm(n)
    denominator = (c11 - c12) * (c11 + 2 * c12)
    s11, s12, s44 = (c11 + c12) / denominator, -c12 / denominator, 1 / c44
    gamma = n[0] ** 2 * n[1] ** 2 + n[1] ** 2 * n[2] ** 2 + n[2] ** 2 * n[0] ** 2
    return 1 / (s11 - 2 * (s11 - s12 - s44 / 2) * gamma)


def youngs_bounds(c11: float, c12: float, c44: float, euler, weights=None) -> tuple[float, float]:
    """``(E_Voigt, E_Reuss)`` along sample x of grains with Bunge angles ``euler`` (degrees) and area ``weights``.

    Reuss (uniform stress): the weighted harmonic mean of each grain's directional modulus along sample x.
    Voigt (uniform strain): the weighted mean of the stiffness tensors rotated into the sample frame, inverted.
    """
    euler = np.atleast_2d(np.asarray(euler, dtype=float))
    w = np.full(len(euler), 1 / len(euler)) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    delta = np.eye(3)
    cubic = (
        c12 * np.einsum('ij,kl->ijkl', delta, delta)
        + c44 * (np.einsum('ik,jl->ijkl', delta, delta) + np.einsum('il,jk->ijkl', delta, delta))
        + (c11 - c12 - 2 * c44) * np.einsum('ai,aj,ak,al->ijkl', delta, delta, delta, delta)
    )
    pairs = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    voigt = np.zeros((6, 6))
    inverse_reuss = 0.0
    for angles, weight in zip(euler, w):
        g = Rotation.from_euler('ZXZ', angles, degrees=True).as_matrix().T  # sample -> crystal
        sample = np.einsum('ai,bj,ck,dl,abcd->ijkl', g, g, g, g, cubic)  # C'_ijkl = g_ai g_bj g_ck g_dl C_abcd
        voigt += weight * np.array([[sample[i, j, k, m] for k, m in pairs] for i, j in pairs])
        inverse_reuss += weight / directional_youngs(c11, c12, c44, g[:, 0])
    return 1 / np.linalg.inv(voigt)[0, 0], 1 / inverse_reuss
