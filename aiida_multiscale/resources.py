"""Job resources of a rung: protocol defaults, user options or CLI flags -> checked ``metadata.options``.

AiiDA checks some of this itself, but late: a ``withmpi`` that contradicts the code makes the CalcJob except at upload
(after five retries of the transport), a serial code given eight MPI slots silently runs one process on them, and a
threaded MOOSE run without ``num_cores_per_mpiproc`` oversubscribes the cores Slurm gave it.  Every rung's builder and
every ``launch`` command therefore goes through :func:`resolve_options`, which merges the layers, lets AiiDA's own ports
and the computer's scheduler validate the values, and checks the combination against the code before anything is
submitted.  Errors are :class:`ResourceError` (a ``ValueError``) naming the rung, the problem and the fix.
"""

from __future__ import annotations

import copy
import typing as t

__all__ = (
    'FLAGS',
    'RUNGS',
    'ResourceError',
    'builder_options',
    'merge_options',
    'normalise_options',
    'options_from_flags',
    'resolve_options',
    'split_chain_options',
    'validate_calcjob_resources',
)

#: The rungs of the chain, in order, with the name used in messages.
RUNGS = {'dft': 'DFT rung', 'md': 'MD rung', 'phase_field': 'phase-field rung', 'fem': 'FEM rung'}

#: The resource flags of the ``launch`` commands: (name, type, help).  ``launch chain`` prefixes each with the rung.
FLAGS: tuple[tuple[str, type, str], ...] = (
    ('num_machines', int, 'Machines (nodes) per calculation (resources.num_machines).'),
    (
        'num_mpiprocs_per_machine',
        int,
        'MPI processes per machine (resources.num_mpiprocs_per_machine); more than one needs --withmpi.',
    ),
    ('max_wallclock_seconds', int, 'Wall-clock limit of each calculation in seconds.'),
    ('queue', str, 'Scheduler queue, e.g. the Slurm partition (queue_name).'),
    ('account', str, 'Account (project) the jobs are charged to.'),
    ('withmpi', bool, "Launch the code through the computer's MPI launcher; must match the code's with_mpi."),
)

#: Keys accepted at the top level of an options dict for convenience, and where they belong.
_RESOURCE_KEYS = ('num_machines', 'num_mpiprocs_per_machine', 'tot_num_mpiprocs', 'num_cores_per_mpiproc',
                  'num_cores_per_machine')  # fmt: skip
_ALIASES = {'queue': 'queue_name'}


class ResourceError(ValueError):
    """Bad or inconsistent job resources; the message names the rung, the problem and the fix."""


def _rung_name(rung: str) -> str:
    return RUNGS.get(rung, rung)


def options_from_flags(
    num_machines: int | None = None,
    num_mpiprocs_per_machine: int | None = None,
    max_wallclock_seconds: int | None = None,
    queue: str | None = None,
    account: str | None = None,
    withmpi: bool | None = None,
) -> dict:
    """``metadata.options`` holding only the flags that were given (``None`` means "not given": keep the protocol's)."""
    options: dict = {}
    resources = {
        key: value
        for key, value in (('num_machines', num_machines), ('num_mpiprocs_per_machine', num_mpiprocs_per_machine))
        if value is not None
    }
    if resources:
        options['resources'] = resources
    for key, value in (
        ('max_wallclock_seconds', max_wallclock_seconds),
        ('queue_name', queue),
        ('account', account),
        ('withmpi', withmpi),
    ):
        if value is not None:
            options[key] = value
    return options


def normalise_options(options: t.Mapping | None, rung: str = '') -> dict:
    """A new dict in ``metadata.options`` form: ``queue`` -> ``queue_name``, top-level resource keys -> ``resources``.

    The caller's dict is never modified.  ``None`` values are kept: in :func:`merge_options` they remove the key.
    """
    if options is None:
        return {}
    if not isinstance(options, t.Mapping):
        raise ResourceError(f'{_rung_name(rung)}: options must be a dict, got {type(options).__name__}')
    result: dict = {}
    for key, value in options.items():
        if key in _RESOURCE_KEYS:
            result.setdefault('resources', {})[key] = value
        elif key == 'resources':
            if not isinstance(value, t.Mapping):
                raise ResourceError(f'{_rung_name(rung)}: options.resources must be a dict, got {value!r}')
            result.setdefault('resources', {}).update(copy.deepcopy(dict(value)))
        else:
            result[_ALIASES.get(key, key)] = copy.deepcopy(value)
    return result


def merge_options(*layers: t.Mapping | None) -> dict:
    """Merge options dicts, later layers winning; ``resources`` is merged key by key; ``None`` removes a key."""
    result: dict = {}
    for layer in layers:
        for key, value in normalise_options(layer).items():
            if key == 'resources':
                resources = result.setdefault('resources', {})
                for name, number in value.items():
                    if number is None:
                        resources.pop(name, None)
                    else:
                        resources[name] = number
            elif value is None:
                result.pop(key, None)
            else:
                result[key] = value
    return result


