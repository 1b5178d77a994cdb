"""Propagation of standard uncertainties through the physics functions of the bridges."""

from __future__ import annotations

import typing as t

import numpy as np

__all__ = ('central_derivative', 'first_order_std')


def central_derivative(func: t.Callable[..., float], values: t.Sequence[float], index: int) -> float:
    """``df/dx_index`` at ``values`` by a central difference with a relative step of 1e-6."""
    values = [float(v) for v in values]
    step = 1e-6 * max(abs(values[index]), 1e-30)
    up, down = list(values), list(values)
    up[index] += step
    down[index] -= step
    return (func(*up) - func(*down)) / (2 * step)


def first_order_std(func: t.Callable[..., float], values: t.Sequence[float], stds: t.Sequence[float | None]) -> float:
    """First-order (linear) propagation: ``sqrt(sum_i (df/dx_i * std_i)^2)``, derivatives by central differences.

    Unknown stds (None) count as zero; the caller says so in the note of the result.  The ``uncertainties`` package
    does the same for functions written with its operators; ours are numpy code (rotations, matrix inverses) that it
    cannot differentiate, hence the central differences.
    """
    total = 0.0
    for i, std in enumerate(stds):
        if std:
            total += (central_derivative(func, values, i) * std) ** 2
    return float(np.sqrt(total))
