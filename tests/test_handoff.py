"""HandoffData: units checked with pint, std and notes kept, bad quantities refused with a clear message."""

import math
import re

import numpy as np
import pytest

from aiida_multiscale.data.handoff import HandoffData, Quantity


def test_roundtrip_through_storage():
    node = HandoffData(
        {
            'c11': {'value': 108.2, 'unit': 'GPa', 'std': 2.0, 'note': 'stress-strain fit'},
            'gb_energy': {'value': 0.49, 'unit': 'J/m^2'},
        },
        bridge='dft_to_md',
        from_scale='dft',
        to_scale='md',
        metadata={'kpoints_mesh': [24, 24, 24]},
    ).store()
    loaded = type(node).collection.get(pk=node.pk)
    assert loaded.names == ['c11', 'gb_energy']
    assert loaded['c11'] == Quantity(108.2, 'GPa', 2.0, 'stress-strain fit')
    assert loaded['gb_energy'].std is None
    assert (loaded.bridge, loaded.from_scale, loaded.to_scale) == ('dft_to_md', 'dft', 'md')
    assert loaded.metadata == {'kpoints_mesh': [24, 24, 24]}
    assert loaded.summary()['c11'] == {'value': 108.2, 'unit': 'GPa', 'std': 2.0}


@pytest.mark.unit
def test_conversion_scales_value_and_std():
    q = Quantity(108.2, 'GPa', 2.0)
    si = q.to('Pa')
    assert si.value == pytest.approx(108.2e9) and si.std == pytest.approx(2.0e9)
    # An offset unit: the std is a difference and must not pick up the offset.
    t = Quantity(700.0, 'K', 5.0).to('degC')
    assert t.value == pytest.approx(426.85) and t.std == pytest.approx(5.0)
    energy = HandoffData({'e': {'value': 1.0, 'unit': 'eV'}}).get_quantity('e', 'J')
    assert energy.value == pytest.approx(1.602176634e-19)


@pytest.mark.unit
def test_relative_std():
    assert Quantity(200.0, 'GPa', 10.0).relative_std == pytest.approx(0.05)
    assert Quantity(0.0, 'GPa', 1.0).relative_std == math.inf
    assert Quantity(1.0, 'GPa').relative_std is None


@pytest.mark.unit
@pytest.mark.parametrize(
    ('spec', 'message'),
    [
        ({'value': 1.0, 'unit': 'Gpaa'}, "unknown unit 'Gpaa'"),
        ({'value': float('nan'), 'unit': 'GPa'}, 'finite real number'),
        ({'value': 'ten', 'unit': 'GPa'}, 'finite real number'),
        ({'value': True, 'unit': 'GPa'}, 'finite real number'),
        ({'value': 1.0, 'unit': 'GPa', 'std': -1.0}, 'std must be None'),
        ({'value': float('inf'), 'unit': 'GPa'}, 'value must be a finite real number, got inf'),
        (
            {'value': 1.0, 'unit': 'GPa', 'std': float('nan')},
            'std must be None (unknown) or a finite number >= 0, got nan',
        ),
        (
            {'value': 1.0, 'unit': 'GPa', 'std': float('inf')},
            'or a finite number >= 0, got inf',
        ),
        ({'value': 1.0, 'unit': 'GPa', 'std': np.float32('nan')}, 'std must be None (unknown) or a finite number'),
        ({'value': np.float64('-inf'), 'unit': 'GPa'}, 'value must be a finite real number'),
        ({'value': np.bool_(True), 'unit': 'GPa'}, 'value must be a finite real number'),
        ({'value': np.array([1.0, 2.0]), 'unit': 'GPa'}, 'value must be a finite real number'),
        ({'value': 1.0}, 'at least "value" and "unit"'),
        ({'value': 1.0, 'unit': 'GPa', 'error': 0.1}, "unknown fields ['error']"),
    ],
)
def test_bad_quantities_are_refused(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        HandoffData({'c11': spec})


def test_numpy_scalars_are_stored_as_python_floats():
    """numpy float32 (not a Python float) and int64 values are accepted and stored as plain floats (JSON attributes)."""
    node = HandoffData(
        {
            'c11': {'value': np.float32(108.25), 'unit': 'GPa', 'std': np.float32(2.5)},
            'grains': {'value': np.int64(16), 'unit': 'dimensionless', 'std': np.float64(0.0)},
        }
    ).store()
    loaded = type(node).collection.get(pk=node.pk)
    assert loaded['c11'] == Quantity(108.25, 'GPa', 2.5, '')  # both exact in float32
    assert type(loaded['c11'].value) is float and type(loaded['c11'].std) is float
    assert type(loaded['grains'].value) is float and loaded['grains'].value == 16.0
    assert HandoffData({'x': {'value': np.float32(0.1), 'unit': 'm'}})['x'].value == float(np.float32(0.1))


@pytest.mark.unit
def test_bad_names_and_incompatible_units():
    with pytest.raises(ValueError, match='snake_case'):
        HandoffData({'C11': {'value': 1.0, 'unit': 'GPa'}})
    node = HandoffData({'c11': {'value': 1.0, 'unit': 'GPa'}})
    with pytest.raises(ValueError, match='dimensions differ'):
        node.get_quantity('c11', 'm')
    with pytest.raises(KeyError, match="holds \\['c11'\\]"):
        node.get_quantity('c12')


def test_stored_node_is_immutable():
    from aiida.common.exceptions import ModificationNotAllowed

    node = HandoffData({'c11': {'value': 1.0, 'unit': 'GPa'}}).store()
    with pytest.raises(ModificationNotAllowed):
        node.set_quantity('c12', 1.0, 'GPa')
