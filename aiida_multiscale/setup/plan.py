"""The two phases of the set-up: :func:`preflight` checks and plans, :func:`apply_setup` creates or rolls back."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil

from aiida_multiscale.setup import codes, pseudos
from aiida_multiscale.setup.errors import SetupError
from aiida_multiscale.setup.services import check_services

__all__ = ('SetupPlan', 'apply_setup', 'preflight', 'run_setup')


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
    #: calculation's ``metadata.options.withmpi`` decides, instead of the serial default of ``CODE_PLUGINS``.
    mpi_codes: tuple[str, ...] = ()
    pseudo_folder: pathlib.Path = pseudos.DEFAULT_PSEUDO_FOLDER
    pseudo_files: dict[str, dict[str, pathlib.Path]] = dataclasses.field(default_factory=dict)
    #: Why a file of the cutoffs table was left out (missing, or another md5), logged when the families are made.
    pseudo_notes: list[str] = dataclasses.field(default_factory=list)


def _resolve_executables(
    executables: dict[str, str | None] | None, remote: bool, check: bool, pseudo_folder: pathlib.Path
) -> dict[str, str]:
    """Absolute path of every code's executable (given, else :func:`codes.default_executables`), smoke-run if asked.

    On a remote computer the paths are taken as given: they cannot be checked from here.
    """
    found = codes.default_executables()
    found.update({k: v for k, v in (executables or {}).items() if v})
    resolved = {}
    for label, exe in found.items():
        if not exe:
            raise SetupError(f'no executable found for {label}: {codes.missing_executable_hint(label)}')
        if not remote:
            path = shutil.which(exe) or exe
            if not os.path.isfile(path) or not os.access(path, os.X_OK):
                raise SetupError(
                    f'{label} executable {exe} does not exist or is not executable: fix the path (--{label})'
                )
            exe = str(pathlib.Path(path).absolute())
            if check:
                if label == 'pw':
                    codes.check_pw(exe, pseudo_folder)
                else:
                    codes.CHECKS[label](exe)
        resolved[label] = exe
    return resolved


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
    """Check everything that can be checked without writing to the database and return the plan.

    The storage and the broker must answer, each executable must exist *and really run* (pw.x on a tiny SCF, lmp with
    the MANYBODY package, ``moose --version``), and the pseudopotential folder must hold UPF files.  The first problem
    raises :class:`SetupError`.
    """
    check_services()

    folder = pathlib.Path(pseudo_folder) if pseudo_folder else pseudos.DEFAULT_PSEUDO_FOLDER
    if not folder.is_dir():
        raise SetupError(
            f'pseudopotential folder {folder} does not exist: install quantum-espresso-data or pass --pseudo-folder'
        )
    pseudo_notes: list[str] = []
    pseudo_files = pseudos.select_pseudos(folder, log=pseudo_notes.append)
    if not pseudo_files:
        names = sorted({e['filename'] for f in pseudos.load_cutoffs_table().values() for e in f['elements'].values()})
        raise SetupError(
            f'none of the UPF files with converged cutoffs ({", ".join(names)}) is in {folder}: pass the folder of '
            "Debian's quantum-espresso-data with --pseudo-folder, or install a family with `aiida-pseudo install sssp`"
        )

    remote = transport != 'core.local'
    resolved = _resolve_executables(executables, remote, check_executables, folder)

    unknown = sorted(set(mpi_codes) - set(codes.CODE_PLUGINS))
    if unknown:
        raise SetupError(
            f'unknown code(s) {", ".join(unknown)} in --mpi-code: choose from {", ".join(codes.CODE_PLUGINS)}'
        )
    mpirun = codes.default_mpirun_command(mpirun_command, remote)

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
        pseudo_notes=pseudo_notes,
    )


def _delete(entities: list) -> None:
    """Delete what a failed :func:`apply_setup` created, newest first; best effort."""
    from aiida import orm
    from aiida.tools import delete_nodes

    for entity in reversed(entities):
        try:
            if isinstance(entity, orm.Group):
                orm.Group.collection.delete(entity.pk)
            elif isinstance(entity, orm.Computer):
                orm.Computer.collection.delete(entity.pk)
            else:
                delete_nodes([entity.pk], dry_run=False)
        except Exception:  # best effort: report the original error, not the clean-up one
            pass


def apply_setup(plan: SetupPlan, log=print) -> dict:
    """Create what the plan describes and is missing; on any failure delete what this call created.

    :return: ``{'computer': Computer, 'codes': {label: Code}, 'families': {label: PseudoPotentialFamily}}``.
    """
    created: list = []
    try:
        computer = codes.get_or_create_computer(plan, created, log)
        installed = {
            label: codes.get_or_create_code(computer, label, exe, created, log, mpi=label in plan.mpi_codes)
            for label, exe in plan.executables.items()
        }
        for note in plan.pseudo_notes:
            log(note)
        families = pseudos.get_or_create_families(plan, created, log)
    except BaseException:
        _delete(created)
        raise
    return {'computer': computer, 'codes': installed, 'families': families}


def run_setup(log=print, **kwargs) -> dict:
    """:func:`preflight` then :func:`apply_setup`; ``kwargs`` are those of :func:`preflight`."""
    return apply_setup(preflight(**kwargs), log=log)
