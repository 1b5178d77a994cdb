"""Propagation of standard uncertainties through the physics functions of the bridges."""

from __future__ import annotations

import typing as t

import numpy as np

__all__ = ('first_order_std',)


def first_order_std(func: t.Callable[..., float], values: t.Sequence[float], stds: t.Sequence[float | None]) -> float:
    """First-order (linear) propagation: ``sqrt(sum_i (df/dx_i * std_i)^2)``, derivatives by central differences.

    Unknown stds (None) count as zero; the caller says so in the note of the result.  The ``uncertainties`` package
    does the same for functions written with its operators; ours are numpy code (rotations, matrix inverses) that it
    cannot differentiate, hence the central differences.
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
