"""Runs that hit their time limit, through the real Slurm queue: restarted, and ending with the uninterrupted result.

* MD rung: every LAMMPS run of ``MdWorkChain`` goes through ``LammpsRawBaseWorkChain``, which resubmits a run killed
  at the time limit (120) from scratch with twice the time; the rung stops with ``ERROR_OUT_OF_WALLTIME`` (320, naming
  the run) when ``max_wallclock_seconds_limit`` or ``max_iterations`` allows no more.
* DFT rung: pw.x stopped by its own ``CONTROL.max_seconds`` (exit 400) is restarted by aiida-quantumespresso's
  ``PwBaseWorkChain.handle_out_of_walltime`` (nothing of ours); a job killed by the scheduler (120) is resubmitted with
  more time by our ``handle_scheduler_out_of_walltime``
  (``aiida_multiscale.workflows.base.pw.MultiscalePwBaseWorkChain``), from the charge density when the killed run left
  one, until ``max_wallclock_seconds_limit`` (then exit 320).  Both must end at the total energy of an uninterrupted
  SCF.

Slurm runs without accounting here, so, as on many clusters, AiiDA learns about a time-limit kill only from the
``CANCELLED ... DUE TO TIME LIMIT`` line Slurm writes first on the job's stderr.  A real kill needs the 1-minute
minimum limit plus Slurm's 30 s check period; to keep these tests short (``test_slurm.test_moose_walltime_exceeded``
covers the real kill), the *mock* kill is a job script that writes Slurm's own line and exits when (and only when)
its Slurm time limit is one of the short ones: the decision depends on the time limit the restart actually gave it.
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_multiscale.workflows.base.pw import MultiscalePwBaseWorkChain
from aiida_multiscale.workflows.md import MdWorkChain

pytestmark = [pytest.mark.real_code]

#: Written first on the job's standard error by slurmstepd when it kills a job at its time limit (Slurm 22.05).
TIME_LIMIT_LINE = (
    'slurmstepd: error: *** JOB $SLURM_JOB_ID ON $(hostname) CANCELLED AT $(date +%FT%T) DUE TO TIME LIMIT ***'
)
OUT_OF_WALLTIME = 120


def mock_time_limit_kill(short_limits: str) -> str:
    """Job-script lines: if this job's Slurm time limit matches ``short_limits`` (a ``case`` pattern such as
    ``1:00|2:00``), write Slurm's time-limit line on stderr and stop before the code runs, as a kill would."""
    return (
        'limit=$(squeue -h -j "$SLURM_JOB_ID" -o %l)\n'
        f'case "$limit" in {short_limits}) echo "{TIME_LIMIT_LINE}" >&2; exit 0;; esac'
    )


# ---------------------------------------------------------------------------------------------------------------------
# MD rung
# ---------------------------------------------------------------------------------------------------------------------
def _md_builder(slurm_codes, short_limits: str, **inputs):
    """The fast protocol's MdWorkChain for Al (default potential Al_mm, no mobility stage) on Slurm, 1 min per run."""
    builder = MdWorkChain.get_builder_from_protocol(
        'lmp@localhost', 'Al', protocol='fast', overrides={'parameters': {'mobility': {'compute': False}}}
    )
    builder.code = slurm_codes['lmp']
    builder.lammps.metadata.options = {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'withmpi': False,
        'max_wallclock_seconds': 60,
        'prepend_text': mock_time_limit_kill(short_limits),
    }
    for name, value in inputs.items():
        setattr(builder, name, orm.Int(value))
    return builder


def _lammps_calcs(node):
    """The LAMMPS calculations of an MdWorkChain (each called by a LammpsRawBaseWorkChain), oldest first."""
    calcs = [c for c in node.called_descendants if c.process_label == 'LammpsRawCalculation']
    return sorted(calcs, key=lambda c: c.ctime)


