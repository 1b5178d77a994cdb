"""PhaseFieldWorkChain on real MOOSE: grain growth with and without re-colouring, outputs per the contract."""

from __future__ import annotations

import numpy as np
import pytest
from aiida.engine import run_get_node

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

#: A small periodic polycrystal in which grains vanish within the anneal (a few seconds of MOOSE per cycle).
SMALL = {
    'grid': 32,
    'domain_size': 2.0e-6,
    'interface_width': 3 * 2.0e-6 / 32,
    'grains': 8,
    'order_parameters': 6,
    'seed': 3,
    'cycles': 4,
    'frames_per_cycle': 2,
    'dt_max_fraction': 0.2,
}


def _interface(anneal_time=2.0e-5, temperature=700.0):
    return HandoffData(
        {
            'gb_energy': {'value': 0.36, 'unit': 'J/m**2', 'std': None, 'note': 'test'},
            'mobility_prefactor': {'value': 2.5e-6, 'unit': 'm**4/(J*s)', 'std': None, 'note': 'test'},
            'activation_energy': {'value': 0.23, 'unit': 'eV', 'std': None, 'note': 'test'},
            'temperature': {'value': temperature, 'unit': 'K', 'std': None, 'note': 'test'},
            'anneal_time': {'value': anneal_time * 1e6, 'unit': 'microsecond', 'std': None, 'note': 'test, in us'},
        }
    )


def _run(codes, **overrides):
    builder = PhaseFieldWorkChain.get_builder_from_protocol(
        codes['moose'], interface=_interface(), protocol='fast', overrides={'parameters': {**SMALL, **overrides}}
    )
    return run_get_node(builder)


@pytest.mark.real_code
@pytest.mark.slow
def test_grain_growth_recolouring(codes):
    """With re-colouring: the grain count never rises, no two grains merge, every cycle is a node in the graph."""
    results, node = _run(codes, recolouring=True)
    assert node.is_finished_ok, node.exit_message
    history = results['grain_history']
    counts = history.get_array('grain_count')
    print('recolouring on: counts', counts.tolist(), 'merges', history.get_array('merges').tolist())
    assert counts[0] <= SMALL['grains']
    assert np.all(np.diff(counts) <= 0), f'grain count rose: {counts}'
    assert counts[-1] < SMALL['grains'], 'no grain vanished: the test anneal is too short to test anything'
    assert history.get_array('merges').sum() == 0
    assert np.all(np.diff(history.get_array('time')) > 0)
    stats = results['grain_statistics']
    assert stats.value('grain_count', 'dimensionless') == results['microstructure'].grain_count == counts[-1]
    assert results['initial_microstructure'].grain_count == SMALL['grains']
    # Mean intercept length and mean area grow as grains vanish (2-D coarsening).
    assert history.get_array('mean_intercept_length')[-1] > history.get_array('mean_intercept_length')[0]
    assert stats.value('mean_grain_size', 'm') > results['initial_microstructure'].mean_grain_size
    labels = {link.link_label for link in node.base.links.get_outgoing().all()}
    for cycle in range(SMALL['cycles']):
        assert f'cycle_{cycle:02d}' in labels  # one MooseBaseWorkChain per cycle
        assert f'analyse_cycle_{cycle:02d}' in labels
    # Euler angles travel with their grains: every final orientation is one of the initial ones.
    initial = {tuple(np.round(row, 9)) for row in results['initial_microstructure'].euler_angles}
    assert all(tuple(np.round(row, 9)) in initial for row in results['microstructure'].euler_angles)


@pytest.mark.real_code
@pytest.mark.slow
def test_grain_growth_merges_without_recolouring(codes):
    """Without re-colouring, grains that share an order parameter merge once the grain between them vanishes."""
    results, node = _run(codes, recolouring=False, order_parameters=4)
    assert node.is_finished_ok, node.exit_message
    history = results['grain_history']
    print(
        'recolouring off: counts',
        history.get_array('grain_count').tolist(),
        'merges',
        history.get_array('merges').tolist(),
    )
    assert history.get_array('merges').sum() >= 1
