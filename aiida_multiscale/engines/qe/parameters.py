"""pw.x input parameters for a set of elements: cutoffs, convergence threshold per cell and starting magnetisation."""

from __future__ import annotations

import copy
import typing as t

__all__ = ('pw_parameters',)


def pw_parameters(
    parameters: t.Mapping,
    elements: t.Sequence[str],
    natoms: int,
    cutoffs: t.Mapping[str, t.Sequence[float]],
    cutoff_scale: float = 1.0,
    magnetic_elements: t.Mapping[str, float] | None = None,
) -> dict:
    """Complete the protocol's pw.x ``parameters`` for a structure; values already in ``parameters`` are kept.

    Why these three: pseudo families made by ``aiida-pseudo install family`` carry no recommended cutoffs, so they
    come from a per-element table (the largest over the elements wins); an SCF threshold is an energy per cell, so
    the protocol's ``ELECTRONS.conv_thr_per_atom`` is multiplied by the number of atoms; a magnetic element without
    ``nspin = 2`` would converge to the non-magnetic state.

    :param parameters: pw.x namelists of the protocol (not modified).
    :param elements: chemical symbols of the structure.
    :param natoms: number of atoms in the cell.
    :param cutoffs: ``{element: [ecutwfc, ecutrho]}`` in Ry, with a ``default`` entry for the others.
    :param cutoff_scale: factor on both cutoffs.
    :param magnetic_elements: ``{element: starting_magnetization}`` of the elements treated spin-polarised.
    """
    result = copy.deepcopy(dict(parameters))
    system = result.setdefault('SYSTEM', {})
    system.setdefault('ecutwfc', max(cutoffs.get(el, cutoffs['default'])[0] for el in elements) * cutoff_scale)
    system.setdefault('ecutrho', max(cutoffs.get(el, cutoffs['default'])[1] for el in elements) * cutoff_scale)
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
