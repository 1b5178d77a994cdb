"""Equation of state: the volume grid, its re-centring, and a Birch-Murnaghan fit (ase.eos) with uncertainties."""

from __future__ import annotations

import numpy as np

from aiida_multiscale.physics.units import factor

__all__ = ('EosFit', 'eos_grid', 'fit_birch_murnaghan', 'recentre_grid')

#: 1 eV/Angstrom^3 in GPa, from the pint registry (ase.eos works in eV and Angstrom).
EV_PER_ANGSTROM3_TO_GPA = factor('eV/angstrom^3', 'GPa')


class EosFit(dict):
    """Result of :func:`fit_birch_murnaghan`: v0, e0, b0 (GPa), bp and their std, and whether V0 is bracketed."""


def eos_grid(centre: float, points: int, volume_range: float) -> np.ndarray:
    """``points`` volumes evenly spaced from ``centre*(1-volume_range)`` to ``centre*(1+volume_range)``."""
    if points < 5:
        raise ValueError(f'eos_points must be at least 5 for a 4-parameter Birch-Murnaghan fit, got {points}')
    if not 0 < volume_range < 0.5:
        raise ValueError(f'eos_volume_range must be in (0, 0.5), got {volume_range}')
    return centre * np.linspace(1 - volume_range, 1 + volume_range, points)


def fit_birch_murnaghan(volumes, energies) -> EosFit:
    """Fit E(V) with ase.eos's Birch-Murnaghan form; standard errors from the covariance of the same least squares.

    ase.eos discards the covariance, so the fit is repeated with ``scipy.optimize.curve_fit`` on ase's own
    ``birchmurnaghan`` function, started at ase's optimum: the values are ase's, the std are the fit's.

    :param volumes: volumes per atom in Angstrom^3.
    :param energies: energies per atom in eV.
    :return: dict with v0 [A^3], e0 [eV], b0 [GPa], bp [-], ``*_std``, ``bracketed`` (V0 strictly inside the sampled
        range and the lowest energy not at an end point) and ``rms_residual`` [eV].
    """
    from ase.eos import EquationOfState, birchmurnaghan
    from scipy.optimize import curve_fit

    volumes = np.asarray(volumes, dtype=float)
    energies = np.asarray(energies, dtype=float)
    order = np.argsort(volumes)
    volumes, energies = volumes[order], energies[order]
    eos = EquationOfState(volumes, energies, eos='birchmurnaghan')
    eos.fit(warn=False)
    e0, b0, bp, v0 = eos.eos_parameters
    popt, pcov = curve_fit(birchmurnaghan, volumes, energies, p0=[e0, b0, bp, v0], maxfev=20000)
    e0, b0, bp, v0 = popt
    dof = max(len(volumes) - 4, 0)
    std = np.sqrt(np.abs(np.diag(pcov))) if dof > 0 and np.all(np.isfinite(pcov)) else np.full(4, np.nan)
    residual = energies - birchmurnaghan(volumes, *popt)
    lowest = int(np.argmin(energies))
    bracketed = bool(volumes[0] < v0 < volumes[-1] and 0 < lowest < len(volumes) - 1 and b0 > 0)
    return EosFit(
        v0=float(v0),
        e0=float(e0),
        b0=float(b0 * EV_PER_ANGSTROM3_TO_GPA),
        bp=float(bp),
        v0_std=float(std[3]),
        e0_std=float(std[0]),
        b0_std=float(std[1] * EV_PER_ANGSTROM3_TO_GPA),
        bp_std=float(std[2]),
        bracketed=bracketed,
        rms_residual=float(np.sqrt(np.mean(residual**2))),
    )


def recentre_grid(volumes, energies, fit: EosFit | None) -> int:
    """How many grid steps to shift an unbracketed grid so that its minimum is inside; 0 when already bracketed.

    The shift is a whole number of steps, so the points of the old grid that fall in the new one are reused and only
    the missing volumes are computed.  With a trustworthy fit the grid is centred on V0; otherwise (V0 far outside,
    or no curvature) it moves by half its width towards the lowest energy, which is never an extrapolation.
    """
    volumes = np.sort(np.asarray(volumes, dtype=float))
    energies = np.asarray(energies, dtype=float)[np.argsort(np.asarray(volumes, dtype=float))]
    points = len(volumes)
    step = volumes[1] - volumes[0]
    centre = volumes[points // 2]
    if fit is not None and fit.get('bracketed'):
        return 0
    lowest = int(np.argmin(energies))
    direction = -1 if lowest < points // 2 else 1
    half = (points - 1) // 2
    if fit is not None and np.isfinite(fit.get('v0', np.nan)) and fit.get('b0', -1) > 0:
        shift = int(round((fit['v0'] - centre) / step))
        if np.sign(shift) == direction and half <= abs(shift) <= points - 1:
            return shift
    return direction * half
