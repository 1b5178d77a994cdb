"""Text rendering of a trace: the macro prediction, the handoffs, the DFT results and the DFT calculations, as trees."""

from __future__ import annotations

from aiida_multiscale.provenance.lineage import Lineage, trace_json

__all__ = ('format_quantity', 'kpoints_convergence_text', 'render_text', 'verification_text')


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


NOT_RECORDED = 'not recorded'


def _mesh(mesh) -> str:
    return 'x'.join(str(k) for k in mesh) if mesh else NOT_RECORDED


def _or_not_recorded(value, suffix: str = '') -> str:
    return NOT_RECORDED if value is None else f'{value:g}{suffix}' if isinstance(value, float) else f'{value}{suffix}'


def _tolerance_text(tolerance) -> str:
    """``{'gpa': 2, 'relative': 0.02}`` as "2 GPa or 2 %"; anything else as it is."""
    if isinstance(tolerance, dict) and {'gpa', 'relative'} <= set(tolerance):
        return f'{tolerance["gpa"]:g} GPa or {100 * tolerance["relative"]:g} %, whichever is larger'
    return str(tolerance)


def kpoints_convergence_text(result: dict) -> str:
    """The convergence state of a DFT result's k-mesh, from its ``kpoints_*`` metadata."""
    converged, history = result.get('kpoints_converged'), result.get('kpoints_convergence') or []
    if converged is None and not history:
        return f'k-convergence {NOT_RECORDED}'
    meshes = ' -> '.join(_mesh(entry.get('kpoints_mesh')) for entry in history)
    state = {True: 'converged', False: 'NOT converged', None: 'convergence state not recorded'}.get(
        converged, str(converged)
    )
    text = f'k-mesh {state}'
    if result.get('kpoints_tolerance') is not None:
        text += f' (tolerance {_tolerance_text(result["kpoints_tolerance"])})'
    if meshes:
        text += f'; meshes {meshes}'
        last = history[-1]
        values = [f'{name.upper()} {last[name]:.1f}' for name in ('c11', 'c12', 'c44') if name in last]
        if values:
            text += f' ({", ".join(values)} GPa on the last)'
    return text


def verification_text(verification: dict) -> str:
    """nu and epsilon with their agreement class, or the reason there is no comparison."""
    status = verification.get('status')
    if status == 'compared':
        quantities, agreement = verification['quantities'], verification.get('agreement') or {}
        metrics = ', '.join(
            f'{name} = {quantities[name]["value"]:.3g} ({agreement.get(name, "?")})'
            for name in ('nu', 'epsilon')
            if name in quantities
        )
        differences = ', '.join(
            f'{label} {100 * quantities[f"{name}_relative_difference"]["value"]:+.2f} %'
            for name, label in (('v0', 'V0'), ('b0', 'B0'), ('b1', 'B1'))
            if f'{name}_relative_difference' in quantities
        )
        source = verification.get('reference_citation') or verification.get('reference_source')
        return f'verification: {metrics}; {differences} against the all-electron PBE average of {source}'
    if status == 'no_reference':
        return f'verification: none, {verification.get("reason")}'
    if status == 'not_applicable':
        return f'verification: not applicable ({verification.get("reason")})'
    return f'verification: {NOT_RECORDED} ({verification.get("reason")})'


def _dft_result_lines(data: dict) -> list[str]:
    lines = [f'DFT results ({len(data["dft_results"])}, handed on by dft_to_md)']
    for index, result in enumerate(data['dft_results']):
        last = index == len(data['dft_results']) - 1
        branch, pipe = ('└─', '  ') if last else ('├─', '│ ')
        lines.append(f'{branch} {result["label"]} ({result["producer"]})  HandoffData {result["uuid"]}')
        functional = result['functional']
        functional = NOT_RECORDED if functional is None else str(functional).upper()
        lines.append(f'{pipe}    functional {functional}, family {_or_not_recorded(result["pseudo_family"])}')
        if result.get('functional_bias'):
            lines.append(f'{pipe}    functional bias: {result["functional_bias"]}')
        lines.append(
            f'{pipe}    cutoffs ecutwfc {_or_not_recorded(result["ecutwfc"], " Ry")}, ecutrho '
            f'{_or_not_recorded(result["ecutrho"], " Ry")}, source: {_or_not_recorded(result["cutoffs_source"])}'
        )
        smearing = result['smearing']
        lines.append(
            f'{pipe}    k-mesh {_mesh(result["kpoints_mesh"])}, smearing {_or_not_recorded(smearing["type"])} '
            f'{_or_not_recorded(smearing["degauss"], " Ry")}, nspin {_or_not_recorded(result["nspin"])}'
        )
        lines.append(f'{pipe}    {kpoints_convergence_text(result)}')
        lines.append(f'{pipe}    {verification_text(result["verification"])}')
    return lines


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
    lines.extend(_dft_result_lines(data))
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
    lines.extend(_budget_lines(data))
    if weakest:
        source = weakest_source(data, weakest)
        if weakest.get('basis') == 'variance_share':
            lines.append(
                f'weakest handoff: {source} {weakest["quantity"]} ({weakest["share"]:.0%} of the variance of '
                f'{weakest["macro_quantity"]})' + (f' in {weakest["uuid"]}' if weakest['uuid'] else '')
            )
        else:
            lines.append(
                f'weakest handoff: {source} {weakest["quantity"]} (relative std {weakest["relative_std"]:.3g}; no '
                f'variance budget in this macro node) in {weakest["uuid"]}'
            )
    else:
        lines.append('weakest handoff: no handoff carries a std')
    return '\n'.join(lines)


def weakest_source(data: dict, weakest: dict) -> str:
    """What holds the weakest input: a bridge's name, ``assumption``, or ``sampling`` (the spread over realisations)."""
    if weakest.get('uuid') is None:
        return 'sampling'
    bridge = next((h['bridge'] for h in data['handoffs'] if h['uuid'] == weakest['uuid']), None)
    return bridge or 'assumption'


def _budget_lines(data: dict, top: int = 4) -> list[str]:
    """Per macro quantity, its relative std and the inputs with the largest shares of its variance."""
    budgets = data.get('variance_budget') or []
    if not budgets:
        return []
    lines = ['variance budget (first order: share of each input in the variance of each macro quantity)']
    for entry_budget in budgets:
        relative = entry_budget.get('relative_std')
        head = f'  {entry_budget["macro_quantity"]}' + (f' (relative std {relative:.3g})' if relative else '')
        shares = [
            f'{e["quantity"]}{" (ln)" if e["log"] else ""} {e["share"]:.0%}'
            for e in entry_budget['entries'][:top]
            if e['share'] is not None
        ]
        lines.append(f'{head}: ' + ', '.join(shares))
    lines.append('')
    return lines
