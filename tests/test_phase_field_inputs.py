"""PhaseFieldWorkChain inputs without running MOOSE: validators, protocols, the rendered input of a cycle."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain


def _interface(**changes):
    values = {
        'gb_energy': (0.36, 'J/m**2'),
        'mobility_prefactor': (2.5e-6, 'm**4/(J*s)'),
        'activation_energy': (0.23, 'eV'),
        'temperature': (560.0, 'K'),
        'anneal_time': (1e-4, 's'),
    }
    values.update(changes)
    return HandoffData({k: {'value': v, 'unit': u, 'std': None, 'note': 'test'} for k, (v, u) in values.items()})


def _builder(codes, interface=None, **parameters):
    return PhaseFieldWorkChain.get_builder_from_protocol(
        codes['moose'],
        interface=interface or _interface(),
        protocol='fast',
        overrides={'parameters': parameters} if parameters else None,
    )


@pytest.mark.parametrize(
    ('name', 'value', 'unit', 'match'),
    [
        ('gb_energy', -0.1, 'J/m**2', r'gb_energy \(GB energy sigma\) = -0.1 J/m\*\*2 must be > 0 \(valid range'),
        ('gb_energy', 0.0, 'mJ/m**2', r'gb_energy .* must be > 0'),
        ('mobility_prefactor', 0.0, 'm**4/(J*s)', r'mobility_prefactor \(mobility prefactor M0\) = 0 .* must be > 0'),
        ('gb_energy', 0.3, 'eV', r'gb_energy cannot be converted to J/m\*\*2'),
    ],
)
def test_bad_interface_is_rejected(codes, name, value, unit, match):
    with pytest.raises(ValueError, match=match):
        _builder(codes, interface=_interface(**{name: (value, unit)}))


def test_interface_units_are_converted(codes):
    """Any pint-compatible unit is accepted: mJ/m^2, microseconds."""
    builder = _builder(codes, interface=_interface(gb_energy=(360.0, 'mJ/m**2'), anneal_time=(100.0, 'microsecond')))
    assert builder.interface.value('gb_energy', 'J/m**2') == pytest.approx(0.36)


@pytest.mark.parametrize(
    ('parameters', 'match'),
    [
        ({'interface_width': 2 * 3.0e-6 / 40}, r'interface_width = 1\.5e-07 m is under 3 elements .* valid range'),
        ({'interface_width': 4.0e-7}, r'interface_width = 4e-07 m is over a quarter of the initial grain size'),
        ({'order_parameters': 2}, r'order_parameters = 2 is fewer than the \d that the colouring .* >= \d'),
        ({'grains': 1}, r'grains = 1 must be >= 2'),
        ({'solver': 'lu'}, r"solver must be 'newton' or 'pjfnk'"),
    ],
)
def test_bad_parameters_are_rejected(codes, parameters, match):
    with pytest.raises(ValueError, match=match):
        _builder(codes, **parameters)


def test_protocol_overrides(codes):
    """Unknown keys are refused, the caller's dict is left alone, and None removes a key (back to the default)."""
    with pytest.raises(ValueError, match="unknown override key 'parameters.grain'"):
        _builder(codes, grain=3)
    overrides = {'parameters': {'grains': 8, 'interface_width': None}}
    kept = copy.deepcopy(overrides)
    builder = PhaseFieldWorkChain.get_builder_from_protocol(codes['moose'], protocol='fast', overrides=overrides)
    assert overrides == kept
    assert builder.parameters['grains'] == 8 and 'interface_width' not in builder.parameters.get_dict()
    assert builder.interface.value('gb_energy', 'J/m**2') == pytest.approx(0.36)  # the assumed default for Al
    assert 'assumed' in builder.interface.get_quantity('mobility_prefactor', 'm**4/(J*s)').note
    for protocol in ('fast', 'moderate', 'precise'):
        builder = PhaseFieldWorkChain.get_builder_from_protocol(codes['moose'], protocol=protocol)
        # every cycle is one MooseBaseWorkChain, bounded by the protocol's max_iterations
        assert builder.max_iterations.value == PhaseFieldWorkChain.get_protocol_inputs(protocol)['max_iterations']


def test_standalone_interface_is_the_anneal_of_the_protocol():
    """The stand-alone interface is the protocol's anneal (the chain's too) with its GB energy, all assumed."""
    inputs = PhaseFieldWorkChain.get_protocol_inputs()
    quantities = PhaseFieldWorkChain.standalone_interface()
    assert set(quantities) == {'gb_energy', 'mobility_prefactor', 'activation_energy', 'temperature', 'anneal_time'}
    assert all(quantity['note'].startswith('assumed; source: ') for quantity in quantities.values())
    anneal = inputs['anneal']
    assert quantities['temperature']['value'] == anneal['temperature']['homologous'] * inputs['melting_point']['value']
    mobility = anneal['mobility_prefactor']
    assert quantities['mobility_prefactor']['std'] == pytest.approx(mobility['relative_std'] * mobility['value'])
    assert quantities['gb_energy']['value'] == inputs['gb_energy']['value']


