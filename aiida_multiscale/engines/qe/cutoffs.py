"""Plane-wave cutoffs of a pseudopotential: its type (dual), and the lowest cutoff that meets a convergence criterion.

Pure functions behind :class:`aiida_multiscale.workflows.cutoffs.CutoffsConvergenceWorkChain`, kept free of AiiDA so
that the tests can check them on numbers of their own.
"""

from __future__ import annotations

import re
import typing as t

__all__ = ('CRITERIA', 'DUALS', 'DEFAULT_ECUTWFC_SERIES', 'converged_index', 'pseudo_type', 'recommended_dual')

#: Convergence criteria of the shipped cutoffs: total energy per atom and pressure within these of the value at the
#: highest cutoff of the series, at every cutoff from the chosen one up.
CRITERIA = {'energy_per_atom_mev': 1.0, 'pressure_gpa': 0.5}

#: ecutrho / ecutwfc: a norm-conserving pseudopotential needs the density at 4x the wavefunction cutoff (the square of
#: the wavefunctions, exactly); the augmentation charges of ultrasoft and PAW ones need more, 8x is the usual choice
#: (pw.x user guide, "ecutrho").
DUALS = {'NC': 4.0, 'SL': 4.0, 'US': 8.0, 'USPP': 8.0, 'PAW': 8.0}

#: The ecutwfc series (Ry) of a convergence run when none is given.
DEFAULT_ECUTWFC_SERIES = (25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 60.0, 70.0, 80.0)


def pseudo_type(upf_content: str) -> str:
    """``'NC'``, ``'SL'``, ``'US'``, ``'USPP'`` or ``'PAW'`` from a UPF file's header.

    UPF v2 has ``pseudo_type="..."``; UPF v1 names the type at the start of the third line of its PP_HEADER.

    :raises ValueError: if the header names no type.
    """
    match = re.search(r'pseudo_type\s*=\s*"\s*([A-Za-z]+)\s*"', upf_content)
    if match is None:
        header = re.search(r'<PP_HEADER>(.*?)</PP_HEADER>', upf_content, re.DOTALL)
        if header is not None:
            lines = [line.split() for line in header.group(1).strip().splitlines()]
            # UPF v1: line 1 version number, line 2 element, line 3 "US|NC|PAW  <comment>".
            if len(lines) >= 3 and lines[2]:
                match = re.match(r'([A-Za-z]+)', lines[2][0])
    if match is None:
        raise ValueError('the UPF header names no pseudopotential type (pseudo_type="NC"/"US"/"PAW")')
    kind = match.group(1).upper()
    if kind not in DUALS:
        raise ValueError(f'unknown pseudopotential type {kind!r} in the UPF header (expected NC, SL, US or PAW)')
    return kind


def recommended_dual(upf_content: str) -> float:
    """ecutrho / ecutwfc for the pseudopotential: 4 for norm-conserving, 8 for ultrasoft and PAW."""
    return DUALS[pseudo_type(upf_content)]


def converged_index(
    energies: t.Sequence[float], pressures: t.Sequence[float], energy_tolerance: float, pressure_tolerance: float
) -> int | None:
    """Index of the lowest cutoff from which every higher one stays within the tolerances of the highest cutoff.

    ``energies`` (per atom) and ``pressures`` are ordered by increasing cutoff, in the tolerances' units.  None when
    only the highest cutoff itself qualifies: then the series says nothing about convergence and must be extended.
    """
    if len(energies) != len(pressures) or len(energies) < 2:
        raise ValueError('need the energy and pressure at two or more cutoffs, as many of each')
    e_ref, p_ref = energies[-1], pressures[-1]
    within = [abs(e - e_ref) <= energy_tolerance and abs(p - p_ref) <= pressure_tolerance
              for e, p in zip(energies, pressures)]  # fmt: skip
    index = len(within) - 1
    while index > 0 and within[index - 1]:
        index -= 1
    return index if index < len(within) - 1 else None
