"""The assumed anneal of the protocol files: what no rung computes, resolved into quantities with their sources.

Its data has one home, ``phase_field.yaml`` (``anneal``, and the stand-alone ``gb_energy`` and ``melting_point``); the
phase-field rung, the chain and the command line all resolve it here.  Reading it needs only the YAML, so the command
line can show the defaults in its help without importing a work chain.
"""

from __future__ import annotations

from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = ('resolve_anneal', 'standalone_interface')


def resolve_anneal(anneal: dict, melting_point: float | None = None) -> dict:
    """Quantities ``{name: {value, unit, std, note}}`` from the protocol's ``anneal`` assumptions.

    ``relative_std`` becomes ``std``; a temperature given as ``homologous`` becomes ``homologous x melting_point`` (K);
    every note is ``assumed; source: ...``.
    """
    quantities = {}
    for name, entry in anneal.items():
        entry = dict(entry)
        source = entry.pop('source', None) or 'user input'
        if 'relative_std' in entry:
            entry['std'] = entry.pop('relative_std') * entry['value']
        if 'value' not in entry and 'homologous' in entry:
            if melting_point is None:
                raise ValueError(f'{name}: a homologous temperature needs the melting point of the element')
            fraction = entry['homologous']
            entry['value'] = fraction * melting_point
            source = f'{source} ({fraction} x {melting_point} K)'
        quantities[name] = {
            'value': entry['value'],
            'unit': entry['unit'],
            'std': entry.get('std'),
            'note': f'assumed; source: {source}',
        }
    return quantities


def standalone_interface(inputs: dict | None = None) -> dict:
    """The interface quantities of a stand-alone phase-field run: the protocol's ``anneal``, ``gb_energy`` and
    ``melting_point``."""
    inputs = inputs if inputs is not None else load_protocol_file('phase_field')['default_inputs']
    melting_point = inputs['melting_point']['value']
    # The mobility reduction is a factor on an MD mobility: a stand-alone run has none (its M0 and Q are assumed whole).
    anneal = {name: entry for name, entry in inputs['anneal'].items() if name != 'mobility_reduction'}
    quantities = resolve_anneal({'gb_energy': inputs['gb_energy'], **anneal}, melting_point)
    # The melting point bounds the anneal temperature (the rung's validator refuses T >= T_melt).
    quantities['melting_point'] = {
        'value': melting_point,
        'unit': inputs['melting_point']['unit'],
        'std': None,
        'note': f'source: {inputs["melting_point"]["source"]}',
    }
    return quantities
