"""``aiida-multiscale setup``: the computer, the codes pw/lmp/moose and the pseudopotential families."""

import click

from aiida_multiscale.cli import cli


@cli.command('setup')
@click.option(
    '--scheduler',
    type=click.Choice(['core.direct', 'core.slurm']),
    default='core.direct',
    show_default=True,
    help='Scheduler of the computer: run directly, or through a Slurm queue.',
)
@click.option(
    '--transport',
    type=click.Choice(['core.local', 'core.ssh_async', 'core.ssh']),
    default='core.local',
    show_default=True,
    help='How AiiDA reaches the computer; a remote cluster needs an ssh transport.',
)
@click.option('--hostname', default='localhost', show_default=True, help='Hostname of the computer.')
@click.option(
    '--computer-label',
    default=None,
    help='Label of the computer [default: localhost, localhost-slurm, or the hostname for a remote one].',
)
@click.option(
    '--workdir', default=None, help='Scratch directory on the computer [default: ~/aiida_multiscale_scratch].'
)
@click.option(
    '--mpiprocs-per-machine',
    type=click.IntRange(min=1),
    default=None,
    help='Default MPI processes per machine [default: the number of cores here].',
)
@click.option('--prepend-text', default='', help='Shell lines run before every job, e.g. `module load ...`.')
@click.option(
    '--mpirun-command',
    default=None,
    help='MPI launcher of the computer, e.g. `srun` on a Slurm cluster [default: mpirun -np {tot_num_mpiprocs}].',
)
@click.option(
    '--mpi-code',
    'mpi_codes',
    type=click.Choice(['pw', 'lmp', 'moose']),
    multiple=True,
    help='A code that is an MPI build (e.g. lmp from a cluster module): its calculations may then run with '
    'withmpi True. Repeat for several codes. pw is always so.',
)
@click.option('--pw', 'pw', default=None, help='Path of pw.x [default: $AIIDA_MULTISCALE_PW, else pw.x on PATH].')
@click.option(
    '--lmp',
    'lmp',
    default=None,
    help='Path of lmp [default: $AIIDA_MULTISCALE_LMP, else the lmp of this Python environment, else lmp on PATH].',
)
@click.option(
    '--moose',
    'moose',
    default=None,
    help='Path of the MOOSE app (any app with the framework and solid mechanics) [default: $AIIDA_MULTISCALE_MOOSE, '
    'else moose on PATH].',
)
@click.option(
    '--pseudo-folder',
    type=click.Path(file_okay=False),
    default=None,
    help='Folder of UPF files [default: /usr/share/espresso/pseudo].',
)
@click.option('--no-check', is_flag=True, help='Do not run the executables to check them (for a remote computer).')
def cmd_setup(
    scheduler,
    transport,
    hostname,
    computer_label,
    workdir,
    mpiprocs_per_machine,
    prepend_text,
    mpirun_command,
    mpi_codes,
    pw,
    lmp,
    moose,
    pseudo_folder,
    no_check,
):
    """Create (idempotently) the computer, the codes pw, lmp and moose, and the pseudopotential families.

    Every executable is run once before anything is stored (pw.x on a one-atom SCF, lmp -h, moose --version).  Any
    problem stops the set-up with one line that says what is wrong and how to fix it, and nothing half-created is
    left behind, so a rerun after the fix succeeds.
    """
    from aiida_multiscale.setup import SetupError, run_setup

    try:
        result = run_setup(
            log=lambda msg: click.echo(f'  {msg}'),
            executables={'pw': pw, 'lmp': lmp, 'moose': moose},
            pseudo_folder=pseudo_folder,
            scheduler=scheduler,
            transport=transport,
            hostname=hostname,
            computer_label=computer_label,
            workdir=workdir,
            mpiprocs_per_machine=mpiprocs_per_machine,
            prepend_text=prepend_text,
            check_executables=not no_check,
            mpirun_command=mpirun_command,
            mpi_codes=mpi_codes,
        )
    except SetupError as exc:
        click.echo(f'Error: {exc}', err=True)
        raise SystemExit(1) from None
    codes = ', '.join(code.full_label for code in result['codes'].values())
    click.echo(
        f'Set-up complete: computer {result["computer"].label}; codes {codes}; '
        f'pseudo families {", ".join(result["families"])}'
    )
