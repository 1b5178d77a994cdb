"""Provenance queries on hand-built graphs (mock: no codes), so each check is shown to fail when it should."""

from __future__ import annotations

import json

import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.provenance.boundaries import boundary_violations


def _process(cls, label, caller=None, call_label=None):
    node = cls()
    node.set_process_label(label)
    node.set_process_state('finished')
    if caller is not None:
        link = LinkType.CALL_WORK if isinstance(node, orm.WorkflowNode) else LinkType.CALL_CALC
        node.base.links.add_incoming(caller, link, call_label or label)
    return node


def _mock_chain(through_bridge: bool):
    """chain -> rung_a (returns x made by a calcfunction inside it) -> [bridge] -> rung_b."""
    chain = _process(orm.WorkChainNode, 'MultiscaleWorkChain')
    chain.store()
    rung_a = _process(orm.WorkChainNode, 'DftWorkChain', chain, 'dft')
    rung_a.store()
    fit = _process(orm.CalcFunctionNode, 'fit_equation_of_state', rung_a)
    fit.store()
    x = HandoffData({'a0': {'value': 4.04, 'unit': 'angstrom', 'std': 0.01}})
    x.base.links.add_incoming(fit, LinkType.CREATE, 'eos')
    x.store()
    x.base.links.add_incoming(rung_a, LinkType.RETURN, 'eos')
    handed = x
    if through_bridge:
        bridge = _process(orm.CalcFunctionNode, 'dft_to_md', chain)
        bridge.base.links.add_incoming(x, LinkType.INPUT_CALC, 'eos')
        bridge.store()
        handed = HandoffData({'a0': {'value': 4.04, 'unit': 'angstrom', 'std': 0.01}}, bridge='dft_to_md')
        handed.base.links.add_incoming(bridge, LinkType.CREATE, 'eos')
        handed.store()
    user_input = orm.Str('Al').store()
    rung_b = _process(orm.WorkChainNode, 'MdWorkChain', chain, 'md')
    rung_b.base.links.add_incoming(handed, LinkType.INPUT_WORK, 'dft__eos')
    rung_b.base.links.add_incoming(user_input, LinkType.INPUT_WORK, 'element')
    rung_b.store()
    return chain


@pytest.mark.parametrize('through_bridge', [True, False])
def test_boundary_check_mock(aiida_profile, through_bridge):
    """The check passes when the value went through a bridge and names the input when it did not."""
    violations = boundary_violations(_mock_chain(through_bridge))
    if through_bridge:
        assert violations == []
    else:
        assert len(violations) == 1
        assert "'dft__eos'" in violations[0] and 'fit_equation_of_state' in violations[0]


def test_eos_points_are_the_fitted_ones_mock(aiida_profile):
    """The EOS picture's points are the inputs of the fit that made ``eos`` (hand-built graph), not every SCF at an
    isotropic scaling: a zero-strain cell of the elastic stage (same volume, another k-mesh) stays out."""
    import types

    from ase.build import bulk

    from aiida_multiscale.provenance.pictures import eos_points

    fit = _process(orm.CalcFunctionNode, 'fit_equation_of_state')
    expected = []
    for index, (a, energy) in enumerate([(3.9, -57.010), (3.96, -57.015), (4.02, -57.012)]):
        structure = orm.StructureData(ase=bulk('Al', 'fcc', a=a)).store()
        parameters = orm.Dict({'energy': energy}).store()
        fit.base.links.add_incoming(structure, LinkType.INPUT_CALC, f'structure_{index}')
        fit.base.links.add_incoming(parameters, LinkType.INPUT_CALC, f'output_parameters_{index}')
        expected.append((structure.get_cell_volume(), energy))
    fit.base.links.add_incoming(orm.Str('multiscale/lda').store(), LinkType.INPUT_CALC, 'pseudo_family')
    fit.store()
    eos = HandoffData({'a0': {'value': 3.96, 'unit': 'angstrom', 'std': 0.001}}, producer='fit_equation_of_state')
    eos.base.links.add_incoming(fit, LinkType.CREATE, 'eos')
    eos.store()
    dft = types.SimpleNamespace(outputs=types.SimpleNamespace(eos=eos))
    points = eos_points(dft)
    assert points == sorted(expected)  # one atom per cell: per-atom values are the cell's