def split_chain_options(options: t.Mapping | None) -> dict[str, dict]:
    """Per-rung options of the chain: keys named after a rung apply to it, every other key to every rung.

    ``{'max_wallclock_seconds': 3600, 'dft': {'withmpi': True, 'num_mpiprocs_per_machine': 4}}`` gives all four rungs
    the wall-clock limit and only the DFT rung the MPI ranks (lmp and the pip MOOSE are serial).
    """
    options = dict(options or {})
    common = {key: value for key, value in options.items() if key not in RUNGS}
    result = {}
    for rung in RUNGS:
        given = options.get(rung) or {}
        if not isinstance(given, t.Mapping):
            raise ResourceError(f'chain: options[{rung!r}] must be a dict of metadata.options, got {given!r}')
        result[rung] = merge_options(common, given)
    return result


def _load_code(code):
    from aiida import orm

    return orm.load_code(code) if isinstance(code, str) else code


def _check_ports(rung: str, options: dict, code) -> None:
    """Let the calculation plugin's own ``metadata.options`` ports check names and types."""
    from aiida.engine import CalcJob
    from aiida.plugins import CalculationFactory

    process_class = CalcJob
    plugin = getattr(code, 'default_calc_job_plugin', None)
    if plugin:
        try:
            process_class = CalculationFactory(plugin)
        except Exception:  # an unknown plugin is the code's problem, reported by the work chain's own validator
            process_class = CalcJob
    namespace = process_class.spec().inputs['metadata']['options']
    for key, value in options.items():
        if key not in namespace:
            raise ResourceError(
                f'{_rung_name(rung)}: unknown option {key!r}; {process_class.__name__} accepts: '
                f'{", ".join(sorted(namespace))}'
            )
        if key == 'resources':
            continue  # checked against the computer's scheduler
        error = namespace[key].validate(value)
        if error is not None:
            expected = 'True or False' if key == 'withmpi' else 'a ' + ' or '.join(
                typ.__name__ for typ in namespace[key].valid_type if typ is not type(None)
            )  # fmt: skip
            raise ResourceError(f'{_rung_name(rung)}: option {key}={value!r} is not valid; give {expected}')
    seconds = options.get('max_wallclock_seconds')
    if seconds is not None and seconds < 1:
        raise ResourceError(f'{_rung_name(rung)}: max_wallclock_seconds={seconds} must be a positive number of seconds')


