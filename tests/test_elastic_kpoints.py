"""The fast DFT protocol spends its k-points on the strained SCFs only: ``elastic_kpoints_distance``.

Al's a0 and B0 are converged at 12^3 k, its shear constants are not (pw.x 6.7 with Al.pz-vbc: C44 = 53 GPa at 16^3,
27-29 at 24^3), so the fast protocol keeps 12^3 for the seven EOS SCFs and gives the three strained SCFs a 24^3 mesh of
their own.
"""

from __future__ import annotations

import pytest
from aiida import orm

from aiida_multiscale.workflows.dft import DftWorkChain


def _process(builder):
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    process = instantiate_process(get_manager().get_runner(), builder)
    process.setup()
    return process


def test_fast_protocol_meshes(codes, pseudo_family):
    """12^3 for the EOS, 24^3 for the strained cells, both from the starting cell and made by calcfunctions."""
    builder = DftWorkChain.get_builder_from_protocol(codes['pw'], element='Al', protocol='fast')
    assert builder.parameters['elastic_kpoints_distance'] == 0.115
    process = _process(builder)
    assert process.ctx.kpoints.get_kpoints_mesh()[0] == [12, 12, 12]
    elastic = process.ctx.elastic_kpoints
    assert elastic.get_kpoints_mesh()[0] == [24, 24, 24]
    assert elastic.creator is not None and elastic.creator.inputs.distance.value == pytest.approx(0.115)
    inputs = process._scf_inputs(process.ctx.reference, 'strain_0', process.ctx.elastic_kpoints)
    assert inputs.kpoints.uuid == elastic.uuid


def test_without_elastic_distance_one_mesh(codes, pseudo_family):
    overrides = {'parameters': {'elastic_kpoints_distance': None}}
    builder = DftWorkChain.get_builder_from_protocol(codes['pw'], element='Al', protocol='fast', overrides=overrides)
    process = _process(builder)
    assert process.ctx.elastic_kpoints.uuid == process.ctx.kpoints.uuid


@pytest.mark.parametrize('value', [0, -0.1, 'dense', [24, 24, 24]])
def test_bad_elastic_distance_refused(codes, pseudo_family, value):
    """The port validator refuses it when the builder is filled, before anything is submitted."""
    builder = DftWorkChain.get_builder_from_protocol(codes['pw'], element='Al', protocol='fast')
    with pytest.raises(ValueError, match='elastic_kpoints_distance must be None or > 0'):
        builder.parameters = orm.Dict({**builder.parameters.get_dict(), 'elastic_kpoints_distance': value})
