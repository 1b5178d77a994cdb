"""Every exit code of every rung, triggered and checked: exact status and a message that names the problem.

Coverage of the package's own exit codes (not aiida-core's or aiida-quantumespresso's inherited ones): exit code ->
test.  Bare names are tests of this file; ``_mock``: a hand-made child node drives the real step of the work chain,
``_fake``: a hand-edited output; ``_real``: pw.x runs here (a few seconds).  (S): runs only where Slurm starts.

Bridges (``BRIDGE_EXIT_CODES``, calcfunctions called on hand-made HandoffData)
  310 DFT_TO_MD_BORN_UNSTABLE          test_bridges.py::test_dft_to_md_exit_codes; test_chain_dft_to_md_refused_mock
  311 DFT_TO_MD_INVALID_EOS            test_bridges.py::test_dft_to_md_exit_codes; test_chain_dft_to_md_refused_mock
  312 DFT_TO_MD_INCONSISTENT           test_bridges.py::test_dft_to_md_exit_codes; test_chain_dft_to_md_refused_mock
  320 MD_TO_MESOSCALE_GB_ENERGY        test_bridges.py::test_md_to_mesoscale_exit_codes; test_chain_md_to_mesoscale_...
  321 MD_TO_MESOSCALE_ASSUMPTIONS      test_bridges.py::test_md_to_mesoscale_exit_codes; test_chain_md_to_mesoscale_...
  330 MESOSCALE_TO_FEM_GRAIN_SIZE      test_bridges.py::test_mesoscale_to_fem_exit_codes; test_chain_mesoscale_to_...
  331 MESOSCALE_TO_FEM_BORN_UNSTABLE   test_bridges.py::test_mesoscale_to_fem_exit_codes; test_chain_mesoscale_to_...
  332 MESOSCALE_TO_FEM_MISSING_...     NEW test_mesoscale_to_fem_missing_constants
  340-342 FEM_TO_MACRO_*               not here: fem_to_macro is being reworked (test_bridges.py covers 340, 341)
DftWorkChain
  310 BORN_UNSTABLE, 410 BULK_MODULUS_INCONSISTENT   test_dft_workchain.py::test_elastic_exit_codes_on_faked_children
  401 SUB_PROCESS_FAILED_EOS           NEW test_dft_eos_child_failed_mock, test_dft_eos_scf_failed_real
  402 SUB_PROCESS_FAILED_ELASTIC       test_dft_workchain.py::test_failed_child_exit_code_fake
  403 EOS_NOT_BRACKETED                test_dft_workchain.py::test_eos_gives_up_after_max_recentre_mock
CutoffsConvergenceWorkChain
  401 SUB_PROCESS_FAILED               NEW test_cutoffs_scf_failed_mock, test_cutoffs_scf_failed_real
  410 NOT_CONVERGED                    NEW test_cutoffs_not_converged_real
MdWorkChain
  300 BULK_CALCULATION_FAILED          NEW test_md_lammps_stage_failed_mock[bulk],
                                       test_md_bulk_results_not_retrieved_mock
  301 BULK_NOT_CONVERGED               NEW test_md_bulk_not_converged_mock (recorded LAMMPS log)
  302 BULK_UNSTABLE                    NEW test_md_bulk_unstable_fake
  303 POTENTIAL_REJECTED               test_md_workchain.py::test_al_mm_rejected_when_dft_30_percent_off (real lmp);
                                       test_md_potential_rejected_mock
  304 GB_CALCULATION_FAILED            NEW test_md_lammps_stage_failed_mock[gb_scan, gb_size_check]
  305 GB_NO_VALID_CONFIGURATION        NEW test_md_no_valid_gb_configuration_mock (recorded LAMMPS run)
  320 OUT_OF_WALLTIME                  test_walltime_restart.py::test_md_out_of_walltime_exhausted_... (S);
                                       test_md_out_of_walltime_mock
  410 GB_NOT_SIZE_CONVERGED            NEW test_md_gb_not_size_converged_fake
PhaseFieldWorkChain
  300 ANALYSIS_FAILED                  NEW test_phase_field_analysis_failed_mock
  310 MOOSE_FAILED, 321 RECOVERY_FAILED   NEW test_phase_field_cycle_failed_mock[310, 321]
  311 MISSING_OUTPUT                   NEW test_phase_field_no_exodus_mock
  320 OUT_OF_WALLTIME                  test_moose_restart.py::test_rung_exit_codes_and_deprecated_walltime_restarts_mock
                                       (rung_exit_code only); test_phase_field_cycle_failed_mock[320]
RveElasticityWorkChain
  310 MOOSE_FAILED, 311 MISSING_OUTPUT, 312 LOAD_CASES   NEW test_rve_moose_failed_mock, test_rve_missing_post..._mock,
                                       test_rve_incomplete_load_cases_mock
RvePlasticityWorkChain
  310 MOOSE_FAILED, 320 OUT_OF_WALLTIME, 321 RECOVERY_FAILED   NEW test_plasticity_moose_failed_mock[310, 320, 321]
  311 MISSING_OUTPUT                   NEW test_plasticity_missing_postprocessors_mock
  312 FLOW_CURVE                       NEW test_plasticity_flow_curve_unusable_mock
  340 YIELD_OUTSIDE_SACHS_TAYLOR       NEW test_plasticity_yield_outside_sachs_taylor_mock
                                       (test_plasticity_workchain.py::test_bounds_check_and_its_exit_code formats
                                       the message, triggers nothing)
MultiscaleWorkChain
  301 DFT_FAILED, 302 MD_FAILED, 303 PHASE_FIELD_FAILED   NEW test_chain_rung_failed_mock[dft, md, phase_field]
  305 POTENTIAL_REJECTED               NEW test_chain_potential_rejected_mock
  310, 311, 312 (dft_to_md)            NEW test_chain_dft_to_md_refused_mock
  320 (md_to_mesoscale)                NEW test_chain_md_to_mesoscale_refused_mock
  321 (md_to_mesoscale)                test_md_to_mesoscale_assumptions_refused (the bridge alone: the chain now
                                       refuses M0 <= 0 at its port, test_chain_refuses_bad_prefactor_before_submission)
  330, 331, 332 (mesoscale_to_fem)     NEW test_chain_mesoscale_to_fem_refused_mock (331 and 332 only with a context
                                       that dft_to_md would have refused: unreachable in a real chain)
  304 FEM_FAILED, 340-342              not here: the FEM rung and fem_to_macro are being reworked
FemWorkChain 310, 312, 320, 330, 340   not here: being reworked (test_fem_workchain.py, test_moose_restart.py)
MooseBaseWorkChain
  310 MOOSE_FAILED                     test_moose_restart.py::test_handlers_leave_other_failures_mock
  320 OUT_OF_WALLTIME                  test_moose_restart.py::test_handler_more_time_then_gives_up_mock
  321 RECOVERY_FAILED                  test_moose_restart.py::test_failed_recovery_mock
MultiscalePwBaseWorkChain 320 OUT_OF_WALLTIME   test_walltime_restart.py::test_scheduler_walltime_handler_mock_limit
LammpsRawBaseWorkChain 320 OUT_OF_WALLTIME      test_md_validation.py::test_walltime_handler_fake_killed_calculation
MooseCalculation (MooseParser, outputs recorded from the real MOOSE in tests/fixtures/moose)
  300, 310, 311, 320, 321, 322, 400, 401   test_moose_parser.py::test_exit_codes (status) and message tests for
                                       310, 311, 320, 401; test_moose_parser_messages (messages of 300, 321, 322, 400);
                                       310 and 311 also real: test_moose_calc.py::test_real_input_error,
                                       test_moose_shipped.py
LammpsRawParser 352 OUTPUT_INCOMPLETE  test_lammps_parser.py (recorded and cut outputs); test_slurm.py (S)

Counts (FEM rung, fem_to_macro and the chain's 304/34x left out): 63 exit codes; 28 covered before, 63 now.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from plumpy import ProcessState
from rve_helpers import CU, cubic_elastic, random_euler, voronoi_map

from aiida_multiscale.bridges import BRIDGE_EXIT_CODES
from aiida_multiscale.bridges.mesoscale_to_fem import mesoscale_to_fem
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


# ------------------------------------------------------------------------------------------------------------ helpers
def _instantiate(builder):
    """The process of ``builder``, validated and set up as the engine would, but not run: its steps are called."""
    return instantiate_process(get_manager().get_runner(), builder.process_class, **builder._inputs(prune=True))


def _child(label: str, exit_status: int, message: str | None = None, outputs: dict | None = None) -> orm.WorkflowNode:
    """A hand-made finished child work chain ``label`` with ``exit_status`` and the given (RETURN-linked) outputs."""
    node = orm.WorkflowNode()
    node.set_process_label(label)
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    if message is not None:
        node.set_exit_message(message)
    node.store()
    for link_label, output in (outputs or {}).items():
        if not output.is_stored:
            output.store()
        output.base.links.add_incoming(node, LinkType.RETURN, link_label)
    return node


def _calcjob(computer, exit_status: int, message: str | None = None, outputs: dict | None = None) -> orm.CalcJobNode:
    """A hand-made finished MooseCalculation node with ``exit_status`` and the given (CREATE-linked) outputs."""
    node = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:multiscale.moose')
    node.set_process_label('MooseCalculation')
    node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(exit_status)
    if message is not None:
        node.set_exit_message(message)
    node.store()
    for link_label, output in (outputs or {}).items():
        output.base.links.add_incoming(node, LinkType.CREATE, link_label)
        output.store()
    return node


def _folder(files: dict[str, str | bytes]) -> orm.FolderData:
    folder = orm.FolderData()
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        folder.base.repository.put_object_from_bytes(data, name)
    return folder.store()


def _cubic(c11=110.0, c12=60.0, c44=30.0, unit='GPa', names=('c11', 'c12', 'c44')) -> HandoffData:
    values = dict(zip(('c11', 'c12', 'c44'), (c11, c12, c44)))
    return HandoffData({name: {'value': values[name], 'unit': unit, 'std': 1.0} for name in names})


def _eos(a0=4.04, bulk=76.7) -> HandoffData:
    return HandoffData(
        {
            'a0': {'value': a0, 'unit': 'angstrom', 'std': 0.002},
            'v0': {'value': a0**3 / 4, 'unit': 'angstrom**3', 'std': 0.01},
            'e0': {'value': -57.1, 'unit': 'eV', 'std': 1e-4},
            'bulk_modulus': {'value': bulk, 'unit': 'GPa', 'std': 1.0},
            'bulk_modulus_derivative': {'value': 4.5, 'unit': 'dimensionless', 'std': 0.3},
        }
    )


def _stripes(n=4, size=40, pixel=5e-9) -> MicrostructureData:
    """``n`` vertical stripe grains of ``size / n`` pixels width on a ``size`` x ``size`` map."""
    ids = np.repeat(np.arange(n), size // n)[None, :].repeat(size, axis=0)
    return MicrostructureData(grain_ids=ids, pixel_size=pixel, euler_angles=random_euler(n, seed=1))


# ======================================================================================================== bridges
def test_mesoscale_to_fem_missing_constants(aiida_profile):
    """332: an elastic handoff without C44 (e.g. an isotropic E/nu pair mistaken for the DFT output) is refused."""
    _, node = mesoscale_to_fem.run_get_node(microstructure=_stripes(), elastic=_cubic(names=('c11', 'c12')))
    assert node.exit_status == BRIDGE_EXIT_CODES['ERROR_MESOSCALE_TO_FEM_MISSING_CONSTANTS'][0] == 332
    assert "lacks constants the FEM needs: missing elastic constants ['c44']" in node.exit_message


# ====================================================================================================== DFT rung
def test_dft_eos_child_failed_mock(codes, pseudo_family):
    """401: an EOS SCF (a hand-made PwBaseWorkChain node) that failed beyond its handlers ends the rung."""
    from aiida_multiscale.workflows.dft import DftWorkChain

    process = _instantiate(DftWorkChain.get_builder_from_protocol(codes['pw'], element='Al', protocol='fast'))
    process.setup()
    indices = process._eos_indices()
    failed = _child('PwBaseWorkChain', 401, 'The maximum number of iterations was exceeded.')
    ok = [_child('PwBaseWorkChain', 0) for _ in indices[1:]]
    process.ctx.eos_children = {str(j): node.pk for j, node in zip(indices, [failed, *ok])}
    result = process.inspect_eos()
    assert result.status == DftWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_EOS.status == 401
    assert result.message == f'The EOS SCF PwBaseWorkChain<{failed.pk}> failed with exit status 401.'
    assert 'eos' not in process.outputs


@pytest.mark.real_code
def test_dft_eos_scf_failed_real(codes, pseudo_family):
    """401, real pw.x: SCFs allowed one electronic step (ELECTRONS.electron_maxstep = 1) and one run each
    (scf.max_iterations = 1) stop unconverged (pw.x exit 410); their PwBaseWorkChain gives up (401) and the rung
    stops at the EOS, naming the SCF and its status.  Five 2^3-k SCFs at 12 Ry: a few seconds."""
    from aiida.engine import run_get_node

    from aiida_multiscale.workflows.dft import DftWorkChain

    parameters = {
        'eos_points': 5, 'kpoints_mesh': [2, 2, 2], 'kpoints_distance': None, 'elastic_kpoints_distance': None,
        'kpoints_convergence': False, 'kpoints_error_estimate': False,
    }  # fmt: skip
    builder = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Al', protocol='fast', overrides={'parameters': parameters}
    )
    pw = builder.scf.pw.parameters.get_dict()
    pw['SYSTEM'].update(ecutwfc=12.0, ecutrho=48.0)
    pw.setdefault('ELECTRONS', {})['electron_maxstep'] = 1
    builder.scf.pw.parameters = orm.Dict(pw)
    builder.scf.max_iterations = orm.Int(1)
    _, node = run_get_node(builder)
    assert node.exit_status == DftWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED_EOS.status == 401
    scf = [child for child in node.called if child.process_label == 'MultiscalePwBaseWorkChain']
    assert scf and all(child.exit_status == 401 for child in scf)
    calculations = [c for child in scf for c in child.called if c.process_label == 'PwCalculation']
    assert calculations and all(c.exit_status == 410 for c in calculations)  # electronic convergence not reached
    assert node.exit_message.startswith('The EOS SCF PwBaseWorkChain<')
    assert node.exit_message.endswith('> failed with exit status 401.')


# ====================================================================================================== cut-offs
def _cutoffs_builder(codes, multiscale_setup, ecutwfc):
    from aiida_multiscale.workflows.cutoffs import CutoffsConvergenceWorkChain

    pseudo = multiscale_setup['families']['multiscale/lda'].get_pseudo('Al')
    return CutoffsConvergenceWorkChain.get_builder(
        codes['pw'], element='Al', pseudo=pseudo, ecutwfc=ecutwfc, kpoints_mesh=4
    )


def test_cutoffs_scf_failed_mock(codes, multiscale_setup):
    """401: one SCF of the series (a hand-made node) failed: the rung names it and its cutoff."""
    from aiida_multiscale.workflows.cutoffs import CutoffsConvergenceWorkChain

    process = _instantiate(_cutoffs_builder(codes, multiscale_setup, [14, 18, 26]))
    process.setup()
    failed = _child('PwBaseWorkChain', 402)
    process.ctx.children = [_child('PwBaseWorkChain', 0).pk, failed.pk, _child('PwBaseWorkChain', 0).pk]
    result = process.results()
    assert result.status == CutoffsConvergenceWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED.status == 401
    assert result.message == f'The SCF PwBaseWorkChain<{failed.pk}> at ecutwfc = 18.0 Ry failed.'


@pytest.mark.real_code
def test_cutoffs_scf_failed_real(codes, multiscale_setup):
    """401, real pw.x: the series' SCFs allowed one electronic step and one run each fail (pw.x 410, then their
    PwBaseWorkChain 401); the rung names the first one and its cutoff."""
    from aiida.engine import run_get_node

    from aiida_multiscale.workflows.cutoffs import CutoffsConvergenceWorkChain

    builder = _cutoffs_builder(codes, multiscale_setup, [10, 12, 14])
    pw = builder.scf.pw.parameters.get_dict()
    pw.setdefault('ELECTRONS', {})['electron_maxstep'] = 1
    builder.scf.pw.parameters = orm.Dict(pw)
    builder.scf.max_iterations = orm.Int(1)
    _, node = run_get_node(builder)
    assert node.exit_status == CutoffsConvergenceWorkChain.exit_codes.ERROR_SUB_PROCESS_FAILED.status == 401
    first = node.base.links.get_outgoing(link_label_filter='scf_ecut_10').one().node
    assert first.exit_status == 401
    assert node.exit_message == f'The SCF PwBaseWorkChain<{first.pk}> at ecutwfc = 10.0 Ry failed.'


@pytest.mark.real_code
def test_cutoffs_not_converged_real(codes, multiscale_setup):
    """410, real pw.x: Al LDA at 6, 8 and 10 Ry (4^3 k, three SCFs of about a second) is far from converged.

    The energies themselves show it, independently of the rung's analysis: E(8 Ry) - E(10 Ry) is far above the
    1 meV/atom criterion, so only the highest cutoff qualifies and no cutoff may be output.
    """
    from aiida.engine import run_get_node

    from aiida_multiscale.workflows.cutoffs import CutoffsConvergenceWorkChain

    _, node = run_get_node(_cutoffs_builder(codes, multiscale_setup, [6, 8, 10]))
    assert node.exit_status == CutoffsConvergenceWorkChain.exit_codes.ERROR_NOT_CONVERGED.status == 410
    assert 'Only the highest cutoff meets the criteria' in node.exit_message
    assert 'extend `ecutwfc` to higher cutoffs' in node.exit_message
    history = node.outputs.history.get_dict()
    energies_mev = [1000 * e for e in history['energy_per_atom_ev']]
    assert abs(energies_mev[1] - energies_mev[2]) > history['criteria']['energy_per_atom_mev']
    assert history['converged'] is False and 'ecutwfc' not in node.outputs


# ======================================================================================================= MD rung
LAMMPS = FIXTURES / 'lammps'
#: Bulk properties of Al_zhou.eam.alloy (the potential of the recorded grain-boundary run gb_scan_al_zhou).
AL_ZHOU_BULK = {
    'a0_md': {'value': 4.08165490078, 'unit': 'angstrom'},
    'cohesive_energy': {'value': 3.57999865993, 'unit': 'eV'},
    **{f'{n}_md': {'value': v, 'unit': 'GPa', 'std': 0.1} for n, v in (('c11', 127.1), ('c12', 81.4), ('c44', 36.0))},
}


def _md_process(codes, potential='Al_zhou.eam.alloy', parameters=None):
    from aiida_multiscale.engines.lammps.potentials import get_or_create_potential, potentials_folder
    from aiida_multiscale.workflows.md import MdWorkChain

    builder = MdWorkChain.get_builder()
    builder.code = codes['lmp']
    builder.element = orm.Str('Al')
    builder.potential = get_or_create_potential(potentials_folder() / potential, 'Al').store()
    if parameters:
        builder.parameters = orm.Dict(parameters)
    process = _instantiate(builder)
    process.setup()
    return process


def _lammps_run(files: dict) -> orm.WorkflowNode:
    """A hand-made LammpsRawBaseWorkChain that finished OK and retrieved ``files``."""
    return _child('LammpsRawBaseWorkChain', 0, outputs={'retrieved': _folder(files)})


def _recorded(case: str, *names: str) -> dict:
    return {name: (LAMMPS / case / name).read_text() for name in names}


@pytest.mark.parametrize(
    ('stage', 'step', 'label', 'status', 'words'),
    [
        ('bulk', 'inspect_bulk', 'ERROR_BULK_CALCULATION_FAILED', 300, 'the bulk LAMMPS calculation failed'),
        ('gb_scan', 'inspect_gb_scan', 'ERROR_GB_CALCULATION_FAILED', 304, 'the grain-boundary LAMMPS calculation'),
        ('gb_size_check', 'results', 'ERROR_GB_CALCULATION_FAILED', 304, 'the grain-boundary LAMMPS calculation'),
    ],
    ids=['bulk', 'gb_scan', 'gb_size_check'],
)
def test_md_lammps_stage_failed_mock(codes, stage, step, label, status, words):
    """300/304: a LAMMPS stage whose restart chain (hand-made node) failed with a non-walltime error (402)."""
    from aiida_multiscale.workflows.md import MdWorkChain

    process = _md_process(codes)
    failed = _child('LammpsRawBaseWorkChain', 402, 'The process failed with an unrecoverable error.')
    process.ctx[stage] = failed
    result = getattr(process, step)()
    assert result.status == getattr(MdWorkChain.exit_codes, label).status == status
    assert result.message.startswith(words)
    assert f'LammpsRawBaseWorkChain<{failed.pk}> exit status 402 (The process failed' in result.message


def test_md_bulk_results_not_retrieved_mock(codes):
    """300: the bulk run finished OK but its results file is not among the retrieved files."""
    process = _md_process(codes)
    process.ctx.bulk = _lammps_run(_recorded('bulk_al_mm', 'lammps.out'))
    result = process.inspect_bulk()
    assert result.status == 300
    assert result.message == 'the bulk LAMMPS calculation failed: no results.dat was retrieved'


def test_md_bulk_not_converged_mock(codes):
    """301: the recorded LAMMPS log of a bulk run whose minimisations stopped at max iterations (exit 0 in
    aiida-lammps) ends the rung before a0 and Cij are derived from it."""
    process = _md_process(codes)
    process.ctx.bulk = _lammps_run(_recorded('bulk_unconverged', 'lammps.out', 'results.dat'))
    result = process.inspect_bulk()
    assert result.status == 301
    assert result.message.startswith('a bulk minimisation did not converge (minimisation 1: max iterations')
    assert 'bulk_properties' not in process.outputs


def test_md_bulk_unstable_fake(codes):
    """302: the recorded Al_mm bulk run with the sign of the shear stress sigma_yz flipped (hand-edited), so that
    C44 = d sigma_yz / d gamma_yz < 0: the analysis (real calcfunction) gives C44 < 0 and the rung refuses it."""
    lines = []
    for line in (LAMMPS / 'bulk_al_mm' / 'results.dat').read_text().splitlines():
        parts = line.split()
        if parts[:2] == ['strain', 'yz']:
            parts[-1] = repr(-float(parts[-1]))
        lines.append(' '.join(parts))
    process = _md_process(codes, 'Al_mm.eam.fs')
    files = {'lammps.out': (LAMMPS / 'bulk_al_mm' / 'lammps.out').read_text(), 'results.dat': '\n'.join(lines) + '\n'}
    process.ctx.bulk = _lammps_run(files)
    result = process.inspect_bulk()
    assert process.outputs['bulk_properties'].value('c44_md', 'GPa') < 0
    assert result.status == 302
    assert result.message.startswith("the potential's fcc crystal is not mechanically stable: C44 = -")
    assert 'must be > 0 (shear unstable) (GPa)' in result.message


def test_md_potential_rejected_mock(codes):
    """303 (also real in test_md_workchain): a DFT a0 10 % away from the potential's fails the 3 % threshold."""
    from aiida_multiscale.engines.lammps.potentials import get_or_create_potential, potentials_folder
    from aiida_multiscale.workflows.md import MdWorkChain

    builder = MdWorkChain.get_builder()
    builder.code = codes['lmp']
    builder.element = orm.Str('Al')
    builder.potential = get_or_create_potential(potentials_folder() / 'Al_zhou.eam.alloy', 'Al').store()
    builder.dft.eos = _eos(a0=4.08165490078 * 1.1, bulk=96.6)
    builder.dft.elastic = _cubic(127.1, 81.4, 36.0)
    process = _instantiate(builder)
    process.setup()
    process.ctx.bulk_properties = HandoffData(AL_ZHOU_BULK).store()
    result = process.check_against_dft()
    assert result.status == MdWorkChain.exit_codes.ERROR_POTENTIAL_REJECTED.status == 303
    assert result.message.startswith('the potential disagrees with DFT beyond the thresholds: a0 off by')
    assert process.outputs['potential_check'].metadata['verdict'] == 'fail'


