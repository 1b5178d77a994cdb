"""PhaseFieldWorkChain on real MOOSE: reduced-unit grain growth in realisations, the growth law, the extrapolation,
re-colouring, and the physical handoff."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiida.engine import run_get_node

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

#: A small periodic polycrystal: 12 grains on a 40 x 40 grid (the starting grain 13 elements across, the interface 3),
#: run until 6 are left (seconds of MOOSE per cycle).
SMALL = {
    'grid': 40,
    'grains': 12,
    'min_grains': 6,
    'interface_elements': 3,
    'order_parameters': 6,
    'seed': 3,
    'realisations': 1,
    'cycle_time': 0.15,
    'max_cycles': 6,
    'frames_per_cycle': 4,
    'dt_max_fraction': 0.25,
}
#: Boltzmann constant in eV/K from the exact SI values (not the package's), for the test's own conversion.
BOLTZMANN_EV = 1.380649e-23 / 1.602176634e-19


def _interface(anneal_time=2.0e-5, temperature=700.0, prefactor=2.5e-6, d0=0.25e-6, sigma=0.36):
    return HandoffData(
        {
            'gb_energy': {'value': sigma, 'unit': 'J/m**2', 'std': None, 'note': 'test'},
            'mobility_prefactor': {'value': prefactor, 'unit': 'm**4/(J*s)', 'std': None, 'note': 'test'},
            'activation_energy': {'value': 0.23, 'unit': 'eV', 'std': None, 'note': 'test'},
            'temperature': {'value': temperature, 'unit': 'K', 'std': None, 'note': 'test'},
            'anneal_time': {'value': anneal_time * 1e6, 'unit': 'microsecond', 'std': None, 'note': 'test, in us'},
            'initial_grain_size': {'value': d0 * 1e6, 'unit': 'um', 'std': None, 'note': 'test, in um'},
        }
    )


def _time_unit(temperature=700.0, prefactor=2.5e-6, d0=0.25e-6, sigma=0.36):
    """d0^2 / (M sigma) in s, computed here from the inputs (the test's own conversion)."""
    mobility = prefactor * math.exp(-0.23 / (BOLTZMANN_EV * temperature))
    return d0**2 / (mobility * sigma)


def _run(codes, interface=None, **overrides):
    builder = PhaseFieldWorkChain.get_builder_from_protocol(
        codes['moose'],
        interface=interface or _interface(),
        protocol='fast',
        overrides={'parameters': {**SMALL, **overrides}},
    )
    return run_get_node(builder)


@pytest.fixture(scope='module')
def extrapolated(codes):
    """One run whose requested anneal lies far beyond what 12 grains can simulate: the law extrapolates."""
    return _run(codes)


@pytest.mark.real_code
@pytest.mark.slow
def test_grain_growth_recolouring(extrapolated):
    """With re-colouring: the grain count never rises, no two grains merge, every cycle is a node in the graph."""
    results, node = extrapolated
    assert node.is_finished_ok, node.exit_message
    history = results['grain_history']
    counts = history.get_array('grain_count')
    print('counts', counts.tolist(), 'reduced times', history.get_array('reduced_time').tolist())
    assert counts[0] <= SMALL['grains']
    assert np.all(np.diff(counts) <= 0), f'grain count rose: {counts}'
    assert counts[-1] < SMALL['min_grains'] or len(counts) == SMALL['max_cycles'] * SMALL['frames_per_cycle']
    assert history.get_array('merges').sum() == 0
    assert np.all(np.diff(history.get_array('reduced_time')) > 0)
    labels = {link.link_label for link in node.base.links.get_outgoing().all()}
    cycles = len(counts) // SMALL['frames_per_cycle']
    for cycle in range(cycles):
        assert f'realisation_00_cycle_{cycle:02d}' in labels  # one MooseBaseWorkChain per cycle
        assert f'analyse_realisation_00_cycle_{cycle:02d}' in labels
    # Euler angles travel with their grains: every final orientation is one of the initial ones.
    initial = {tuple(np.round(row, 9)) for row in results['initial_microstructure'].euler_angles}
    assert all(tuple(np.round(row, 9)) in initial for row in results['microstructure'].euler_angles)
    assert 'grain_growth_plot' in results


@pytest.mark.real_code
@pytest.mark.slow
def test_extrapolated_size_follows_the_law(extrapolated):
    """Beyond the run, the size is the fitted law's: checked by a fit done here (numpy) over the same frames, and
    the physical times are the reduced ones times d0^2/(M sigma) computed here."""
    results, _ = extrapolated
    stats = results['grain_statistics']
    history = results['grain_history']
    row = stats.metadata['realisations'][0]
    tau_unit = _time_unit()
    # Physical time = reduced time x d0^2 / (M sigma).
    np.testing.assert_allclose(history.get_array('time'), history.get_array('reduced_time') * tau_unit, rtol=1e-6)
    requested = 2.0e-5 / tau_unit
    assert stats.value('reduced_time', 'dimensionless') == pytest.approx(requested, rel=1e-6)
    factor = stats.value('extrapolation_factor', 'dimensionless')
    assert factor == pytest.approx(requested / row['simulated_reduced_time'], rel=1e-9)
    assert factor > 1
    # The same least-squares line through (tau, (d/d0)^2) over the law's window, fitted with numpy.
    tau = history.get_array('reduced_time')
    d0 = 0.25e-6
    squared = (history.get_array('area_diameter') / d0) ** 2
    window = (tau >= row['law_start_reduced_time'] - 1e-12) & (tau <= row['simulated_reduced_time'] + 1e-12)
    slope, intercept = np.polyfit(tau[window], squared[window], 1)
    assert row['rate_constant_reduced'] == pytest.approx(slope, rel=1e-6)
    # The map handed on is rescaled so that its area-equivalent diameter is the law's at the requested time.
    micro = results['microstructure']
    areas = np.unique(micro.grain_ids, return_counts=True)[1] * micro.pixel_size**2
    predicted = d0 * math.sqrt(intercept + slope * requested)
    assert math.sqrt(4 * areas.mean() / math.pi) == pytest.approx(predicted, rel=1e-6)
    # k in m^2/s is the reduced one times M sigma.
    assert stats.value('growth_rate_constant', 'm**2/s') == pytest.approx(slope * d0**2 / tau_unit, rel=1e-6)
    assert stats['mean_grain_size'].std > 0


@pytest.mark.real_code
@pytest.mark.slow
def test_grain_growth_merges_without_recolouring(codes):
    """Without re-colouring, grains that share an order parameter merge once the grain between them vanishes."""
    results, node = _run(codes, recolouring=False, order_parameters=5, max_cycles=3)
    assert node.is_finished_ok, node.exit_message
    history = results['grain_history']
    print('recolouring off: counts', history.get_array('grain_count').tolist(), history.get_array('merges').tolist())
    assert history.get_array('merges').sum() >= 1


def _inputs_of(node) -> dict:
    from aiida.common.links import LinkType

    return {link.link_label: link.node for link in node.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()}


@pytest.mark.real_code
@pytest.mark.slow
def test_half_the_run_extrapolated_predicts_the_full_run(fast_chain):
    """The extrapolation checked against the simulation itself: the rung's own results calcfunction, given only the
    first half of the test chain's phase-field cycles (20 grains on 40 x 40, 8 cycles) and asked for the time the
    whole run reached, predicts the size the whole run simulated there, within 2 of its stated stds.

    The anneal asked of both is the whole run's last usable reduced time, set through the anneal time in proportion
    (reduced time is physical time over d0^2 / (M sigma)), so the whole run hands on that frame unextrapolated.
    """
    from aiida_multiscale.workflows.functions.phase_field import grain_growth_results

    (rung,) = [n for n in fast_chain.called if n.process_label == 'PhaseFieldWorkChain']
    (results_node,) = [n for n in rung.called if n.process_label == 'grain_growth_results']
    inputs = _inputs_of(results_node)
    statistics = rung.outputs.grain_statistics
    row = statistics.metadata['realisations'][0]
    end = row['simulated_reduced_time']
    interface = inputs['interface']
    quantities = {name: dict(interface[name].as_dict()) for name in interface.names}
    quantities['anneal_time']['value'] *= end / statistics.value('reduced_time', 'dimensionless')
    at_end = HandoffData(quantities)
    cycles = sorted(key for key in inputs if key.startswith('statistics_00_'))
    half = cycles[: len(cycles) // 2]
    # The grain table (Euler angles) after the last cycle of the half run: the output of that cycle's analysis.
    (analysis,) = [n for n in rung.called if n.process_label == 'analyse_cycle' and n.outputs.statistics.uuid
                   == inputs[half[-1]].uuid]  # fmt: skip
    half_inputs = {key: inputs[key] for key in half}
    half_inputs.update(initial_table_00=inputs['initial_table_00'], grain_table_00=analysis.outputs.grain_table)
    full_inputs = {key: node for key, node in inputs.items() if key not in ('interface', 'parameters')}
    full = grain_growth_results(interface=at_end, parameters=inputs['parameters'], **full_inputs)['grain_statistics']
    predicted = grain_growth_results(interface=at_end, parameters=inputs['parameters'], **half_inputs)
    predicted = predicted['grain_statistics']
    assert full.value('extrapolation_factor', 'dimensionless') == 1.0
    factor = predicted.value('extrapolation_factor', 'dimensionless')
    assert factor > 1.5, factor  # the half run really extrapolates, by about 2
    simulated, guess = full.value('mean_grain_size', 'm'), predicted.value('mean_grain_size', 'm')
    std = predicted['mean_grain_size'].std
    print(
        f'half run extrapolated x{factor:.2f}: {guess * 1e6:.4f} +/- {std * 1e6:.4f} um; the whole run simulated '
        f'{simulated * 1e6:.4f} um at reduced time {end:.3f} ({(guess - simulated) / std:+.2f} std)'
    )
    assert abs(guess - simulated) < 2 * std