def test_cycle_input_is_rendered(codes):
    """The first cycle's MooseBaseWorkChain inputs: the rendered model, its seed file, checkpoints left to the base."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    builder = _builder(codes)
    process = instantiate_process(get_manager().get_runner(), builder)
    process.setup()
    inputs = process._cycle_inputs()
    first = inputs.moose.input_file.get_content()
    assert 'enable_jit = false' in first and 'type = MatReaction' in first and '${fparse' in first
    assert 'type = PropertyReadFile' in first and inputs.moose.files['grains_csv'].filename == 'grains.csv'
    assert inputs.metadata == {'call_link_label': 'cycle_00'}
    assert inputs.max_iterations.value == builder.max_iterations.value
    assert 'checkpoint_interval' not in inputs and 'recover' not in inputs.moose


def _grain_growth(**changes):
    from aiida_multiscale.engines.moose.phase_field import FunctionStart, build_grain_growth_input

    kwargs = dict(
        gb_energy=0.36, mobility_prefactor=2.5e-6, activation_energy=0.23, temperature=560.0, anneal_time=1e-6,
        domain_size=(5e-6, 5e-6), grid=(100, 100), interface_width=2e-7, n_order_parameters=4,
        start=FunctionStart(['1', '0', '0', '0']),
    )  # fmt: skip
    kwargs.update(changes)
    return build_grain_growth_input(**kwargs)


def _materials(text: str) -> dict[str, str]:
    """Parsed-material expressions of a rendered input, by material name, in Python syntax."""
    found = {}
    for block in text.split('  [')[1:]:
        name = block.split(']', 1)[0]
        expression = re.search(r"expression = '([^']*)'", block)
        if expression and 'ParsedMaterial' in block:
            found[name] = expression.group(1).replace('^', '**')
    return found


def test_split_formulation_is_the_same_bulk_force():
    """The default ``split`` input regroups the pairwise driving force exactly: for random etas,
    ``L mu dF_i = -(rate_S + rate_i) eta_i``, with the expressions taken from the rendered inputs."""
    pairwise = _materials(_grain_growth(formulation='pairwise', time_integration='implicit').text)
    split_built = _grain_growth(time_integration='implicit')
    split = _materials(split_built.text)
    assert set(pairwise) == {'dF0', 'dF1', 'dF2', 'dF3'} and set(split) == {
        'rate_S',
        'rate0',
        'rate1',
        'rate2',
        'rate3',
    }
    assert split_built.text.count('type = MatReaction') == 8 and 'MatBodyForce' not in split_built.text
    lmu = split_built.constants['L'] * split_built.constants['mu']
    rng = np.random.default_rng(0)
    for _ in range(5):
        values = dict(zip(['eta0', 'eta1', 'eta2', 'eta3'], rng.uniform(-0.2, 1.2, 4)))
        for k in range(4):
            bulk = lmu * eval(pairwise[f'dF{k}'], {}, values)  # noqa: S307 - our own rendered expression
            rates = sum(eval(split[name], {}, {**values, 'Lmu': lmu}) for name in ('rate_S', f'rate{k}'))  # noqa: S307
            assert -rates * values[f'eta{k}'] == pytest.approx(bulk, rel=1e-12, abs=1e-12 * lmu)


def test_explicit_stable_dt_matches_the_lumped_laplacian():
    """The diffusion part of ``explicit_stable_dt`` is the largest eigenvalue of the lumped-mass bilinear Laplacian,
    checked against the matrix assembled here on a small periodic grid (hx != hy)."""
    from aiida_multiscale.engines.moose.phase_field import EXPLICIT_SAFETY, explicit_stable_dt, model_constants

    nx, ny, hx, hy = 6, 4, 1.0, 1.7
    k1 = lambda n, h: (2 * np.eye(n) - np.roll(np.eye(n), 1, 0) - np.roll(np.eye(n), -1, 0)) / h  # noqa: E731
    m1 = lambda n, h: h * (4 * np.eye(n) + np.roll(np.eye(n), 1, 0) + np.roll(np.eye(n), -1, 0)) / 6  # noqa: E731
    stiffness = np.kron(k1(nx, hx), m1(ny, hy)) + np.kron(m1(nx, hx), k1(ny, hy))
    largest = np.max(np.linalg.eigvalsh(stiffness / (hx * hy)))
    # Zero bulk term: mu -> 0 leaves diffusion only (kappa and L fixed, D = L kappa = 1 in nm^2/ns).
    constants = {'L': 1.0, 'kappa': 1.0, 'mu': 0.0}
    dt = explicit_stable_dt(constants, (hx * 1e-9, hy * 1e-9))
    assert dt == pytest.approx(EXPLICIT_SAFETY * 2 / largest * 1e-9, rel=1e-3)
    # The bulk term shortens it: 6 L mu is added to the largest rate.
    real = model_constants(0.36, 1e-8, 2e-7)
    assert explicit_stable_dt(real, (5e-8, 5e-8)) < explicit_stable_dt({**real, 'mu': 0.0}, (5e-8, 5e-8))


def test_time_integration_choice():
    """``auto`` integrates explicitly only when dt_max is a few stable steps, and the inputs differ accordingly."""
    from aiida_multiscale.engines.moose.phase_field import explicit_stable_dt

    built = _grain_growth(time_integration='implicit')
    stable = explicit_stable_dt(built.constants, (5e-8, 5e-8))
    short = _grain_growth(dt_max=2 * stable)
    assert 'ActuallyExplicitEuler' in short.text and 'NEWTON' not in short.text
    assert 'type = ParsedMaterial' in short.text and 'DerivativeParsedMaterial' not in short.text  # no Jacobian
    dtmax = float(re.search(r'dtmax = (\S+)', short.text).group(1))
    assert dtmax == pytest.approx(stable * 1e9)  # capped at the stable step, not dt_max
    long = _grain_growth(dt_max=100 * stable)
    assert 'ActuallyExplicitEuler' not in long.text and 'solve_type = NEWTON' in long.text
    assert 'type = DerivativeParsedMaterial' in long.text
    with pytest.raises(ValueError, match="time_integration must be 'auto', 'implicit' or 'explicit'"):
        _grain_growth(time_integration='rk4')
    with pytest.raises(ValueError, match="formulation must be 'split' or 'pairwise'"):
        _grain_growth(formulation='single')
