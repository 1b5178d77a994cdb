"""Protocol overrides: validated keys, the caller's dict untouched, None removes a key."""

import copy

import pytest

from aiida_multiscale.workflows.protocols.utils import merge_overrides, recursive_merge

pytestmark = pytest.mark.unit

BASE = {
    'kpoints': {'mesh': [8, 8, 8], 'offset': [0, 0, 0]},
    'parameters': {'SYSTEM': {'ecutwfc': 30}},
    'clean_workdir': True,
}


def test_merge_is_recursive_and_does_not_mutate():
    overrides = {'kpoints': {'mesh': [12, 12, 12]}}
    saved_overrides, saved_base = copy.deepcopy(overrides), copy.deepcopy(BASE)
    merged = merge_overrides(BASE, overrides)
    assert merged['kpoints'] == {'mesh': [12, 12, 12], 'offset': [0, 0, 0]}
    assert overrides == saved_overrides and BASE == saved_base
    merged['kpoints']['mesh'].append(1)
    assert BASE['kpoints']['mesh'] == [8, 8, 8]


def test_none_removes_a_key():
    merged = merge_overrides(BASE, {'clean_workdir': None, 'kpoints': {'offset': None}})
    assert 'clean_workdir' not in merged and merged['kpoints'] == {'mesh': [8, 8, 8]}


def test_unknown_key_is_an_error_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown override key 'kpoints.mseh'; allowed here: mesh, offset"):
        merge_overrides(BASE, {'kpoints': {'mseh': [1, 1, 1]}})
    with pytest.raises(ValueError, match='must be a dict'):
        merge_overrides(BASE, [('kpoints', 1)])


def test_open_paths_accept_any_key():
    merged = merge_overrides(BASE, {'parameters': {'ELECTRONS': {'conv_thr': 1e-10}}}, open_paths=['parameters'])
    assert merged['parameters'] == {'SYSTEM': {'ecutwfc': 30}, 'ELECTRONS': {'conv_thr': 1e-10}}


def test_recursive_merge_replaces_non_dicts():
    assert recursive_merge({'a': {'b': 1}}, {'a': 2}) == {'a': 2}