def resolve_options(
    rung: str,
    code,
    defaults: t.Mapping | None = None,
    options: t.Mapping | None = None,
    threads: int = 1,
) -> dict:
    """The checked ``metadata.options`` of the rung's calculations: the protocol's ``defaults`` under ``options``.

    :param rung: ``dft``, ``md``, ``phase_field`` or ``fem`` (any string works; it only names the rung in errors).
    :param code: the rung's code (or its label); its ``with_mpi`` and computer are checked against.
    :param defaults: the protocol's ``options`` block.  Its ``withmpi`` is a default only: a code that fixes
        ``with_mpi`` wins over it, so one protocol serves serial and MPI builds.
    :param options: what the user asked for (builder ``options=`` or CLI flags); wins over ``defaults``, and its
        ``withmpi`` must agree with the code.
    :param threads: threads per MPI process of the code (MOOSE ``--n-threads``); with more than one, each process is
        given as many cores (``num_cores_per_mpiproc``, Slurm ``--cpus-per-task``) unless the options say so.
    :raises ResourceError: naming the rung, the problem and the fix.
    """
    name = _rung_name(rung)
    code = _load_code(code)
    user = normalise_options(options, rung)
    merged = merge_options(defaults, user)
    _check_ports(rung, merged, code)

    # withmpi: the user's value must agree with the code; the protocol's yields to it.
    code_mpi = getattr(code, 'with_mpi', None)
    label = getattr(code, 'full_label', str(code))
    requested = user.get('withmpi')
    if requested is not None and code_mpi is not None and requested != code_mpi:
        if code_mpi:
            fix = 'pass withmpi=True (--withmpi), or use a serial code'
        else:
            fix = (
                'pass withmpi=False (--no-withmpi), or use an MPI build of the code '
                '(`aiida-multiscale setup --mpi-code ...` creates codes that leave withmpi to each calculation)'
            )
        raise ResourceError(f'{name}: withmpi={requested} but code {label} is set up with with_mpi={code_mpi}; {fix}')
    if code_mpi is not None:
        merged['withmpi'] = code_mpi
    withmpi = bool(merged.get('withmpi', False))

    resources = dict(merged.get('resources') or {})
    threads = int(threads or 1)
    if threads < 1:
        raise ResourceError(f'{name}: threads={threads} must be at least 1')
    if threads > 1:
        cores = resources.get('num_cores_per_mpiproc')
        if cores is None:
            resources['num_cores_per_mpiproc'] = threads
        elif cores < threads:
            raise ResourceError(
                f'{name}: the code runs {threads} threads per MPI process but resources.num_cores_per_mpiproc is '
                f'{cores}, so threads would share cores; set num_cores_per_mpiproc to {threads} or use fewer threads'
            )
    merged['resources'] = resources

    computer = getattr(code, 'computer', None)
    if computer is None:
        return merged
    try:
        parsed = computer.get_scheduler().create_job_resource(**resources)
    except ValueError as exc:
        raise ResourceError(
            f'{name}: resources {resources} are not valid for computer {computer.label} '
            f'({computer.scheduler_type}): {exc}'
        ) from None
    ranks = parsed.get_tot_num_mpiprocs() or 1
    if ranks > 1 and not withmpi:
        if code_mpi is False:
            fix = (
                f'code {label} is serial (with_mpi=False): ask for one machine and one MPI process per machine, '
                'or use an MPI build of the code (`aiida-multiscale setup --mpi-code ...`)'
            )
        else:
            fix = 'pass withmpi=True (--withmpi) if the code is an MPI build, or ask for one MPI process'
        raise ResourceError(
            f'{name}: {ranks} MPI processes requested but withmpi is False, so one process would run on them; {fix}'
        )
    per_machine = getattr(parsed, 'num_mpiprocs_per_machine', None)
    cores_per_rank = max(threads, int(resources.get('num_cores_per_mpiproc') or 1))
    cores_per_machine = resources.get('num_cores_per_machine')
    if per_machine and cores_per_machine is not None and per_machine * cores_per_rank > cores_per_machine:
        raise ResourceError(
            f'{name}: {per_machine} MPI processes x {cores_per_rank} threads need {per_machine * cores_per_rank} cores '
            f'per machine but resources.num_cores_per_machine is {cores_per_machine}; raise it or lower the processes'
        )
    available = computer.get_default_mpiprocs_per_machine()
    if per_machine and available and per_machine * cores_per_rank > available:
        threads_text = f' x {cores_per_rank} threads' if cores_per_rank > 1 else ''
        raise ResourceError(
            f'{name}: {per_machine} MPI processes{threads_text} per machine need {per_machine * cores_per_rank} cores, '
            f'but computer {computer.label} has {available} per machine (its default_mpiprocs_per_machine); '
            f'ask for fewer processes per machine, or more machines'
        )
    return merged


def validate_calcjob_resources(what: str, code, options: t.Mapping | None, threads: int = 1) -> str | None:
    """The checks of :func:`resolve_options` in port-validator form, for calculations built by hand.

    A validator cannot change the inputs, so the options are taken as they are (``withmpi`` included, which a
    CalcJob's spec always fills in): the message says what to change, ``None`` means they are consistent.
    """
    if code is None or not options:
        return None
    try:
        resolve_options(what, code, defaults=options, threads=threads)
    except ResourceError as exc:
        return str(exc)
    return None


def _plain(value):
    # Builder namespaces are Mappings, not dicts: turn them (and nested ones, e.g. resources) into plain dicts, without
    # the empty sub-namespaces (stash, unstash) every builder has.
    if isinstance(value, t.Mapping):
        items = {key: _plain(item) for key, item in value.items()}
        return {key: item for key, item in items.items() if item != {}}
    return copy.deepcopy(value)


def _calcjob_options(namespace) -> dict | None:
    """The first non-empty ``metadata.options`` found depth-first in a builder namespace (None if there is none)."""
    if not isinstance(namespace, t.Mapping):
        return None
    metadata = namespace.get('metadata') if 'metadata' in namespace else None
    if isinstance(metadata, t.Mapping) and 'options' in metadata:
        options = _plain(metadata['options'])
        if options:
            return options
    for key, value in namespace.items():
        if key != 'metadata' and (found := _calcjob_options(value)) is not None:
            return found
    return None


def builder_options(builder) -> dict[str, dict]:
    """The ``metadata.options`` each rung of ``builder`` will submit with, by rung (for ``--dry-run`` and tests).

    Found generically: every rung keeps its calculations' options at ``<engine namespace>.metadata.options``, and the
    rung of a builder is named by its entry point (``multiscale.<rung>``), so this module imports no work chain.
    """
    from aiida.plugins.entry_point import get_entry_point_from_class

    process_class = builder._process_class
    _, entry_point = get_entry_point_from_class(process_class.__module__, process_class.__name__)
    name = entry_point.name.removeprefix('multiscale.') if entry_point is not None else None
    if name in RUNGS:
        return {name: _calcjob_options(builder) or {}}
    if name == 'chain':
        return {rung: _calcjob_options(builder[rung]) or {} for rung in RUNGS}
    raise ValueError(f'no rung options known for {process_class.__name__}')
