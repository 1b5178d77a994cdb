"""Variance budgets: which uncertain input contributes how much of a macro quantity's variance, to first order.

A macro quantity ``y`` depends on uncertain inputs ``x_i`` (handoff quantities with a std, stored assumptions).  To
first order its variance is the sum of the terms ``(dy/dx_i std_i)^2``, and a term's *share* is its part of that sum:
the input that matters most is the one with the largest share, not the one with the largest relative std (an input
uncertain by a factor of ten matters not at all when the answer does not depend on it).

Positive inputs uncertain by orders of magnitude (a mobility, a rate) enter in ln units: the derivative is
``dy/d(ln x)`` and the std that of ``ln x`` (a relative std, read as the std of the logarithm).  The sampling spread
over realisations (different seeds of the same model) is a term of its own: it is not an input, but it is part of
the std, and more realisations shrink it.

A term is a plain dict so that it can be stored in a node's metadata::

    {'uuid': node holding the input (None for the sampling spread), 'quantity': its name, 'log': ln units or not,
     'std': std of the input (of ln x when log), 'sensitivity': dy/dx (dy/d ln x when log), 'amplitude':
     sensitivity * std (the term's signed std contribution in the units of y), 'note': how the derivative came}

:func:`chain_terms` carries the terms of an intermediate quantity (the grain size) into a macro quantity by the chain
rule; :func:`budget` ranks the terms; :func:`weakest` picks the largest share over several budgets.
"""

from __future__ import annotations

import math
import typing as t

__all__ = ('budget', 'chain_terms', 'spread_term', 'term', 'weakest')


def term(
    uuid: str | None, quantity: str, sensitivity: float | None, std: float | None, *, log: bool, note: str = ''
) -> dict:
    """One input's term.  ``sensitivity`` None: the derivative is not computed (the term is listed, without share)."""
    amplitude = None if sensitivity is None or std is None else float(sensitivity) * float(std)
    return {
        'uuid': uuid,
        'quantity': quantity,
        'log': bool(log),
        'std': None if std is None else float(std),
        'sensitivity': None if sensitivity is None else float(sensitivity),
        'amplitude': amplitude,
        'note': note,
    }


def chain_terms(terms: t.Iterable[dict], derivative: float, via: str) -> list[dict]:
    """The terms of an intermediate quantity ``z`` carried into ``y`` by ``dy/dz = derivative`` (the chain rule).

    ``derivative`` is ``dy/dz`` in the units the terms' amplitudes have (``dy/d(ln z)`` when the terms are in ln z).
    """
    carried = []
    for entry in terms:
        entry = dict(entry)
        if entry['sensitivity'] is not None:
            entry['sensitivity'] = entry['sensitivity'] * derivative
        if entry['amplitude'] is not None:
            entry['amplitude'] = entry['amplitude'] * derivative
        entry['note'] = f'through {via}; {entry["note"]}' if entry['note'] else f'through {via}'
        carried.append(entry)
    return carried


def spread_term(values: t.Sequence[float]) -> dict:
    """The sampling spread of the mean over realisations: std of the values over sqrt(n) (None for one value)."""
    n = len(values)
    if n < 2:
        return term(None, 'realisations', None, None, log=False, note='one realisation: sampling spread not estimated')
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return term(
        None, 'realisations', 1.0, std / math.sqrt(n), log=False,
        note=f'standard error of the mean over {n} realisations (sample std {std:.4g} / sqrt({n}))',
    )  # fmt: skip


def budget(macro_quantity: str, value: float, terms: t.Iterable[dict]) -> dict:
    """The ranked budget of ``macro_quantity``: each term with its variance and share, largest first.

    Terms without an amplitude (derivative or std unknown) are listed last with share None; ``std`` is the square
    root of the sum of the known variances, ``relative_std`` that over ``|value|``.
    """
    entries = []
    for entry in terms:
        entry = dict(entry)
        amplitude = entry['amplitude']
        entry['variance'] = None if amplitude is None else amplitude * amplitude
        entries.append(entry)
    total = sum(entry['variance'] for entry in entries if entry['variance'] is not None)
    for entry in entries:
        entry['share'] = None if entry['variance'] is None or total <= 0 else entry['variance'] / total
    entries.sort(key=lambda entry: -1.0 if entry['share'] is None else entry['share'], reverse=True)
    std = math.sqrt(total)
    return {
        'macro_quantity': macro_quantity,
        'value': float(value),
        'std': std,
        'relative_std': std / abs(value) if value else None,
        'entries': entries,
    }


def weakest(budgets: t.Iterable[dict]) -> dict | None:
    """The input term with the largest share of any budget's variance, as ``{uuid, quantity, macro_quantity, share}``.

    The sampling spread is a candidate too (then ``uuid`` is None): if it is the largest, more realisations, not a
    better input, is what the answer needs.
    """
    best = None
    for entry_budget in budgets:
        for entry in entry_budget['entries']:
            if entry['share'] is None:
                continue
            if best is None or entry['share'] > best['share']:
                best = {
                    'uuid': entry['uuid'],
                    'quantity': entry['quantity'],
                    'macro_quantity': entry_budget['macro_quantity'],
                    'share': entry['share'],
                }
    return best