def test_md_resubmits_with_twice_the_time_mock_time_limit(slurm_codes):
    """Every LAMMPS run is killed once at 1 min (mock) and finishes at 2 min: same a0 and Sigma5 energy as Al_mm's.

    References: a0 = 4.0453 A, the fcc minimum of Al_mm.eam.fs (also by ase's EAM calculator on the same file), and the
    Sigma5(310)[001] energy 0.490 J/m^2 of a rigid-shift scan of the same potential in LAMMPS (test_md_workchain).
    """
    _, node = run_get_node(_md_builder(slurm_codes, '1:00'))
    assert node.is_finished_ok, node.exit_message
    calcs = _lammps_calcs(node)
    # bulk, gb_scan, gb_size_check: each killed once at 60 s, then run to the end at 120 s.
    assert [(c.label, c.exit_status, c.get_option('max_wallclock_seconds')) for c in calcs] == [
        (label, status, seconds)
        for label in ('bulk', 'gb_scan', 'gb_size_check')
        for status, seconds in ((OUT_OF_WALLTIME, 60), (0, 120))
    ]
    assert all(c.get_option('parser_name') == 'multiscale.lammps.raw' for c in calcs)
    assert all(c.get_job_id().isdigit() for c in calcs)
    assert [(c.process_label, c.label) for c in node.called if c.process_label == 'LammpsRawBaseWorkChain'] == [
        ('LammpsRawBaseWorkChain', label) for label in ('bulk', 'gb_scan', 'gb_size_check')
    ]
    properties = node.outputs.md_properties
    assert properties.value('a0_md', 'angstrom') == pytest.approx(4.0453, abs=1e-3)
    assert properties.value('gb_energy', 'J/m^2') == pytest.approx(0.490, abs=0.01)


@pytest.mark.parametrize(
    ('inputs', 'child_exit', 'reason'),
    [
        ({'max_wallclock_seconds_limit': 120}, 320, 'max_wallclock_seconds_limit = 120 s allows no more'),
        ({'max_iterations': 2}, 401, 'the last of max_iterations = 2 runs'),
        ({'max_walltime_restarts': 1}, 401, 'the last of max_iterations = 2 runs'),  # deprecated, mapped
    ],
    ids=['limit', 'max_iterations', 'deprecated_max_walltime_restarts'],
)
def test_md_out_of_walltime_exhausted_names_the_run_mock_time_limit(slurm_codes, inputs, child_exit, reason):
    """Killed at 1 min and again at 2 min, with no third run allowed: exit 320 naming the bulk run, no GB run started.

    Whichever bound stops the restart chain (its walltime limit: 320; its runs: 401), the rung says out of walltime.
    """
    _, node = run_get_node(_md_builder(slurm_codes, '1:00|2:00', **inputs))
    assert node.exit_status == MdWorkChain.exit_codes.ERROR_OUT_OF_WALLTIME.status == 320
    calcs = _lammps_calcs(node)
    assert [(c.label, c.exit_status, c.get_option('max_wallclock_seconds')) for c in calcs] == [
        ('bulk', OUT_OF_WALLTIME, 60),
        ('bulk', OUT_OF_WALLTIME, 120),
    ]
    assert node.exit_message.startswith('MD rung: the bulk LAMMPS run was killed at its walltime')
    assert f'LammpsRawCalculation<{calcs[-1].pk}>' in node.exit_message and reason in node.exit_message
    (chain,) = [c for c in node.called if c.process_label == 'LammpsRawBaseWorkChain']
    assert chain.exit_status == child_exit


# ---------------------------------------------------------------------------------------------------------------------
# DFT rung
# ---------------------------------------------------------------------------------------------------------------------
#: A stiff SCF of fcc Al (14^3 k-points, conv_thr 1e-12 Ry: about 8 iterations, 1-2 s of CPU on one core).
KMESH, CONV_THR = 14, 1e-12
#: |E - E_uninterrupted| allowed: measured 0 (20^3 k) and 3e-10 eV (14^3 k), i.e. up to ~20 conv_thr, as two SCFs
#: that approach the same fixed point from different densities each stop within about conv_thr of it.  Any change of
#: settings across a restart (cut-off, k-mesh, smearing) would move E by far more (14^3 vs 20^3 k: 8.5 meV).
ENERGY_TOLERANCE = 1e-8  # eV


def _scf_builder(code, family, max_wallclock_seconds: int, max_seconds: float | None = None, prepend: str = ''):
    """The DFT rung's SCF work chain (``MultiscalePwBaseWorkChain``) for one-atom fcc Al at a = 4.05 A."""
    from ase.build import bulk

    structure = orm.StructureData(ase=bulk('Al', 'fcc', a=4.05))
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([KMESH] * 3)
    control = {'calculation': 'scf'}
    if max_seconds is not None:
        control['max_seconds'] = max_seconds
    builder = MultiscalePwBaseWorkChain.get_builder()
    builder.pw.code = code
    builder.pw.structure = structure
    builder.pw.pseudos = family.get_pseudos(structure=structure)
    builder.pw.parameters = orm.Dict(
        {
            'CONTROL': control,
            'SYSTEM': {'ecutwfc': 30.0, 'ecutrho': 120.0, 'occupations': 'smearing', 'smearing': 'mv', 'degauss': 0.02},
            'ELECTRONS': {'conv_thr': CONV_THR, 'mixing_beta': 0.4},
        }
    )
    builder.kpoints = kpoints
    builder.max_iterations = orm.Int(12)
    builder.pw.metadata.options = {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'withmpi': False,
        'max_wallclock_seconds': max_wallclock_seconds,
        'prepend_text': prepend,
    }
    return builder