# -- the DFT results in the trace: settings, k-mesh convergence and verification --------------------------------------
def _dft_graph(functional: str, new_keys: bool):
    """fit -> eos, fit -> elastic, verify_equation_of_state(eos), dft_to_md(eos, elastic) -> fem_to_macro -> macro.

    ``new_keys``: the elastic handoff carries the k-convergence keys and the eos the cutoff source (False: an older
    node without them).
    """
    from aiida_multiscale.workflows.functions.verification import verify_equation_of_state

    settings = {
        'functional': functional,
        'pseudo_family': f'multiscale/{functional}',
        'ecutwfc': 45.0,
        'ecutrho': 360.0,
        'kpoints_mesh': [8, 8, 8],
        'smearing': 'mv',
        'degauss': 0.02,
        'nspin': 1,
    }
    if new_keys:
        settings['cutoffs_source'] = "recommended by family 'multiscale/pbe' (stringency normal)"
    if functional == 'lda':
        settings['functional_bias'] = 'LDA overbinds: a0 about 1-2 % small, B0 10-20 % large'
    fit = _process(orm.CalcFunctionNode, 'fit_equation_of_state')
    fit.store()
    v0 = 12.0
    eos = HandoffData(
        {
            'a0': {'value': (4 * v0) ** (1 / 3), 'unit': 'angstrom', 'std': 1e-4},
            'v0': {'value': v0, 'unit': 'angstrom**3', 'std': 0.01},
            'bulk_modulus': {'value': 138.0, 'unit': 'GPa', 'std': 1.0},
            'bulk_modulus_derivative': {'value': 5.0, 'unit': 'dimensionless', 'std': 0.1},
        },
        producer='fit_equation_of_state',
        metadata=settings,
    )
    eos.base.links.add_incoming(fit, LinkType.CREATE, 'eos')
    eos.store()
    verification = verify_equation_of_state(eos, orm.Str('Cu'))

    elastic_settings = dict(settings)
    if new_keys:
        elastic_settings.update(
            kpoints_converged=True,
            kpoints_tolerance={'gpa': 2.0, 'relative': 0.02},
            kpoints_convergence=[
                {'kpoints_mesh': [16, 16, 16], 'c11': 170.0, 'c12': 122.0, 'c44': 78.0},
                {'kpoints_mesh': [20, 20, 20], 'c11': 171.0, 'c12': 121.5, 'c44': 77.2},
            ],
        )
    fit_elastic = _process(orm.CalcFunctionNode, 'converge_elastic_constants')
    fit_elastic.store()
    elastic = HandoffData(
        {
            name: {'value': value, 'unit': 'GPa', 'std': 1.0}
            for name, value in (('c11', 171), ('c12', 121.5), ('c44', 77))
        },
        producer='converge_elastic_constants',
        metadata=elastic_settings,
    )
    elastic.base.links.add_incoming(fit_elastic, LinkType.CREATE, 'elastic')
    elastic.store()

    bridge = _process(orm.CalcFunctionNode, 'dft_to_md')
    bridge.base.links.add_incoming(eos, LinkType.INPUT_CALC, 'eos')
    bridge.base.links.add_incoming(elastic, LinkType.INPUT_CALC, 'elastic')
    bridge.store()
    handed = HandoffData({'c11': {'value': 171, 'unit': 'GPa', 'std': 1.0}}, bridge='dft_to_md')
    handed.base.links.add_incoming(bridge, LinkType.CREATE, 'elastic')
    handed.store()
    final = _process(orm.CalcFunctionNode, 'fem_to_macro')
    final.base.links.add_incoming(handed, LinkType.INPUT_CALC, 'fem')
    final.store()
    macro = HandoffData({'youngs_modulus': {'value': 1.3e11, 'unit': 'Pa', 'std': 2e9}}, bridge='fem_to_macro')
    macro.base.links.add_incoming(final, LinkType.CREATE, 'macro')
    macro.store()
    return macro, eos, elastic, verification


