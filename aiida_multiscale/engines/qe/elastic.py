"""The DFT rung's stress-strain set: one combined strain per cell, and the cubic constants it gives."""

from __future__ import annotations

import numpy as np

from aiida_multiscale.physics.elasticity import cubic_elastic_constants, stress_strain_slope

__all__ = ('elastic_strain', 'fit_cubic_elastic_constants', 'shear_constants_change', 'strain_from_cells')


def elastic_strain(delta: float) -> np.ndarray:
    """The strain tensor used for one stress-strain point: e_xx = delta and engineering shear e_yz = 2 eps_yz = delta.

    Why one combined strain rather than a tetragonal and a shear set: in a cubic crystal sigma_xx = C11 e_xx,
    sigma_yy = sigma_zz = C12 e_xx and sigma_yz = C44 e_yz, with no cross-coupling (C14 = C15 = 0), so one strained
    cell gives all three constants and half the SCFs are saved.  The second-order (non-linear) terms are even in
    delta and cancel in a linear fit over a set of strains symmetric about zero.
    """
    return np.array([[delta, 0.0, 0.0], [0.0, 0.0, delta / 2], [0.0, delta / 2, 0.0]])


def strain_from_cells(reference_cell, strained_cell) -> np.ndarray:
    """The symmetric strain that maps ``reference_cell`` onto ``strained_cell`` (rows are lattice vectors)."""
    deformation = np.linalg.solve(np.asarray(reference_cell, float), np.asarray(strained_cell, float)).T
    return 0.5 * (deformation + deformation.T) - np.eye(3)


def fit_cubic_elastic_constants(strains, stresses) -> dict:
    """C11, C12, C44 (GPa) and their std from the package's one stress-strain fitter.

    :param strains: (n, 3, 3) strain tensors of the form :func:`elastic_strain` (checked).
    :param stresses: (n, 3, 3) physical stresses in GPa (tension positive, i.e. minus QE's sign).
    :return: dict with c11, c12, c44, their ``*_std``, ``symmetry_error`` (|slope yy - slope zz| in GPa, a check of
        the cubic symmetry of the response) and ``residual_pressure`` (GPa, the intercept: -trace/3 at zero strain).
    """
    strains = np.asarray(strains, float)
    stresses = np.asarray(stresses, float)
    if strains.shape != stresses.shape or strains.ndim != 3 or strains.shape[1:] != (3, 3):
        raise ValueError(f'need matching (n, 3, 3) strains and stresses, got {strains.shape} and {stresses.shape}')
    if len(strains) < 2:
        raise ValueError('need at least two strained cells for a stress-strain fit')
    delta = strains[:, 0, 0]
    expected = np.array([elastic_strain(d) for d in delta])
    if not np.allclose(strains, expected, atol=1e-8):
        raise ValueError('strains are not of the form e_xx = e_yz(engineering) = delta used by this fit')
    if np.ptp(delta) <= 0:
        raise ValueError('strains must differ from each other')
    fit = cubic_elastic_constants(
        delta,
        stresses[:, 0, 0],
        stresses[:, 1, 1],
        stresses[:, 2, 2],
        delta,
        0.5 * (stresses[:, 1, 2] + stresses[:, 2, 1]),
    )
    (c11, c11_std), (c12, c12_std), (c44, c44_std) = fit['c11'], fit['c12'], fit['c44']
    c12_yy, *_ = stress_strain_slope(delta, stresses[:, 1, 1])
    c12_zz, *_ = stress_strain_slope(delta, stresses[:, 2, 2])
    *_, intercept = stress_strain_slope(delta, np.trace(stresses, axis1=1, axis2=2) / 3)
    return {
        'c11': c11,
        'c12': c12,
        'c44': c44,
        'c11_std': c11_std,
        'c12_std': c12_std,
        'c44_std': c44_std,
        'symmetry_error': abs(c12_yy - c12_zz),
        'residual_pressure': float(-intercept),
    }


def shear_constants_change(previous, current) -> float:
    """Largest relative change of C' = (C11-C12)/2 and C44 from ``previous`` to ``current``, each (C11, C12, C44).

    The k-mesh convergence measure of the DFT rung: the shear constants of a metal converge far more slowly with the
    k-mesh than B = (C11+2C12)/3, so they decide when a mesh is dense enough.
    """
    (c11_a, c12_a, c44_a), (c11_b, c12_b, c44_b) = previous, current
    shear_a, shear_b = (c11_a - c12_a) / 2, (c11_b - c12_b) / 2
    return max(abs(shear_b - shear_a) / abs(shear_b), abs(c44_b - c44_a) / abs(c44_b))