def test_md_out_of_walltime_mock(codes):
    """320 (also through Slurm in test_walltime_restart): the bulk stage's restart chain (hand-made node) ended with
    its own 320; the rung keeps the number and names the stage and the restart chain's reason."""
    from aiida_multiscale.workflows.md import MdWorkChain

    process = _md_process(codes)
    reason = (
        'LammpsRawCalculation<5> was killed at its walltime of 120 s and max_wallclock_seconds_limit = 120 s '
        'allows no more: raise the limit or the starting max_wallclock_seconds.'
    )
    process.ctx.bulk = _child('LammpsRawBaseWorkChain', 320, reason)
    result = process.inspect_bulk()
    assert result.status == MdWorkChain.exit_codes.ERROR_OUT_OF_WALLTIME.status == 320
    assert result.message == f'MD rung: the bulk LAMMPS run was killed at its walltime and not resubmitted: {reason}'


def test_md_no_valid_gb_configuration_mock(codes):
    """305: the recorded Al_zhou scan, with the minimum distance raised to 0.95 of the nearest-neighbour distance
    (2.74 A): every relaxed bicrystal has a closer pair (2.45-2.60 A), so every configuration is rejected."""
    process = _md_process(codes, parameters={'gb': {'min_distance_factor': 0.95}})
    process.ctx.bulk_properties = HandoffData(AL_ZHOU_BULK).store()
    process.ctx.gb_scan = _lammps_run(_recorded('gb_scan_al_zhou', 'lammps.out', 'results.dat'))
    result = process.inspect_gb_scan()
    assert result.status == 305
    assert result.message.startswith('every bicrystal configuration was rejected (atoms closer than the physical')


