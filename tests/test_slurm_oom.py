"""Out of memory through the real queue: a job over its ``--mem`` ends with exit code 110, and the parsers keep it.

The local Slurm runs with accounting (slurmdbd, ``sacct``) and enforces ``--mem`` with task/cgroup, as most clusters
do: the kernel's OOM killer ends a job that uses more than it asked for, Slurm records the state ``OUT_OF_MEMORY``, and
aiida-core's Slurm plugin turns that state, read with ``sacct`` when the calculation is retrieved, into
``ERROR_SCHEDULER_OUT_OF_MEMORY`` (110).  The parser runs afterwards and could replace 110 with a vaguer code of its own
(output incomplete); these tests check that it does not, since 110 is what a restart handler needs to ask for more
memory instead of resubmitting the same job.

Nothing is mocked: real pw.x, LAMMPS and MOOSE runs whose memory needs exceed the ``metadata.options.max_memory_kb``
they were given (Slurm's ``--mem``).  A control run under the same limit that fits finishes normally, so the 110 comes
from the memory limit, not from a queue that kills everything.  Without accounting or cgroups every test here is
skipped with one line saying why (``slurm_accounting`` fixture); the other Slurm tests do not need either.
"""

from __future__ import annotations

import io

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory

from aiida_multiscale.calculations.moose import MooseCalculation
from aiida_multiscale.engines.moose.hit import render_hit

pytestmark = [pytest.mark.real_code]

#: aiida-core's CalcJob exit code for a job the scheduler killed for its memory.
OUT_OF_MEMORY = 110
#: The memory limit of the MOOSE jobs (Slurm --mem).  The rabbit MOOSE needs about 100 MB to start and solve a small
#: problem, and about 200 MB for a 300 x 300 mesh (measured with /usr/bin/time on this machine).
MOOSE_LIMIT_MB = 150


def _options(memory_mb: int) -> dict:
    return {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'withmpi': False,
        'max_wallclock_seconds': 300,
        'max_memory_kb': memory_mb * 1024,
    }


def _sacct(node) -> dict[str, str]:
    """The job line of the ``sacct`` record that AiiDA stored on the node at retrieval (``detailed_job_info``)."""
    info = node.get_detailed_job_info()
    assert info is not None and info.get('retval') == 0, f'AiiDA could not read sacct for {node}: {info}'
    header, job = info['stdout'].splitlines()[:2]
    return dict(zip(header.split('|'), job.split('|')))


def _assert_mem_requested(node, memory_mb: int) -> None:
    """The job script AiiDA submitted carries ``--mem``: that is what Slurm enforced.

    sacct's ``ReqMem`` is not used for this.  In a clean clone it has read ``16?`` for jobs run soon after accounting
    comes up.  2**64 MB is 16 of the sixth unit above MB, past the last unit letter sacct knows, so ``16?`` is
    most likely sacct printing NO_VAL64 (unset): the record reached the database without its
    memory request.  The kill itself (State OUT_OF_MEMORY) does not depend on that record.
    """
    script = node.base.repository.get_object_content('_aiidasubmit.sh')
    assert f'#SBATCH --mem={memory_mb}\n' in script, 'max_memory_kb did not reach Slurm as --mem'


def _stderr(node) -> str:
    return node.outputs.retrieved.base.repository.get_object_content('_scheduler-stderr.txt')


def _moose_heat(dim: int, n: int) -> str:
    """Steady -lap u = 1 with u = 0 on the left and right faces, on n elements (dim = 1) or n x n elements (dim = 2).

    In 1-D the exact solution is u = x(1 - x)/2 (peak 1/8); the 2-D problem with insulated top and bottom is the same
    field extruded, so both have the same peak.
    """
    mesh = {'type': 'GeneratedMeshGenerator', 'dim': dim, 'nx': n}
    if dim == 2:
        mesh['ny'] = n
    return render_hit(
        {
            'Mesh': {'gen': mesh},
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
                'peak': {'type': 'PointValue', 'variable': 'u', 'point': '0.5 0.5 0' if dim == 2 else '0.5 0 0'}
            },
            'Outputs': {'csv': True, 'exodus': True, 'file_base': 'heat'},
        }
    )


def _moose_builder(code, text: str, memory_mb: int):
    builder = MooseCalculation.get_builder()
    builder.code = code
    builder.input_file = orm.SinglefileData(io.BytesIO(text.encode()), filename='moose.i')
    builder.metadata.options = _options(memory_mb)
    return builder


