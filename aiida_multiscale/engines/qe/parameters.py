"""pw.x input parameters for a set of elements: cutoffs, convergence threshold per cell and starting magnetisation."""

from __future__ import annotations

import copy
import typing as t

__all__ = ('pw_parameters',)


def pw_parameters(
    parameters: t.Mapping,
    elements: t.Sequence[str],
    natoms: int,
    cutoffs: t.Sequence[float] | None,
    cutoff_scale: float = 1.0,
    magnetic_elements: t.Mapping[str, float] | None = None,
) -> dict:
    """Complete the protocol's pw.x ``parameters`` for a structure; values already in ``parameters`` are kept.

    Why these three: the cutoffs are the pseudopotential family's recommended ones (its default stringency, the
    largest over the elements), times the protocol's ``cutoff_scale``, unless given; an SCF threshold is an energy per
    cell, so the protocol's ``ELECTRONS.conv_thr_per_atom`` is multiplied by the number of atoms; a magnetic element
    without ``nspin = 2`` would converge to the non-magnetic state.

    :param parameters: pw.x namelists of the protocol and the user's overrides (not modified); an ``ecutwfc`` or
        ``ecutrho`` here wins over the family's.  With ``ecutwfc`` alone, ecutrho keeps the family's ratio
        ecutrho/ecutwfc (4 for norm-conserving, 8-12 for ultrasoft/PAW pseudopotentials).
    :param elements: chemical symbols of the structure.
    :param natoms: number of atoms in the cell.
    :param cutoffs: ``(ecutwfc, ecutrho)`` in Ry recommended by the family, or None if it recommends none.
    :param cutoff_scale: factor on the family's cutoffs (not on cutoffs given in ``parameters``).
    :param magnetic_elements: ``{element: starting_magnetization}`` of the elements treated spin-polarised.
    :raises ValueError: without cutoffs from either the family or ``parameters``.
    """
    result = copy.deepcopy(dict(parameters))
    system = result.setdefault('SYSTEM', {})
    if cutoffs is not None:
        ecutwfc, ecutrho = (float(value) * cutoff_scale for value in cutoffs)
        if 'ecutwfc' in system and 'ecutrho' not in system:
            system['ecutrho'] = system['ecutwfc'] * ecutrho / ecutwfc
        system.setdefault('ecutwfc', ecutwfc)
        system.setdefault('ecutrho', ecutrho)
    elif 'ecutwfc' not in system:
        raise ValueError(
            'no cutoffs: the pseudopotential family recommends none and scf.pw.parameters.SYSTEM has no ecutwfc; '
            'give them (overrides {"scf": {"pw": {"parameters": {"SYSTEM": {"ecutwfc": ..., "ecutrho": ...}}}}}) or '
            'use a family with recommended cutoffs (aiida-pseudo cutoffs family, e.g. SSSP or multiscale/pbe)'
        )
    electrons = result.setdefault('ELECTRONS', {})
    conv_thr_per_atom = electrons.pop('conv_thr_per_atom', None)
    if conv_thr_per_atom is not None:
        electrons.setdefault('conv_thr', conv_thr_per_atom * natoms)
    magnetic = magnetic_elements or {}
    moments = {el: magnetic[el] for el in elements if el in magnetic}
    if moments and 'nspin' not in system:
        system['nspin'] = 2
        system['starting_magnetization'] = moments
    return result