def test_md_gb_not_size_converged_fake(codes):
    """410: the recorded Al_zhou scan as the small cell and, as the large one, the same run with every energy 5 %
    further from the bulk (hand-edited): 4.8 % between the two sizes, above the 2 % tolerance."""
    process = _md_process(codes, parameters={'gb': {'repeats': [1, 2, 3], 'size_check_repeats': [1, 3, 4]}})
    process.ctx.bulk_properties = HandoffData(AL_ZHOU_BULK).store()
    scan = _recorded('gb_scan_al_zhou', 'lammps.out', 'results.dat')
    lines = []
    for line in scan['results.dat'].splitlines():
        parts = line.split()
        natoms, energy = int(parts[2]), float(parts[3])
        parts[3] = repr(energy + 0.05 * (energy + natoms * AL_ZHOU_BULK['cohesive_energy']['value']))
        lines.append(' '.join(parts))
    process.ctx.gb_scan = _lammps_run(scan)
    process.ctx.gb_size_check = _lammps_run({**scan, 'results.dat': '\n'.join(lines) + '\n'})
    result = process.results()
    assert result.status == 410
    assert result.message == (
        'the grain-boundary energy changed by 4.8% (> 2%) between the two bicrystal sizes: increase '
        'parameters.gb.repeats / size_check_repeats'
    )


