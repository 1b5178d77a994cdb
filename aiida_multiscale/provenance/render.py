"""Text rendering of a trace: the macro prediction, then the handoffs, then the DFT calculations, as a tree."""

from __future__ import annotations

from aiida_multiscale.provenance.lineage import Lineage, trace_json

__all__ = ('format_quantity', 'render_text')


def format_quantity(name: str, spec: dict) -> str:
    std = spec.get('std')
    text = f'{name} = {spec["value"]:.6g}'
    if std is not None:
        text += f' +/- {std:.3g}'
    unit = spec.get('unit')
    if unit and unit not in ('dimensionless', '1', ''):
        text += f' {unit}'
    if std is not None and spec['value']:
        text += f'  ({std / abs(spec["value"]):.1%})'
    return text


def render_text(lineage: Lineage) -> str:
    """A tree a user can read top-down: what was predicted, which handoffs it rests on, which DFT runs made them."""
    data = trace_json(lineage)
    lines = [f'macro prediction  HandoffData {data["macro"]["uuid"]}']
    for name, spec in data['macro']['quantities'].items():
        lines.append(f'  {format_quantity(name, spec)}')
        if spec.get('note'):
            lines.append(f'      {spec["note"]}')
    weakest = data['weakest_handoff']
    lines.append('')
    lines.append(f'handoffs ({len(data["handoffs"])})')
    for index, handoff in enumerate(data['handoffs']):
        last = index == len(data['handoffs']) - 1
        branch, pipe = ('└─', '  ') if last else ('├─', '│ ')
        lines.append(
            f'{branch} {handoff["bridge"]}: {handoff["from_scale"]} -> {handoff["to_scale"]}  {handoff["uuid"]}'
        )
        for name, spec in handoff['quantities'].items():
            flag = ''
            if weakest and weakest['uuid'] == handoff['uuid'] and weakest['quantity'] == name:
                flag = '   <== weakest handoff'
            lines.append(f'{pipe}    {format_quantity(name, spec)}{flag}')
            if spec.get('note', '').startswith('assumed'):
                lines.append(f'{pipe}        {spec["note"]}')
    lines.append('')
    cached = sum(1 for calc in data['dft_calculations'] if calc.get('cached_from'))
    reused = f', {cached} reused from the cache' if cached else ''
    lines.append(f'DFT calculations ({len(data["dft_calculations"])} PwCalculation{reused})')
    for index, calc in enumerate(data['dft_calculations']):
        last = index == len(data['dft_calculations']) - 1
        branch, pipe = ('└─', '  ') if last else ('├─', '│ ')
        smearing = calc['smearing']
        mesh = 'x'.join(str(k) for k in calc['kpoints_mesh']) if calc['kpoints_mesh'] else '?'
        lines.append(f'{branch} PwCalculation {calc["uuid"]}  {calc["formula"]}')
        lines.append(
            f'{pipe}    ecutwfc {calc["ecutwfc"]} Ry, ecutrho {calc["ecutrho"]} Ry, k-mesh {mesh}, '
            f'{smearing["occupations"]} {smearing["type"]} {smearing["degauss"]} Ry'
        )
        pseudos = ', '.join(f'{element} md5 {md5}' for element, md5 in calc['pseudos'].items())
        lines.append(f'{pipe}    pseudos: {pseudos}')
        lines.append(f'{pipe}    structure {calc["structure_uuid"]}')
        if calc.get('cached_from'):
            lines.append(f'{pipe}    reused from the cache: a copy of PwCalculation {calc["cached_from"]}')
    lines.append('')
    if weakest:
        bridge = next((h['bridge'] for h in data['handoffs'] if h['uuid'] == weakest['uuid']), '?')
        lines.append(
            f'weakest handoff: {bridge} {weakest["quantity"]} (relative std {weakest["relative_std"]:.3g}) '
            f'in {weakest["uuid"]}'
        )
    else:
        lines.append('weakest handoff: no handoff carries a std')
    return '\n'.join(lines)
