"""Cubic elastic constants from stress-strain: the strain set, the linear fits, and the Born stability conditions."""

from __future__ import annotations

import numpy as np

__all__ = ('born_stability_violations', 'bulk_modulus_from_cij', 'elastic_strain', 'fit_cubic_elastic_constants')


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


def _slope(x, y):
    """Slope of y(x) at x = 0, its standard error from the fit residuals (None without spare points), intercept.

    With four or more distinct strains the fit is quadratic: the non-linear elastic term (C111 delta^2 / 2 is several
    percent of the linear stress at delta = 1 %) then lands in its own coefficient instead of inflating the residual.
    For strains symmetric about zero the slope is the same as the linear fit's.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    degree = 2 if len(np.unique(x)) >= 4 else 1
    design = np.vander(x, degree + 1, increasing=True)
    coeffs, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coeffs
    dof = len(x) - (degree + 1)
    if dof <= 0:
        return float(coeffs[1]), None, float(coeffs[0])
    sigma2 = float(residual @ residual) / dof
    covariance = sigma2 * np.linalg.inv(design.T @ design)
    return float(coeffs[1]), float(np.sqrt(covariance[1, 1])), float(coeffs[0])


def fit_cubic_elastic_constants(strains, stresses) -> dict:
    """C11, C12, C44 (GPa) and their std from linear fits of stress against strain.

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
    c11, c11_std, _ = _slope(delta, stresses[:, 0, 0])
    c12, c12_std, _ = _slope(np.concatenate([delta, delta]), np.concatenate([stresses[:, 1, 1], stresses[:, 2, 2]]))
    c44, c44_std, _ = _slope(delta, 0.5 * (stresses[:, 1, 2] + stresses[:, 2, 1]))
    c12_yy, *_ = _slope(delta, stresses[:, 1, 1])
    c12_zz, *_ = _slope(delta, stresses[:, 2, 2])
    *_, intercept = _slope(delta, np.trace(stresses, axis1=1, axis2=2) / 3)
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


def bulk_modulus_from_cij(c11: float, c12: float) -> float:
    """Bulk modulus of a cubic crystal, B = (C11 + 2 C12) / 3."""
    return (c11 + 2 * c12) / 3


def born_stability_violations(c11: float, c12: float, c44: float) -> list[str]:
    """The Born conditions of a cubic crystal that fail (empty when stable): C11-C12>0, C11+2C12>0, C44>0."""
    violations = []
    if not c11 - c12 > 0:
        violations.append(f'C11 - C12 = {c11 - c12:.4g} GPa <= 0 (tetragonal shear unstable)')
    if not c11 + 2 * c12 > 0:
        violations.append(f'C11 + 2 C12 = {c11 + 2 * c12:.4g} GPa <= 0 (unstable under hydrostatic strain)')
    if not c44 > 0:
        violations.append(f'C44 = {c44:.4g} GPa <= 0 (shear unstable)')
    return violations