# ================================================================================================ phase-field rung
def _phase_field_process(codes):
    from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

    process = _instantiate(PhaseFieldWorkChain.get_builder_from_protocol(codes['moose'], protocol='fast'))
    process.setup()
    return process


@pytest.mark.parametrize(
    ('status', 'message', 'label', 'expected'),
    [
        (
            310,
            'MooseCalculation<9> failed and no handler can fix it: [311] MOOSE was terminated abnormally (Killed)',
            'ERROR_MOOSE_FAILED',
            'Cycle 0 of realisation 0: MooseBaseWorkChain<{pk}> failed: [310] MooseCalculation<9> failed and no '
            'handler can fix it: '
            '[311] MOOSE was terminated abnormally (Killed)',
        ),
        (
            320,
            'MooseCalculation<9> was killed at its walltime of 86400 s and max_wallclock_seconds_limit = 86400 s '
            'allows no more',
            'ERROR_OUT_OF_WALLTIME',
            'Phase-field rung, cycle 0 of realisation 0: MooseCalculation<9> was killed at its walltime of 86400 s and '
            'max_wallclock_seconds_limit = 86400 s allows no more',
        ),
        (
            321,
            'MooseCalculation<9> could not continue from its checkpoint (exit 310: bad header) and is not run again',
            'ERROR_RECOVERY_FAILED',
            'Phase-field rung, cycle 0 of realisation 0: MooseCalculation<9> could not continue from its checkpoint '
            '(exit 310: bad header) and is not run again',
        ),
    ],
    ids=['310', '320', '321'],
)
def test_phase_field_cycle_failed_mock(codes, status, message, label, expected):
    """310/320/321: the cycle's MooseBaseWorkChain (hand-made node) failed; 320 and 321 keep their number in the
    rung (the same failure has the same code across rungs), anything else is 310."""
    from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

    process = _phase_field_process(codes)
    node = _child('MooseBaseWorkChain', status, message)
    process.ctx.cycles_00 = [node]
    result = process.inspect_cycles()
    assert result.status == getattr(PhaseFieldWorkChain.exit_codes, label).status == status
    assert result.message == expected.format(pk=node.pk)