def test_moose_within_memory_limit(slurm_accounting, slurm_codes):
    """Control: a small MOOSE problem under the same --mem finishes normally, and sacct saw it use less than that."""
    results, node = run_get_node(_moose_builder(slurm_codes['moose'], _moose_heat(1, 20), MOOSE_LIMIT_MB))
    assert node.is_finished_ok, node.exit_message
    assert results['output_parameters']['postprocessors']['peak'] == pytest.approx(1 / 8, rel=1e-6)
    job = _sacct(node)
    assert job['State'] == 'COMPLETED'
    _assert_mem_requested(node, MOOSE_LIMIT_MB)


def test_moose_out_of_memory(slurm_accounting, slurm_codes):
    """A 500 x 500 mesh (about twice the memory of 300 x 300, which needs 200 MB) under 150 MB: killed, exit 110.

    The log file exists (the job script opens it before MOOSE starts), so the parser gets past its "log missing"
    branch and finds no MOOSE error in it: it must still return the scheduler's 110, not 311 (killed by a signal, which
    bash reports on the stderr) or 0.
    """
    _, node = run_get_node(_moose_builder(slurm_codes['moose'], _moose_heat(2, 500), MOOSE_LIMIT_MB))
    job = _sacct(node)
    assert job['State'] == 'OUT_OF_MEMORY', f'sacct: {job}'
    _assert_mem_requested(node, MOOSE_LIMIT_MB)
    assert 'oom-kill' in _stderr(node)
    assert 'moose.log' in node.outputs.retrieved.base.repository.list_object_names()
    assert node.exit_status == OUT_OF_MEMORY, node.exit_message
    assert node.exit_status == node.process_class.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY.status


def test_pw_out_of_memory(slurm_accounting, slurm_codes, pseudo_family, build_al_scf):
    """pw.x for fcc Al at ecutwfc = 150 Ry (about 77 MB; 34 MB at 30 Ry) under 48 MB: killed in the SCF, exit 110.

    aiida-quantumespresso's parser finds stdout and XML incomplete and keeps the scheduler's code; a PwBaseWorkChain
    handler can then act on "out of memory" rather than on "output files missing" (305).
    """
    base = build_al_scf(slurm_codes['pw'], pseudo_family, lattice_constant=4.05, ecutwfc=150.0, kmesh=12)
    builder = CalculationFactory('quantumespresso.pw').get_builder()
    for key in ('code', 'structure', 'pseudos', 'parameters'):
        setattr(builder, key, base.pw[key])
    builder.kpoints = base.kpoints
    builder.metadata.options = _options(48)
    _, node = run_get_node(builder)
    job = _sacct(node)
    assert job['State'] == 'OUT_OF_MEMORY', f'sacct: {job}'
    assert 'oom-kill' in _stderr(node)
    assert node.exit_status == OUT_OF_MEMORY, node.exit_message
    assert node.exit_status == node.process_class.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY.status


#: 60^3 fcc cells of Al (864 000 atoms) with an EAM: the atoms alone take about 170 MB, the neighbour lists more; the
#: LAMMPS executable itself needs about 30 MB.  Under 100 MB it is killed while building the system.
LMP_LIMIT_MB = 100
LMP_BIG_CELL = """units metal
atom_style atomic
boundary p p p
lattice fcc 4.05
region box block 0 60 0 60 0 60
create_box 1 box
create_atoms 1 box
mass 1 26.9815
pair_style eam/alloy
pair_coeff * * Al_zhou.eam.alloy Al
thermo_style custom step pe press
run 0
"""


def test_lmp_out_of_memory(slurm_accounting, slurm_codes):
    """LAMMPS over its --mem: the job ends OUT_OF_MEMORY and ``multiscale.lammps.raw`` keeps the scheduler's 110.

    The stock aiida-lammps raw parser would fail on the thermo block that is missing; ours returns the scheduler's
    exit code when one was set (see :mod:`aiida_multiscale.parsers.lammps`), so a handler can ask for more memory.
    """
    import pathlib

    potentials = pathlib.Path(__import__('lammps').__file__).parent / 'share' / 'lammps' / 'potentials'
    builder = CalculationFactory('lammps.raw').get_builder()
    builder.code = slurm_codes['lmp']
    builder.script = orm.SinglefileData(io.BytesIO(LMP_BIG_CELL.encode()), filename='input.in')
    builder.files = {'potential': orm.SinglefileData(potentials / 'Al_zhou.eam.alloy', filename='Al_zhou.eam.alloy')}
    builder.metadata.options = _options(LMP_LIMIT_MB)
    builder.metadata.options.parser_name = 'multiscale.lammps.raw'
    _, node = run_get_node(builder)
    job = _sacct(node)
    assert job['State'] == 'OUT_OF_MEMORY', f'sacct: {job}'
    _assert_mem_requested(node, LMP_LIMIT_MB)
    assert 'oom-kill' in _stderr(node)
    assert node.exit_status == OUT_OF_MEMORY, node.exit_message
