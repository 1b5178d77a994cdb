"""Tests of ``MicrostructureData``: invariants, derived grain statistics, storage round trip and the PNG preview."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_multiscale.data.microstructure import MicrostructureData, relabel_grains


def _two_grains():
    ids = np.zeros((4, 6), dtype=int)
    ids[:, 4:] = 1  # grain 1: 8 pixels, grain 0: 16 pixels
    return MicrostructureData(grain_ids=ids, pixel_size=1e-7, euler_angles=[[0, 0, 0], [45.0, 30.0, 10.0]])


@pytest.mark.unit
def test_statistics():
    micro = _two_grains()
    assert micro.grain_count == 2
    assert micro.grid_shape == (4, 6)
    np.testing.assert_allclose(micro.grain_areas, [16e-14, 8e-14])
    np.testing.assert_allclose(micro.area_fractions, [2 / 3, 1 / 3])
    expected = (math.sqrt(4 * 16e-14 / math.pi) + math.sqrt(4 * 8e-14 / math.pi)) / 2
    assert micro.mean_grain_size == pytest.approx(expected)
    assert micro.domain_size == pytest.approx((6e-7, 4e-7))


@pytest.mark.unit
def test_relabel():
    ids, old = relabel_grains([[5, 5], [9, 2]])
    np.testing.assert_array_equal(ids, [[1, 1], [2, 0]])
    np.testing.assert_array_equal(old, [2, 5, 9])


@pytest.mark.unit
@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'grain_ids': [0, 1]}, 'shape'),
        ({'grain_ids': [[0, 2]]}, 'run from 0'),
        ({'grain_ids': [[-1, 1]]}, 'run from 0'),
        ({'grain_ids': [[0.5, 1]]}, 'integers'),
        ({'euler_angles': [[0, 0, 0]]}, 'run from 0'),
        ({'euler_angles': [[0, 0], [0, 0]]}, 'shape'),
        ({'euler_angles': [[0, 0, 0], [0, 200, 0]]}, 'Phi'),
        ({'euler_angles': [[0, 0, 0], [0, float('nan'), 0]]}, 'finite'),
        ({'pixel_size': 0.0}, 'positive'),
        ({'pixel_size': 50.0}, 'metres'),
        ({'pixel_size': 'abc'}, 'metres'),
    ],
)
def test_invalid(kwargs, match):
    arguments = {'grain_ids': [[0, 1]], 'pixel_size': 1e-6, 'euler_angles': [[0, 0, 0], [10, 20, 30]]}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        MicrostructureData(**arguments)


@pytest.mark.unit
def test_missing_grain():
    with pytest.raises(ValueError, match=r'\[1\] do not occur'):
        MicrostructureData(grain_ids=[[0, 2]], pixel_size=1e-6, euler_angles=[[0, 0, 0]] * 3)


def test_store_and_load(aiida_profile, tmp_path):
    from aiida import orm

    micro = _two_grains().store()
    loaded = orm.load_node(micro.pk)
    assert isinstance(loaded, MicrostructureData)
    np.testing.assert_array_equal(loaded.grain_ids, micro.grain_ids)
    np.testing.assert_allclose(loaded.euler_angles, [[0, 0, 0], [45, 30, 10]])
    assert loaded.pixel_size == 1e-7
    assert loaded.mean_grain_size == pytest.approx(micro.mean_grain_size)
    png = loaded.write_png(tmp_path / 'map.png').read_bytes()
    assert png.startswith(b'\x89PNG')
    from matplotlib.image import imread

    image = imread(tmp_path / 'map.png')
    assert image.shape[0] > 100 and image.shape[1] > 100
    # both the grain colours and the black boundary occur
    assert len(np.unique(image.reshape(-1, image.shape[-1])[:, :3].round(2), axis=0)) >= 3
    qb = orm.QueryBuilder().append(MicrostructureData, filters={'attributes.grain_count': 2})
    assert qb.count() >= 1