def test_phase_field_no_exodus_mock(codes):
    """311: a cycle that finished OK without an Exodus file (e.g. Outputs/exodus switched off) cannot be analysed."""
    process = _phase_field_process(codes)
    node = _child('MooseBaseWorkChain', 0, outputs={'output_parameters': orm.Dict({'postprocessors': {}})})
    process.ctx.cycles_00 = [node]
    result = process.inspect_cycles()
    assert result.status == 311
    assert result.message == f'Cycle 0 of realisation 0: MooseBaseWorkChain<{node.pk}> returned no Exodus file.'


def test_phase_field_analysis_failed_mock(codes):
    """300: the cycle's Exodus file cut short (the first 4 kB of a recorded phase-field run, as a kill mid-write
    leaves it): the grain analysis (real calcfunction) cannot read it and the rung says which cycle and why."""
    process = _phase_field_process(codes)
    cut = (FIXTURES / 'moose' / 'phase_field_small' / 'small.e').read_bytes()[:4096]
    exodus = orm.SinglefileData(io.BytesIO(cut), filename='phase_field.e')
    node = _child('MooseBaseWorkChain', 0, outputs={'exodus': exodus})
    process.ctx.cycles_00 = [node]
    result = process.inspect_cycles()
    assert result.status == 300
    # the reader's own error is kept (the first order parameter, which the cut file no longer holds) and explained
    assert result.message == (
        "The grain analysis of realisation 0, cycle 0 failed: KeyError: 'eta0' (the Exodus file is unreadable or "
        'lacks the order parameters)'
    )
    # and a rung that never finished a cycle has nothing to hand on: the same exit code, saying so
    fresh = _phase_field_process(codes)
    result = fresh.results()
    assert result.status == 300
    assert result.message == 'The grain analysis of realisation 0, cycle 0 failed: no cycle finished'


