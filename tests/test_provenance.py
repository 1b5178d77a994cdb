"""Provenance queries on hand-built graphs (mock: no codes), so each check is shown to fail when it should."""

from __future__ import annotations

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
