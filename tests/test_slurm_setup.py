"""``aiida-multiscale setup`` for a remote Slurm cluster: ssh transport, module-load prepend text, srun, MPI builds."""

from __future__ import annotations

from aiida import orm
from click.testing import CliRunner

from aiida_multiscale.cli import cli


def test_setup_remote_slurm_cluster(multiscale_setup):
    """What docs/howto_cluster.md tells users to run, on a cluster that cannot be reached from here (--no-check)."""
    args = [
        'setup',
        '--scheduler', 'core.slurm',
        '--transport', 'core.ssh_async',
        '--hostname', 'cluster.example.org',
        '--workdir', '/scratch/{username}/aiida',
        '--mpiprocs-per-machine', '64',
        '--mpirun-command', 'srun --cpu-bind=cores',
        '--prepend-text', 'module load quantum-espresso/7.2 lammps/2Aug2023',
        '--pw', '/apps/qe/7.2/bin/pw.x',
        '--lmp', '/apps/lammps/bin/lmp',
        '--moose', '/home/me/projects/myapp/myapp-opt',
        '--mpi-code', 'lmp',
        '--mpi-code', 'moose',
        '--no-check',
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    computer = orm.load_computer('cluster.example.org')
    assert (computer.scheduler_type, computer.transport_type) == ('core.slurm', 'core.ssh_async')
    assert computer.get_mpirun_command() == ['srun', '--cpu-bind=cores']
    assert computer.get_default_mpiprocs_per_machine() == 64
    assert computer.get_prepend_text() == 'module load quantum-espresso/7.2 lammps/2Aug2023'
    assert computer.get_workdir() == '/scratch/{username}/aiida'
    codes = {label: orm.load_code(f'{label}@cluster.example.org') for label in ('pw', 'lmp', 'moose')}
    assert str(codes['moose'].filepath_executable) == '/home/me/projects/myapp/myapp-opt'
    # MPI builds: withmpi is decided per calculation; the venv's LD_LIBRARY_PATH fix is not applied to them.
    assert codes['lmp'].with_mpi is None and codes['moose'].with_mpi is None and codes['pw'].with_mpi is None
    assert 'LD_LIBRARY_PATH' not in (codes['lmp'].prepend_text or '')
    # A rerun is idempotent.
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "computer 'cluster.example.org' exists" in again.output


def test_setup_rejects_unknown_mpi_code(multiscale_setup):
    result = CliRunner().invoke(cli, ['setup', '--mpi-code', 'vasp', '--no-check'])
    assert result.exit_code != 0
    assert "'vasp' is not one of 'pw', 'lmp', 'moose'" in result.output