# ============================================================================================ RVE elasticity rung
def _rve_process(codes):
    from aiida_multiscale.workflows.rve import RveElasticityWorkChain

    grains = voronoi_map(3, (6, 6), seed=4)
    builder = RveElasticityWorkChain.get_builder()
    builder.moose.code = codes['moose']
    builder.moose.metadata.options.max_wallclock_seconds = 600
    builder.microstructure = MicrostructureData(grain_ids=grains, pixel_size=1e-6, euler_angles=random_euler(3, 5))
    builder.elastic = cubic_elastic(CU)
    process = _instantiate(builder)
    process.setup()
    return process


def _load_cases(cases: int) -> orm.ArrayData:
    """Postprocessors of an RVE run that stopped after ``cases`` of its six load cases (times 1 ... cases)."""
    from aiida_multiscale.engines.moose import rve

    array = orm.ArrayData()
    array.set_array('time', np.arange(cases + 1, dtype=float))
    for case, name in enumerate(rve.STRAIN_POSTPROCESSORS):
        values = np.zeros(cases + 1)
        values[case + 1 : case + 2] = 1e-3 if case < 3 else 5e-4
        array.set_array(name, values)
    for name in rve.STRESS_POSTPROCESSORS:
        array.set_array(name, np.zeros(cases + 1))
    return array


def test_rve_moose_failed_mock(codes):
    """310: the MooseCalculation (hand-made node) stopped on an input error."""
    from aiida_multiscale.workflows.rve import RveElasticityWorkChain

    process = _rve_process(codes)
    node = _calcjob(codes['moose'].computer, 310, "MOOSE stopped with an error (usually in the input): unused 'x'")
    process.ctx.moose = node
    result = process.results()
    assert result.status == RveElasticityWorkChain.exit_codes.ERROR_MOOSE_FAILED.status == 310
    assert result.message == (
        f"MooseCalculation<{node.pk}> failed: [310] MOOSE stopped with an error (usually in the input): unused 'x'"
    )


def test_rve_missing_postprocessors_mock(codes):
    """311: the MooseCalculation (hand-made node) finished OK without a postprocessor series."""
    process = _rve_process(codes)
    node = _calcjob(codes['moose'].computer, 0, outputs={'output_parameters': orm.Dict({})})
    process.ctx.moose = node
    result = process.results()
    assert result.status == 311
    assert result.message == f'MooseCalculation<{node.pk}> did not produce postprocessors.'


def test_rve_incomplete_load_cases_mock(codes):
    """312: the run (hand-made node) has only five of the six load cases: no C_eff and no handoff."""
    process = _rve_process(codes)
    node = _calcjob(codes['moose'].computer, 0, outputs={'postprocessors': _load_cases(5)})
    process.ctx.moose = node
    result = process.results()
    assert result.status == 312
    assert result.message == (
        f'MooseCalculation<{node.pk}>: the six load cases are not usable: no result at time 6 (load case 6 of 6): '
        'the MOOSE run is incomplete'
    )
    assert 'elasticity' not in process.outputs


# ===================================================================================== crystal-plasticity RVE rung
def _plasticity_process(codes):
    from aiida_multiscale.workflows.plasticity import RvePlasticityWorkChain

    grains = voronoi_map(3, (5, 5), seed=4)
    micro = MicrostructureData(grain_ids=grains, pixel_size=1e-6, euler_angles=random_euler(3, seed=5))
    builder = RvePlasticityWorkChain.get_builder_from_protocol(
        codes['moose'], 'Cu', microstructure=micro, elastic=cubic_elastic(CU), protocol='fast'
    )
    process = _instantiate(builder)
    process.setup()
    return process


def _tensile_curve(plateau_mpa: float, youngs_mpa: float = 1.1e5, steps: int = 50, strain: float = 0.05):
    """Postprocessors of a tensile test: elastic with E, then flat at ``plateau_mpa`` (true = nominal stress)."""
    eps = np.linspace(0.0, strain, steps + 1)
    stress = np.minimum(youngs_mpa * eps, plateau_mpa)
    array = orm.ArrayData()
    array.set_array('time', eps / strain * 10.0)
    array.set_array('F_xx', 1.0 + eps)
    array.set_array('cauchy_xx', stress)
    array.set_array('pk1_xx', stress)
    return array


@pytest.mark.parametrize(
    ('status', 'label', 'expected'),
    [
        (310, 'ERROR_MOOSE_FAILED', 'MooseBaseWorkChain<{pk}> failed: [310] MooseCalculation<9> failed: [400]'),
        (320, 'ERROR_OUT_OF_WALLTIME', 'crystal-plasticity RVE: MooseCalculation<9> failed: [400]'),
        (321, 'ERROR_RECOVERY_FAILED', 'crystal-plasticity RVE: MooseCalculation<9> failed: [400]'),
    ],
    ids=['310', '320', '321'],
)
def test_plasticity_moose_failed_mock(codes, status, label, expected):
    """310/320/321: the MooseBaseWorkChain (hand-made node) failed; 320 and 321 keep their number in the rung."""
    from aiida_multiscale.workflows.plasticity import RvePlasticityWorkChain

    process = _plasticity_process(codes)
    node = _child('MooseBaseWorkChain', status, 'MooseCalculation<9> failed: [400] not converged')
    process.ctx.moose = node
    result = process.inspect_moose()
    assert result.status == getattr(RvePlasticityWorkChain.exit_codes, label).status == status
    assert result.message.startswith(expected.format(pk=node.pk))


def test_plasticity_missing_postprocessors_mock(codes):
    """311: the MooseBaseWorkChain (hand-made node) finished OK without a postprocessor series."""
    process = _plasticity_process(codes)
    node = _child('MooseBaseWorkChain', 0, outputs={'output_parameters': orm.Dict({})})
    process.ctx.moose = node
    result = process.inspect_moose()
    assert result.status == 311
    assert result.message == f'MooseBaseWorkChain<{node.pk}> did not produce postprocessors.'


def test_plasticity_flow_curve_unusable_mock(codes):
    """312: a run that stopped while still elastic (strain 0.1 %): the curve never crosses the 0.2 % offset line."""
    process = _plasticity_process(codes)
    node = _child('MooseBaseWorkChain', 0, outputs={'postprocessors': _tensile_curve(1e4, strain=0.001, steps=5)})
    process.ctx.moose = node
    result = process.inspect_moose()
    assert result.status == 312
    assert result.message == (
        f'MooseBaseWorkChain<{node.pk}>: the flow curve is not usable: the curve does not cross the 0.002 offset line '
        '(its last strain is 0.001): load further'
    )


