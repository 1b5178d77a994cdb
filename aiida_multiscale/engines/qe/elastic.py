"""The DFT rung's stress-strain set: one combined strain per cell, and the cubic constants it gives."""

from __future__ import annotations

import numpy as np

from aiida_multiscale.physics.elasticity import cubic_elastic_constants, stress_strain_slope

__all__ = (
    'CUBIC_CONSTANTS',
    'cij_changes',
    'cij_converged',
    'cij_tolerances',
    'elastic_strain',
    'fit_cubic_elastic_constants',
    'std_with_kpoints_error',
    'strain_from_cells',
)


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

    Each independent datum enters its fit once, so that the std (from the residuals) is not made too small by a
    measurement counted twice: one sigma_xx per strained cell for C11; one mean of sigma_yy and sigma_zz (equal by the
    y-z mirror symmetry the combined strain keeps) for C12; one sigma_yz (the stress tensor is symmetric: sigma_yz
    and sigma_zy are the same number, averaged only against round-off) for C44.

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


#: The three constants the k-mesh convergence watches, in the order (C11, C12, C44) used throughout.
CUBIC_CONSTANTS = ('c11', 'c12', 'c44')


def cij_changes(previous, current) -> dict[str, float]:
    """Absolute change (GPa) of C11, C12 and C44 from ``previous`` to ``current``, each a (C11, C12, C44) triple.

    The k-mesh convergence measure of the DFT rung.  Each constant is watched on its own: the shear constants of a
    metal converge far more slowly with the k-mesh than B = (C11+2C12)/3, and C11 and C12 can move in step (B fixed)
    while C' = (C11-C12)/2 moves twice as much, so neither B nor one combined number would do.
    """
    return {name: abs(float(b) - float(a)) for name, a, b in zip(CUBIC_CONSTANTS, previous, current, strict=True)}


def cij_tolerances(current, gpa: float, relative: float) -> dict[str, float]:
    """Per-constant tolerance (GPa): ``gpa`` or ``relative`` times |C| of ``current``, whichever is larger.

    An absolute floor, because a relative tolerance alone is unreachable for a small constant (C44 of Al is about
    30 GPa: 2 % of it is 0.6 GPa, below the k-point noise of a metal), and a relative part for the large ones.
    """
    return {
        name: max(float(gpa), float(relative) * abs(float(c))) for name, c in zip(CUBIC_CONSTANTS, current, strict=True)
    }


def cij_converged(previous, current, gpa: float, relative: float) -> bool:
    """True when each of C11, C12 and C44 changed by less than its tolerance (:func:`cij_tolerances`)."""
    changes = cij_changes(previous, current)
    tolerances = cij_tolerances(current, gpa, relative)
    return all(changes[name] < tolerances[name] for name in CUBIC_CONSTANTS)


def std_with_kpoints_error(fit_std: float | None, change: float | None) -> float | None:
    """The std handed on: the fit's std and the last k-mesh change, in quadrature (None only when both are).

    The change between the last two meshes is the usual estimate of the k-point error that is left (for a sequence
    that converges monotonically it bounds it; for the oscillating shear constants of a metal it is its size), and it
    is independent of the stress-strain noise of one mesh, hence the quadrature sum.
    """
    if fit_std is None and change is None:
        return None
    return float(np.hypot(fit_std or 0.0, change or 0.0))