def test_trace_shows_dft_settings_convergence_and_verification_mock(aiida_profile):
    """PBE Cu: the functional, family, cutoffs and their source, the k-mesh convergence and nu/epsilon, in JSON and
    text; nu in the trace is the verification node's (compared by value with the test's formula in
    test_verification.py)."""
    from aiida_multiscale.provenance import render_text, trace, trace_json

    macro, eos, elastic, verification = _dft_graph('pbe', new_keys=True)
    data = trace_json(trace(macro))
    results = {result['label']: result for result in data['dft_results']}
    assert set(results) == {'eos', 'elastic'}
    for result in results.values():
        assert result['functional'] == 'pbe' and result['pseudo_family'] == 'multiscale/pbe'
        assert (result['ecutwfc'], result['ecutrho'], result['kpoints_mesh']) == (45.0, 360.0, [8, 8, 8])
        assert 'recommended by family' in result['cutoffs_source']
    assert results['elastic']['kpoints_converged'] is True
    assert results['elastic']['kpoints_tolerance'] == {'gpa': 2.0, 'relative': 0.02}
    assert len(results['elastic']['kpoints_convergence']) == 2
    check = results['eos']['verification']
    assert check['uuid'] == verification.uuid and check['status'] == 'compared'
    assert check['quantities']['nu']['value'] == pytest.approx(verification.value('nu'))
    # V0 12.0 against the all-electron 11.952 A^3: +0.4 %.
    assert check['quantities']['v0_relative_difference']['value'] == pytest.approx(2 * 0.047775 / 23.952, rel=1e-3)
    assert results['elastic']['verification']['status'] == 'not_applicable'
    assert json.loads(json.dumps(data)) == data  # plain JSON

    text = render_text(trace(macro))
    assert f'eos (fit_equation_of_state)  HandoffData {eos.uuid}' in text
    assert 'functional PBE, family multiscale/pbe' in text
    assert "source: recommended by family 'multiscale/pbe'" in text
    assert 'k-mesh converged (tolerance 2 GPa or 2 %, whichever is larger); meshes 16x16x16 -> 20x20x20' in text
    assert f'nu = {verification.value("nu"):.3g} ({verification.metadata["agreement"]["nu"]})' in text
    assert 'V0 +0.40 %' in text
    assert 'against the all-electron PBE average of Bosoni et al., Nat. Rev. Phys. 6, 45 (2024)' in text
    assert text.index('eos (fit_equation_of_state)') < text.index('elastic (converge_elastic_constants)')


def test_trace_says_why_there_is_no_verification_mock(aiida_profile):
    """LDA, and older nodes without the new keys: the reason, and "not recorded" instead of an error."""
    from aiida_multiscale.provenance import render_text, trace, trace_json

    macro, *_ = _dft_graph('lda', new_keys=False)
    data = trace_json(trace(macro))
    results = {result['label']: result for result in data['dft_results']}
    assert results['eos']['verification']['status'] == 'no_reference'
    assert results['eos']['cutoffs_source'] is None and results['elastic']['kpoints_converged'] is None
    text = render_text(trace(macro))
    assert 'verification: none, the run used LDA; the all-electron reference of Bosoni et al.' in text
    assert 'functional bias: LDA overbinds' in text
    assert 'source: not recorded' in text
    assert 'k-convergence not recorded' in text


def test_web_chain_page_shows_the_dft_results_mock(aiida_profile):
    """The chain page of the web view renders the DFT results of the trace: functional, family, k-mesh convergence,
    nu and epsilon."""
    from aiida_multiscale.web.app import create_app

    macro, eos, _, verification = _dft_graph('pbe', new_keys=True)
    chain = _process(orm.WorkChainNode, 'MultiscaleWorkChain')
    chain.set_process_type('aiida.workflows:multiscale.chain')
    chain.set_exit_status(0)
    chain.store()
    macro.base.links.add_incoming(chain, LinkType.RETURN, 'macro')
    page = create_app(read_only=False).test_client().get(f'/chain/{chain.uuid}').get_data(as_text=True)
    section = page.split('id="dft-results"', 1)[1].split('</section>', 1)[0]
    row = section.split(f'data-uuid="{eos.uuid}"', 1)[1].split('</tr>', 1)[0]
    assert '>PBE<' in row and 'multiscale/pbe' in row and 'recommended by family' in row
    assert f'ν = {verification.value("nu"):.3g} ({verification.metadata["agreement"]["nu"]})' in row
    assert 'converged (16x16x16 → 20x20x20)' in section