def test_plasticity_yield_outside_sachs_taylor_mock(codes):
    """340: a flow curve (hand-made postprocessors) that yields at 1 GPa, far above the Taylor bound of Cu grains
    of a few um (~0.1 GPa): the analysis (real calcfunction) is made, but nothing is handed on."""
    process = _plasticity_process(codes)
    process.ctx.moose = _child('MooseBaseWorkChain', 0, outputs={'postprocessors': _tensile_curve(1000.0)})
    assert process.inspect_moose() is None
    result = process.results()
    assert result.status == 340
    assert result.message.startswith('plasticity handoff<')
    assert ': yield_strength = 1000 MPa lies outside [Sachs ' in result.message
    assert 'MPa by more than 5%; not handed on' in result.message
    sachs, taylor = (float(part.split()[-1]) for part in result.message.split('[')[1].split(']')[0].split(','))
    # Cu of 3-6 um grains: tau_c ~ 30 MPa, so Sachs ~ 2 tau_c and Taylor ~ 3 tau_c, both far below 1 GPa
    assert 40.0 < sachs < taylor < 150.0
    assert 'plasticity' not in process.outputs and 'flow_curve' not in process.outputs


# ========================================================================================================= chain
def _chain_process(codes, assumptions: dict | None = None, accept_potential: bool | None = None):
    """A fast Al MultiscaleWorkChain, validated but not run; ``assumptions`` replace some of the protocol's."""
    from aiida_multiscale.bridges.md_to_mesoscale import make_assumptions
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain
    from aiida_multiscale.workflows.protocols.utils import load_protocol_file

    # No step of the FEM rung is called here: where the FEM protocol has a crystal-plasticity RVE, it is left out so
    # that the chain's inputs do not depend on it.
    overrides = None
    if 'plasticity' in load_protocol_file('fem')['default_inputs']:
        overrides = {'fem': {'overrides': {'plasticity': {'enabled': False}}}}
    # The mobility by hand (the MD rung's mobility stage off): the hand-made MD outputs below have no gb_mobility.
    builder = MultiscaleWorkChain.get_builder_from_protocol(
        'Al', protocol='fast', codes=codes, overrides=overrides, mobility_prefactor=2.5e-6, activation_energy=0.23
    )
    if assumptions:
        current = builder.assumptions
        quantities = {
            name: {'value': current.value(name), 'unit': current[name].unit, 'std': current[name].std, 'source': 'test'}
            for name in current.names
        }
        for name, value in assumptions.items():
            quantities[name]['value'] = value
        builder.assumptions = make_assumptions(quantities)
    if accept_potential is not None:
        builder.md.accept_potential = orm.Bool(accept_potential)
    return _instantiate(builder)


def _md_outputs(gb_energy=0.357):
    """An MD rung's outputs for Al_zhou: bulk properties and sigma_GB of the Sigma5(310)[001] boundary."""
    properties = {**AL_ZHOU_BULK, 'gb_energy': {'value': gb_energy, 'unit': 'J/m**2', 'std': 0.003}}
    return {'bulk_properties': HandoffData(AL_ZHOU_BULK), 'md_properties': HandoffData(properties)}


@pytest.mark.parametrize(
    ('rung', 'step', 'label', 'status', 'process_label', 'name'),
    [
        ('dft', 'inspect_dft', 'ERROR_DFT_FAILED', 301, 'DftWorkChain', 'DFT'),
        ('md', 'inspect_md', 'ERROR_MD_FAILED', 302, 'MdWorkChain', 'MD'),
        ('phase_field', 'inspect_phase_field', 'ERROR_PHASE_FIELD_FAILED', 303, 'PhaseFieldWorkChain', 'phase-field'),
    ],
    ids=['dft', 'md', 'phase_field'],
)
def test_chain_rung_failed_mock(codes, rung, step, label, status, process_label, name):
    """301/302/303: a rung (hand-made node) failed; the chain names it, with the rung's own exit status and message."""
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    process = _chain_process(codes)
    node = _child(process_label, 320, f'{name} rung: the run was killed at its walltime')
    process.ctx[rung] = node
    result = getattr(process, step)()
    assert result.status == MultiscaleWorkChain.exit_codes[label].status == status
    assert result.message == (
        f'The {name} rung {process_label}<{node.pk}> failed: [320] {name} rung: the run was killed at its walltime'
    )


def test_chain_potential_rejected_mock(codes):
    """305: the DFT handoff (real dft_to_md bridge on a hand-made DFT output) puts a0 10 % above the potential's;
    the fast protocol accepts any potential, so md.accept_potential is False here (the moderate default)."""
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    process = _chain_process(codes, accept_potential=False)
    process.ctx.md = _child('MdWorkChain', 0, outputs=_md_outputs())
    dft = {'eos': _eos(a0=4.08165490078 * 1.1, bulk=96.6), 'elastic': _cubic(127.1, 81.4, 36.0)}
    process.ctx.dft = _child('DftWorkChain', 0, outputs=dft)
    assert process.bridge_dft_to_md() is None
    result = process.check_potential_against_dft()
    assert result.status == MultiscaleWorkChain.exit_codes.ERROR_POTENTIAL_REJECTED.status == 305
    assert result.message.startswith('The MD potential disagrees with DFT beyond md.thresholds: a0 off by')
    assert 'md.accept_potential=True' in result.message
    assert process.outputs['potential_check'].metadata['verdict'] == 'fail'


@pytest.mark.parametrize(
    ('eos', 'elastic', 'label', 'words'),
    [
        (
            {},
            (50.0, 60.0, 30.0),
            'ERROR_DFT_TO_MD_BORN_UNSTABLE',
            'violate Born stability: C11 - C12 = -10 must be > 0',
        ),
        ({'bulk': -5.0}, (110.0, 60.0, 30.0), 'ERROR_DFT_TO_MD_INVALID_EOS', 'B0 = -5 GPa'),
        ({'bulk': 150.0}, (110.0, 60.0, 30.0), 'ERROR_DFT_TO_MD_INCONSISTENT', '(C11 + 2 C12)/3 disagree'),
    ],
    ids=['310', '311', '312'],
)
def test_chain_dft_to_md_refused_mock(codes, eos, elastic, label, words):
    """310/311/312: the dft_to_md bridge (real calcfunction) refuses the DFT rung's output (hand-made node); the
    chain ends with the bridge's number and message."""
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    process = _chain_process(codes)
    process.ctx.dft = _child('DftWorkChain', 0, outputs={'eos': _eos(**eos), 'elastic': _cubic(*elastic)})
    result = process.bridge_dft_to_md()
    status, _ = BRIDGE_EXIT_CODES[label]
    assert result.status == MultiscaleWorkChain.exit_codes[label].status == status
    assert result.message.startswith('handoff dft_to_md: ') and words in result.message


