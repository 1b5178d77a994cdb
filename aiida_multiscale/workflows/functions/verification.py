"""Verification of the DFT rung's equation of state against the all-electron reference of Bosoni et al. 2024.

:func:`verify_equation_of_state` compares the Birch-Murnaghan fit of the ``eos`` handoff with the all-electron PBE
average (WIEN2k and FLEUR) of Bosoni et al., Nat. Rev. Phys. 6, 45 (2024), for the fcc crystal of the element, with
the metrics nu and epsilon of that paper (:mod:`aiida_multiscale.physics.verification` defines them).

When there is no reference on the same footing, the comparison is not made, and the node says why, instead of being
absent: the ``DftWorkChain`` calls this calcfunction for every run on an ``element``, and the ``verification`` output
is then a ``HandoffData`` without quantities whose ``metadata.status`` is ``'no_reference'`` and whose
``metadata.reason`` says what differs (the functional is LDA, the run is spin-polarised, the element's ground state is
not fcc, or the table has no such element).  ``metadata.status == 'compared'`` marks a node with the five quantities
``nu``, ``epsilon``, ``v0_relative_difference``, ``b0_relative_difference`` and ``b1_relative_difference``.  A rung
run on a ``structure`` has no element to look up and no ``verification`` output; ``aiida-multiscale trace`` says so.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.physics import verification

__all__ = ('verify_equation_of_state',)


def _relative_difference_std(value: float, std: float | None, reference: float) -> float | None:
    """First-order std of ``relative_difference(value, reference)`` from the fit std of ``value`` (reference exact)."""
    if std is None:
        return None
    return abs(4.0 * reference / (value + reference) ** 2) * std


@calcfunction
def verify_equation_of_state(eos: HandoffData, element: orm.Str) -> HandoffData:
    """nu, epsilon and the relative differences of V0, B0 and B1 against the all-electron fcc PBE reference.

    :param eos: the ``eos`` handoff of the DFT rung (v0 [angstrom^3 per atom], bulk_modulus, bulk_modulus_derivative
        and a0; metadata ``functional``, ``nspin``).
    :param element: the chemical symbol the rung ran on.
    :return: the ``verification`` handoff (dft -> dft), its ``metadata.status`` ``'compared'`` or ``'no_reference'``.
    """
    table = verification.load_reference()
    symbol = element.value
    metadata = eos.metadata
    atoms_per_cube = eos.value('a0', 'angstrom') ** 3 / eos.value('v0', 'angstrom**3')
    common = {
        'element': symbol,
        'reference_citation': table['citation'],
        'reference_source': table['source'],
        'reference_licence': f'{table["licence"]["name"]}: {table["licence"]["applies_to"]}',
        'functional': metadata.get('functional'),
        'nspin': metadata.get('nspin'),
    }
    reason = verification.why_not_comparable(symbol, metadata.get('functional'), metadata.get('nspin'), atoms_per_cube)
    if reason is not None:
        return HandoffData(
            producer='verify_equation_of_state',
            from_scale='dft',
            to_scale='dft',
            metadata={**common, 'status': 'no_reference', 'reason': reason},
        )

    fitted = verification.BirchMurnaghan(
        eos.value('v0', 'angstrom**3'), eos.value('bulk_modulus', 'GPa'), eos.value('bulk_modulus_derivative')
    )
    result = verification.compare_with_reference(symbol, fitted)
    reference = result['reference']
    stds = {
        'v0': eos.get_quantity('v0', 'angstrom**3').std,
        'b0': eos.get_quantity('bulk_modulus', 'GPa').std,
        'b1': eos['bulk_modulus_derivative'].std,
    }
    source = table['citation']
    against = f'against the all-electron PBE average (WIEN2k, FLEUR) for fcc {symbol} of {source}'
    low, high = result['volume_window']
    quantities = {
        'nu': {
            'value': result['nu'],
            'unit': 'dimensionless',
            'note': f'nu of {source} (x100; weights V0 1, B0 1/20, B1 1/400) of the Birch-Murnaghan fit {against}; '
            f"{result['agreement']['nu']} agreement by the paper's thresholds (excellent < 0.10, good < 0.33, outlier "
            '> 1.65); no std: the fit covariance of V0, B0, B1 is not kept',
        },
        'epsilon': {
            'value': result['epsilon'],
            'unit': 'dimensionless',
            'note': f'epsilon of {source}: rms of E(V) - E_ref(V) (minima aligned) over V = {low:.4g}-{high:.4g} '
            f'angstrom^3 (mean V0 +/- 6 %), over the rms spread of each curve, {against}; '
            f'{result["agreement"]["epsilon"]} agreement (excellent < 0.06, good < 0.20, outlier > 1.0); no std',
        },
    }
    labels = {'v0': 'V0', 'b0': 'B0', 'b1': "B1 = B0'"}
    for name, label in labels.items():
        value = getattr(fitted, name)
        quantities[f'{name}_relative_difference'] = {
            'value': result[f'{name}_relative_difference'],
            'unit': 'dimensionless',
            'std': _relative_difference_std(value, stds[name], reference[name]),
            'note': f'(ours - reference) / mean of the two, {label} = {value:.6g} vs {reference[name]:.6g} {against}; '
            'std from the fit std of ours',
        }
    return HandoffData(
        quantities,
        producer='verify_equation_of_state',
        from_scale='dft',
        to_scale='dft',
        metadata={
            **common,
            'status': 'compared',
            'reference': reference,
            'agreement': result['agreement'],
            'volume_window': result['volume_window'],
            'nu_weights': dict(verification.NU_WEIGHTS),
            'thresholds': verification.THRESHOLDS,
        },
    )
