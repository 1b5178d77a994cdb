"""Cubic-elasticity helpers for the bridges: Born stability, Voigt/Reuss/Hill moduli, first-order std propagation.

The physics lives in :mod:`aiida_multiscale.mechanics` (the same code the FEM rung checks its result against), so the
bridges and the FEM rung can never disagree about rotations, conventions or bounds; this module only adapts names and
adds the uncertainty propagation the bridges need.
"""

from __future__ import annotations

import typing as t

import numpy as np

from ..mechanics import born_stability_errors, e100, voigt_reuss_hill

__all__ = (
    'born_violations',
    'first_order_std',
    'polycrystal_moduli',
    'single_crystal_youngs_100',
)


def born_violations(c11: float, c12: float, c44: float) -> list[str]:
    """The violated Born stability conditions of a cubic crystal (empty list: mechanically stable).

    ``C11 - C12 > 0``, ``C11 + 2 C12 > 0`` and ``C44 > 0`` are the eigenvalues of the cubic stiffness matrix being
    positive (Born and Huang 1954; Mouhat and Coudert, PRB 90, 224104 (2014)).
    """
    return born_stability_errors(c11, c12, c44)


def single_crystal_youngs_100(c11: float, c12: float) -> float:
    """Young's modulus of a cubic single crystal loaded along [100]: ``(C11 - C12)(C11 + 2 C12)/(C11 + C12)``."""
    return e100(c11, c12)


def polycrystal_moduli(
    c11: float, c12: float, c44: float, euler_angles: t.Sequence, weights: t.Sequence | None = None
) -> dict[str, float]:
    """Voigt, Reuss and Hill Young's moduli and Poisson ratios along sample x for a set of cubic grains.

    See :func:`aiida_multiscale.mechanics.voigt_reuss_hill` (Bunge angles in degrees, crystal -> sample).
    """
    return voigt_reuss_hill(c11, c12, c44, euler_angles, weights)


def first_order_std(func: t.Callable[..., float], values: t.Sequence[float], stds: t.Sequence[float | None]) -> float:
    """First-order (linear) propagation: ``sqrt(sum_i (df/dx_i * std_i)^2)``, derivatives by central differences.

    Unknown stds (None) count as zero; the caller says so in the note of the result.
    """
    values = [float(v) for v in values]
    total = 0.0
    for i, std in enumerate(stds):
        if not std:
            continue
        step = 1e-6 * max(abs(values[i]), 1e-30)
        up = list(values)
        down = list(values)
        up[i] += step
        down[i] -= step
        derivative = (func(*up) - func(*down)) / (2 * step)
        total += (derivative * std) ** 2
    return float(np.sqrt(total))