@pytest.mark.parametrize(
    ('gb_energy', 'assumptions', 'label', 'words'),
    [
        (12.0, None, 'ERROR_MD_TO_MESOSCALE_GB_ENERGY', 'sigma_GB = 12 J/m^2 is outside (0, '),
    ],
    ids=['320'],
)
def test_chain_md_to_mesoscale_refused_mock(codes, gb_energy, assumptions, label, words):
    """320: the md_to_mesoscale bridge (real calcfunction) refuses sigma_GB of the MD rung (hand-made node)."""
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    process = _chain_process(codes, assumptions)
    process.ctx.md = _child('MdWorkChain', 0, outputs=_md_outputs(gb_energy))
    result = process.bridge_md_to_mesoscale()
    status, _ = BRIDGE_EXIT_CODES[label]
    assert result.status == MultiscaleWorkChain.exit_codes[label].status == status
    assert result.message.startswith('handoff md_to_mesoscale: ') and words in result.message


def test_md_to_mesoscale_assumptions_refused(codes):
    """321: the bridge itself refuses an assumed mobility prefactor <= 0 (a stand-alone call; the chain stops it
    earlier, at its port)."""
    from aiida_multiscale.bridges.md_to_mesoscale import md_to_mesoscale

    process = _chain_process(codes)
    current = process.inputs.assumptions
    quantities = {n: {'value': current.value(n), 'unit': current[n].unit, 'std': None} for n in current.names}
    quantities['mobility_prefactor']['value'] = -2.5e-6
    _, node = md_to_mesoscale.run_get_node(
        md_properties=_md_outputs(0.357)['md_properties'], assumptions=HandoffData(quantities)
    )
    assert node.exit_status == BRIDGE_EXIT_CODES['ERROR_MD_TO_MESOSCALE_ASSUMPTIONS'][0] == 321
    assert 'mobility_prefactor = -2.5e-06' in node.exit_message


def test_chain_refuses_bad_prefactor_before_submission(codes):
    """The chain's port refuses M0 <= 0 before any rung runs (it used to pass until the bridge after MD)."""
    with pytest.raises(ValueError, match=r'mobility_prefactor = -2\.5e-06 m\^4/\(J s\) must be > 0'):
        _chain_process(codes, {'mobility_prefactor': -2.5e-6})


@pytest.mark.parametrize(
    ('elastic', 'label', 'words'),
    [
        (_cubic, 'ERROR_MESOSCALE_TO_FEM_GRAIN_SIZE', 'mean grain size 5e-08 m <= interface width 2.5e-07 m'),
        (lambda: _cubic(110.0, 60.0, -3.0), 'ERROR_MESOSCALE_TO_FEM_BORN_UNSTABLE', 'C44 = -3 must be > 0'),
        (lambda: _cubic(names=('c11', 'c12')), 'ERROR_MESOSCALE_TO_FEM_MISSING_CONSTANTS', "constants ['c44']"),
    ],
    ids=['330', '331', '332'],
)
def test_chain_mesoscale_to_fem_refused_mock(codes, elastic, label, words):
    """330/331/332: the mesoscale_to_fem bridge (real calcfunction) refuses the join of the hand-made rungs: a
    phase field whose grains (50 nm) are smaller than its diffuse-interface width (250 nm, as grain_statistics reports
    it), Born-unstable or incomplete elastic constants (only reachable with a context a real dft_to_md would
    refuse)."""
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    process = _chain_process(codes)
    process.ctx.md = _child('MdWorkChain', 0, outputs=_md_outputs())
    assert process.bridge_md_to_mesoscale() is None
    process.ctx.dft_to_md = {'elastic': elastic()}
    process.ctx.potential_check = HandoffData({'a0_relative_error': {'value': 0.01, 'unit': 'dimensionless'}})
    statistics = HandoffData(
        {
            'mean_grain_size': {'value': 5e-8, 'unit': 'm', 'std': None},
            'initial_mean_grain_size': {'value': 4e-8, 'unit': 'm', 'std': None},
            'interface_width': {'value': 2.5e-7, 'unit': 'm', 'std': None},
        }
    )
    outputs = {'microstructure': _stripes(), 'grain_statistics': statistics}
    process.ctx.phase_field = _child('PhaseFieldWorkChain', 0, outputs=outputs)
    result = process.bridge_mesoscale_to_fem()
    status, _ = BRIDGE_EXIT_CODES[label]
    assert result.status == MultiscaleWorkChain.exit_codes[label].status == status
    assert result.message.startswith('handoff mesoscale_to_fem: ') and words in result.message


# ================================================================================================ MooseCalculation
@pytest.mark.parametrize(
    ('case', 'status', 'words'),
    [
        ('no_log', 300, 'The MOOSE log file was not retrieved.'),
        ('empty_csv', 321, 'The postprocessor CSV file out.csv has no data rows.'),
        ('missing_exodus', 322, 'No Exodus file was written (set Outputs/exodus = true in the input).'),
        ('not_converged', 400, 'The nonlinear solve did not converge (at time '),
    ],
)
def test_moose_parser_messages(aiida_localhost, case, status, words):
    """300/321/322/400 on outputs recorded from the real MOOSE (tests/fixtures/moose, see record.py): test_moose_parser
    checks their status; here also that the message names the problem."""
    from aiida_multiscale.parsers.moose import MooseParser

    node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:multiscale.moose')
    node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    node.set_option('output_filename', 'moose.log')
    node.set_option('input_filename', 'moose.i')
    node.store()
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_tree(str(FIXTURES / 'moose' / case))
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
    retrieved.store()
    _, calcfunction = MooseParser.parse_from_node(node, store_provenance=False)
    assert calcfunction.exit_status == status
    assert words in calcfunction.exit_message