@pytest.fixture(scope='module')
def uninterrupted_scf(slurm_codes, pseudo_family):
    """The reference: the same SCF in one run through the queue (10 min limit, max_seconds 570 s from it)."""
    _, node = run_get_node(_scf_builder(slurm_codes['pw'], pseudo_family, 600))
    assert node.is_finished_ok, node.exit_message
    calcs = [c for c in node.called if c.process_label == 'PwCalculation']
    assert len(calcs) == 1 and calcs[0].exit_status == 0
    return node


def _pw_calcs(node):
    return sorted((c for c in node.called if c.process_label == 'PwCalculation'), key=lambda c: c.ctime)


def test_pw_max_seconds_and_scheduler_kill_restarted_same_energy_mock_time_limit(
    slurm_codes, pseudo_family, uninterrupted_scf
):
    """pw.x stopped by max_seconds (400) and a job killed by the scheduler (120, mock) both end at the same energy.

    ``CONTROL.max_seconds`` is forced to 30 % of the reference run's wall time, so pw.x stops cleanly mid-SCF (400)
    and PwBaseWorkChain restarts it in full from its restart files (aiida-quantumespresso's handler).  That first
    restart is killed by the scheduler (mock: its job finds the charge density the restart copied in and still has
    the first 10-min limit), and our handler resubmits it with twice the time from that charge density.  The SCF
    must end at the uninterrupted run's total energy, within ENERGY_TOLERANCE.
    """
    reference = uninterrupted_scf.outputs.output_parameters.get_dict()
    max_seconds = max(1.0, 0.3 * reference['wall_time_seconds'])
    kill_first_restart = (
        "if [ -e out/aiida.save/charge-density.dat ] && grep -q '^#SBATCH --time=00:10:00$' _aiidasubmit.sh; then\n"
        f'  echo "{TIME_LIMIT_LINE}" >&2; exit 0\nfi'
    )
    builder = _scf_builder(slurm_codes['pw'], pseudo_family, 600, max_seconds=max_seconds, prepend=kill_first_restart)
    _, node = run_get_node(builder)
    calcs = _pw_calcs(node)
    summary = [(c.exit_status, c.get_option('max_wallclock_seconds')) for c in calcs]
    assert node.is_finished_ok, (node.exit_message, summary)
    # 400 (max_seconds), 120 (scheduler), then from the charge density with twice the time until converged.
    assert summary[:2] == [(400, 600), (120, 600)], summary
    assert all(seconds == 1200 for _, seconds in summary[2:]) and summary[-1][0] == 0, summary
    first, killed, after = calcs[0], calcs[1], calcs[2]
    assert killed.inputs.parameters['CONTROL']['restart_mode'] == 'restart'  # PwBaseWorkChain's full restart
    assert killed.inputs.parent_folder.uuid == first.outputs.remote_folder.uuid
    assert after.inputs.parameters['ELECTRONS']['startingpot'] == 'file'  # our handler: from the charge density
    assert after.inputs.parameters['CONTROL']['restart_mode'] == 'from_scratch'
    assert after.inputs.parent_folder.uuid == killed.outputs.remote_folder.uuid
    assert after.inputs.parameters['CONTROL']['max_seconds'] == pytest.approx(2 * max_seconds)
    energy = node.outputs.output_parameters['energy']
    print(f'runs {summary}; E = {energy:.10f} eV, reference {reference["energy"]:.10f} eV')
    assert energy == pytest.approx(reference['energy'], abs=ENERGY_TOLERANCE)


def test_pw_scheduler_kill_before_output_restarts_from_scratch_mock_time_limit(
    slurm_codes, pseudo_family, uninterrupted_scf
):
    """Killed by the scheduler before pw.x wrote anything (mock, 1 min limit): from scratch with 2 min, same energy.

    Without our handler PwBaseWorkChain would rerun the same 1-min job once and stop with 401.
    """
    kill_at_one_minute = (
        f'if grep -q \'^#SBATCH --time=00:01:00$\' _aiidasubmit.sh; then echo "{TIME_LIMIT_LINE}" >&2; exit 0; fi'
    )
    _, node = run_get_node(_scf_builder(slurm_codes['pw'], pseudo_family, 60, prepend=kill_at_one_minute))
    calcs = _pw_calcs(node)
    summary = [(c.exit_status, c.get_option('max_wallclock_seconds')) for c in calcs]
    assert node.is_finished_ok, (node.exit_message, summary)
    assert summary == [(120, 60), (0, 120)], summary
    assert 'parent_folder' not in calcs[1].inputs
    assert calcs[1].inputs.parameters['CONTROL']['max_seconds'] == pytest.approx(0.95 * 120)
    reference = uninterrupted_scf.outputs.output_parameters['energy']
    assert node.outputs.output_parameters['energy'] == pytest.approx(reference, abs=ENERGY_TOLERANCE)


