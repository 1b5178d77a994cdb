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
        'initial_grain_size': (1e-5, 'm'),
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
        ('anneal_time', 0.0, 's', r'anneal_time \(the anneal time\) = 0 s must be > 0'),
        ('temperature', -5.0, 'K', r'temperature \(the anneal temperature\) = -5 K must be > 0'),
        ('initial_grain_size', 2.0, 'nm', r'initial_grain_size = 2e-09 m is below 1e-08 m.*at least 10 nm'),
        ('melting_point', 500.0, 'K', r'temperature = 560 K is at or above the melting point 500 K'),
    ],
)
def test_bad_interface_is_rejected(codes, name, value, unit, match):
    with pytest.raises(ValueError, match=match):
        _builder(codes, interface=_interface(**{name: (value, unit)}))


def test_interface_units_are_converted(codes):
    """Any pint-compatible unit is accepted: mJ/m^2, microseconds."""
    builder = _builder(codes, interface=_interface(gb_energy=(360.0, 'mJ/m**2'), anneal_time=(100.0, 'microsecond')))
    assert builder.interface.value('gb_energy', 'J/m**2') == pytest.approx(0.36)


def test_interface_without_initial_grain_size_names_the_fix(codes):
    """An interface of the first version (no d0) is refused before submission, naming the quantity and the option."""
    old = _interface()
    quantities = {name: old.get_quantity(name) for name in old.names if name != 'initial_grain_size'}
    interface = HandoffData(
        {n: {'value': q.value, 'unit': q.unit, 'std': q.std, 'note': q.note} for n, q in quantities.items()}
    )
    with pytest.raises(ValueError, match=r"'initial_grain_size' is missing .*--initial-grain-size"):
        _builder(codes, interface=interface)


@pytest.mark.parametrize(
    ('parameters', 'match'),
    [
        ({'interface_elements': 2}, r'interface_elements must be >= 3, got 2'),
        ({'grid': 40}, r'a grid of 40 elements cannot hold 60 grains: .* give grid >= 83 or fewer grains'),
        ({'order_parameters': 2}, r'order_parameters = 2 is fewer than the \d+ that the colouring .* >= \d'),
        ({'grains': 40}, r'grains = 40 must be at least twice min_grains = 25'),
        ({'solver': 'lu'}, r"solver must be 'newton' or 'pjfnk'"),
        ({'cycle_time': 0}, r'cycle_time must be a number in \(0, inf\]'),
        ({'realisations': 0}, r'realisations must be a positive integer'),
    ],
)
def test_bad_parameters_are_rejected(codes, parameters, match):
    with pytest.raises(ValueError, match=match):
        _builder(codes, **parameters)


@pytest.mark.parametrize(
    ('parameters', 'match'),
    [
        ({'domain_size': 3e-6}, r'`domain_size` is gone .* `initial_grain_size`'),
        ({'interface_width': 1e-7}, r'`interface_width` is gone .* `interface_elements`'),
        ({'cycles': 4}, r'`cycles` is gone .* `cycle_time`'),
    ],
)
def test_parameters_of_the_first_version_name_their_replacement(codes, parameters, match):
    """A stored Dict of the first version (SI domain, cycles) is refused by the port, naming what replaced it."""
    from aiida import orm

    builder = _builder(codes)
    with pytest.raises(ValueError, match=match):
        builder.parameters = orm.Dict({**builder.parameters.get_dict(), **parameters})


def test_protocol_overrides(codes):
    """Unknown keys are refused, the caller's dict is left alone, and None removes a key (back to the default)."""
    with pytest.raises(ValueError, match="unknown override key 'parameters.grain'"):
        _builder(codes, grain=3)
    overrides = {'parameters': {'grains': 50, 'seed': None}}
    kept = copy.deepcopy(overrides)
    builder = PhaseFieldWorkChain.get_builder_from_protocol(codes['moose'], protocol='fast', overrides=overrides)
    assert overrides == kept
    assert builder.parameters['grains'] == 50 and 'seed' not in builder.parameters.get_dict()
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
    assumed = {
        'gb_energy',
        'mobility_prefactor',
        'activation_energy',
        'temperature',
        'anneal_time',
        'initial_grain_size',
    }
    assert set(quantities) == assumed | {'melting_point'}
    assert all(quantities[name]['note'].startswith('assumed; source: ') for name in assumed)
    assert quantities['melting_point']['value'] == inputs['melting_point']['value']
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
    inputs = process._cycle_inputs('0')
    first = inputs.moose.input_file.get_content()
    assert 'enable_jit = false' in first and 'type = MatReaction' in first and '${fparse' in first
    assert 'type = PropertyReadFile' in first and inputs.moose.files['grains_csv'].filename == 'grains.csv'
    assert inputs.metadata == {'call_link_label': 'realisation_00_cycle_00'}
    # Reduced units: no physical constant in the model, so another M, sigma, d0 or t renders the same file.
    assert 'sigma = 1.0' in first and 'M = 1.0' in first and 'gb_energy' not in first and 'temperature' not in first
    other = _builder(codes, interface=_interface(gb_energy=(0.5, 'J/m**2'), temperature=(600.0, 'K')))
    process = instantiate_process(get_manager().get_runner(), other)
    process.setup()
    assert process._cycle_inputs('0').moose.input_file.get_content() == first
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