def _killed_scf_mock(codes, pseudo_family, tmp_path, calculation='scf', density=False, limit=None):
    """A MultiscalePwBaseWorkChain (set up, not run) and a faked PwCalculation it ran, killed at 600 s (exit 120).

    :return: the process, the killed node, the killed run's remote folder and the ``parent_folder`` of an NSCF.
    """
    from aiida.common.links import LinkType
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    computer = codes['pw'].computer
    builder = _scf_builder(codes['pw'], pseudo_family, 600, max_seconds=500.0)
    parameters = builder.pw.parameters.get_dict()
    parameters['CONTROL']['calculation'] = calculation
    builder.pw.parameters = orm.Dict(parameters)
    if limit is not None:
        builder.max_wallclock_seconds_limit = orm.Int(limit)
    parent = orm.RemoteData(computer=computer, remote_path=str(tmp_path / 'parent')).store()
    if calculation == 'nscf':
        builder.pw.parent_folder = parent
    process = instantiate_process(get_manager().get_runner(), MultiscalePwBaseWorkChain, **builder._inputs(prune=True))
    process.setup()

    killed = tmp_path / 'killed'
    (killed / 'out' / 'aiida.save').mkdir(parents=True)
    if density:
        (killed / 'out' / 'aiida.save' / 'charge-density.dat').write_bytes(b'rho')
    node = orm.CalcJobNode(computer=computer, process_type='aiida.calculations:quantumespresso.pw')
    node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    node.set_option('max_wallclock_seconds', 600)
    node.store()
    remote = orm.RemoteData(computer=computer, remote_path=str(killed))
    remote.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='remote_folder')
    remote.store()
    node.set_exit_status(OUT_OF_WALLTIME)
    return process, node, remote, parent


@pytest.mark.parametrize(
    ('calculation', 'density', 'expected'),
    [('scf', True, 'charge_density'), ('scf', False, 'scratch'), ('nscf', False, 'parent_kept')],
)
def test_scheduler_walltime_handler_mock_killed_calculation(
    codes, pseudo_family, tmp_path, calculation, density, expected
):
    """The handler on a faked killed PwCalculation (mock: a stored node with exit status 120 and a remote folder).

    An SCF restarts from the charge density only when the killed run's ``out/aiida.save`` holds one; an NSCF keeps
    the ``parent_folder`` it needs; every case doubles the time limit and the explicit ``max_seconds``.
    """
    process, node, remote, parent = _killed_scf_mock(codes, pseudo_family, tmp_path, calculation, density)
    report = process.handle_scheduler_out_of_walltime(node)
    assert report.do_break and report.exit_code.status == 0
    inputs = process.ctx.inputs
    assert inputs.metadata.options['max_wallclock_seconds'] == 1200
    assert inputs.parameters['CONTROL']['max_seconds'] == 1000.0
    if expected == 'charge_density':
        assert inputs.parent_folder.uuid == remote.uuid
        assert inputs.parameters['ELECTRONS']['startingpot'] == 'file'
    elif expected == 'scratch':
        assert 'parent_folder' not in inputs
        assert inputs.parameters['CONTROL']['restart_mode'] == 'from_scratch'
    else:
        assert inputs.parent_folder.uuid == parent.uuid


def test_scheduler_walltime_handler_mock_limit(codes, pseudo_family, tmp_path):
    """``max_wallclock_seconds_limit`` caps the new walltime (600 -> 900 s, ``max_seconds`` x 1.5 with it); a run
    killed at the limit ends the chain with ERROR_OUT_OF_WALLTIME (320), naming the run and both times."""
    process, node, _, _ = _killed_scf_mock(codes, pseudo_family, tmp_path, limit=900)
    report = process.handle_scheduler_out_of_walltime(node)
    assert report.do_break and report.exit_code.status == 0
    assert process.ctx.inputs.metadata.options['max_wallclock_seconds'] == 900
    assert process.ctx.inputs.parameters['CONTROL']['max_seconds'] == pytest.approx(750.0)

    process, node, _, _ = _killed_scf_mock(codes, pseudo_family, tmp_path / 'at_limit', limit=600)
    report = process.handle_scheduler_out_of_walltime(node)
    assert report.do_break
    assert report.exit_code.status == MultiscalePwBaseWorkChain.exit_codes.ERROR_OUT_OF_WALLTIME.status == 320
    assert f'PwCalculation<{node.pk}>' in report.exit_code.message and '600 s' in report.exit_code.message
