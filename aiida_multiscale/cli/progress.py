"""Progress of a chain or a rung while it runs: counts from the provenance graph and the engines' own outputs.

Every number shown is read, never guessed from a timer:

* what is *done* comes from the provenance graph: the calculation jobs below a rung (followed along CALL links only,
  so that it works whatever restart or loop work chains a rung puts between itself and its calculations) that
  finished OK, per engine (``quantumespresso.pw``, ``lammps.raw``, ``multiscale.moose``), and the bridge
  calcfunctions the chain called;
* what is *planned* comes from the rung's inputs (its ``parameters`` merged over the YAML protocol's defaults, which is
  what the rung itself runs with) and grows with what the graph shows was submitted beyond that (a re-centred
  equation of state, a k-mesh refinement);
* the progress *inside* a running calculation comes from the files the engine is writing (the MOOSE log's time steps,
  the lines of LAMMPS' ``results.dat``), read only where that is cheap: on a computer with the local transport.  On
  any other computer the line says that it shows the finished calculations only.

Where a fraction cannot be known the line shows a state and a count, without a bar.  The display updates one line
per rung in place on a terminal (rich's live display) and falls back to one plain line per change elsewhere.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import sys
import time
import typing as t

import click

__all__ = (
    'WATCH_INTERVAL',
    'Line',
    'LiveDisplay',
    'PlainDisplay',
    'ProgressReader',
    'Snapshot',
    'make_display',
    'summary_line',
    'watch',
)

#: Seconds between two reads of the database while watching: a handful of small queries, no load on the chain.
WATCH_INTERVAL = 1.0
#: How to watch a process again after Ctrl-C.
WATCH_AGAIN = 'aiida-multiscale status {pk} --watch'

#: Entry points of the engines' calculation jobs, by rung.
_PW = 'quantumespresso.pw'
_LAMMPS = ('lammps.raw', 'lammps.base')
_MOOSE = 'multiscale.moose'
#: The LAMMPS runs of ``MdWorkChain``'s outline, in order.
MD_STAGES = ('bulk', 'gb_scan', 'gb_size_check')
#: Bytes read from the end of a file an engine is writing (its last lines are all that is needed).
_TAIL_BYTES = 65536

_ACTIVE = ('created', 'waiting', 'running')
_TITLES = {'dft': 'DFT', 'md': 'MD', 'phase_field': 'phase field', 'fem': 'FEM', 'bridges': 'bridges'}
_LAMMPS_UNIT = re.compile(r'^\s*print\s+"(config|strain)\s', re.MULTILINE)


# -- the model ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Line:
    """How far one rung (or the bridges) has got.

    ``done`` / ``total`` give the bar; ``total`` is None where the fraction cannot be known (no bar then).  ``count``
    is the headline (``4/10 SCFs``), ``detail`` what else is known (the running stage, the simulated time).
    """

    key: str
    title: str
    state: str
    count: str = ''
    detail: str = ''
    done: float = 0.0
    total: float | None = None
    elapsed: float | None = None

    @property
    def fraction(self) -> float | None:
        if self.total is None or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def text(self) -> str:
        """One plain line: ``DFT: running, 4/10 SCFs (7 EOS + 3 strained; 2 running), 35 s``."""
        parts = [f'{self.title}: {self.state}']
        if self.count:
            parts.append(f', {self.count}')
        if self.detail:
            parts.append(f' ({self.detail})')
        if self.elapsed is not None:
            parts.append(f', {self.elapsed:.0f} s')
        return ''.join(parts)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The watched process and one :class:`Line` per rung, read at one moment."""

    pk: int
    label: str
    state: str
    exit_status: int | None
    exit_message: str | None
    elapsed: float
    lines: tuple[Line, ...]

    @property
    def terminated(self) -> bool:
        return self.state in ('finished', 'excepted', 'killed')

    @property
    def finished_ok(self) -> bool:
        return self.state == 'finished' and self.exit_status == 0

    @property
    def status(self) -> str:
        """``all done``, ``running`` (AiiDA's created, waiting on its children or running), or the final state."""
        if self.finished_ok:
            return 'all done'
        return self.state if self.terminated else 'running'


def summary_line(snapshot: Snapshot) -> str:
    """The last line: ``MultiscaleWorkChain<12> finished: all done in 95 s; DFT 10/10 SCFs (40 s); ...``."""
    head = f'{snapshot.label}<{snapshot.pk}>'
    if snapshot.finished_ok:
        head += f' finished: all done in {snapshot.elapsed:.0f} s'
    elif snapshot.state == 'finished':
        head += f' failed [{snapshot.exit_status}] after {snapshot.elapsed:.0f} s: {snapshot.exit_message or ""}'
        head = head.rstrip(': ')
    elif snapshot.terminated:
        head += f' {snapshot.state} after {snapshot.elapsed:.0f} s'
    else:
        head += f' {snapshot.status}, {snapshot.elapsed:.0f} s so far'
    parts = [head]
    for line in snapshot.lines:
        text = f'{line.title} {line.count or line.state}'
        if line.elapsed is not None:
            text += f' ({line.elapsed:.0f} s)'
        parts.append(text)
    return '; '.join(parts)


# -- the provenance graph ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Process:
    pk: int
    parent: int | None
    link_label: str
    node_type: str
    process_type: str
    process_label: str
    state: str
    exit_status: int | None
    ctime: datetime.datetime
    mtime: datetime.datetime
    computer: int | None
    remote_workdir: str | None
    output_filename: str | None

    @property
    def entry_point(self) -> str:
        return (self.process_type or '').rpartition(':')[2]

    @property
    def is_workflow(self) -> bool:
        return self.node_type.startswith('process.workflow.')

    @property
    def is_calcjob(self) -> bool:
        return self.node_type.startswith('process.calculation.calcjob.')

    @property
    def active(self) -> bool:
        return self.state in _ACTIVE

    @property
    def terminated(self) -> bool:
        return not self.active

    @property
    def finished_ok(self) -> bool:
        return self.state == 'finished' and self.exit_status == 0

    def elapsed(self, now: datetime.datetime) -> float:
        """Seconds from creation to the last modification (to now while it runs)."""
        return ((now if self.active else self.mtime) - self.ctime).total_seconds()


_PROJECT = (
    'id',
    'node_type',
    'process_type',
    'attributes.process_label',
    'attributes.process_state',
    'attributes.exit_status',
    'ctime',
    'mtime',
    'dbcomputer_id',
    'attributes.remote_workdir',
    'attributes.output_filename',
)


def _process(row: dict, parent: int | None = None, link_label: str = '') -> _Process:
    return _Process(
        pk=row['id'],
        parent=parent,
        link_label=link_label,
        node_type=row['node_type'] or '',
        process_type=row['process_type'] or '',
        process_label=row['attributes.process_label'] or '',
        # A process the daemon has not picked up yet has no state attribute: it is waiting to start.
        state=row['attributes.process_state'] or 'created',
        exit_status=row['attributes.exit_status'],
        ctime=row['ctime'],
        mtime=row['mtime'],
        computer=row['dbcomputer_id'],
        remote_workdir=row['attributes.remote_workdir'],
        output_filename=row['attributes.output_filename'],
    )


class _Tree:
    """Every process called below a root, directly or through sub-workflows (CALL links only: a query over all
    descendants would also reach, through a rung's returned data, the calculations of the next rungs)."""

    def __init__(self, root_pk: int):
        from aiida import orm
        from aiida.common.links import LinkType

        query = orm.QueryBuilder().append(orm.ProcessNode, filters={'id': root_pk}, project=list(_PROJECT), tag='p')
        self.root = _process(query.dict()[0]['p'])
        self.nodes: dict[int, _Process] = {}
        self.children: dict[int, list[int]] = {}
        frontier = [root_pk]
        call = [LinkType.CALL_CALC.value, LinkType.CALL_WORK.value]
        while frontier:  # one query per level of the call tree (chain -> rung -> restart chain -> calculation)
            query = orm.QueryBuilder()
            query.append(orm.ProcessNode, filters={'id': {'in': frontier}}, project=['id'], tag='parent')
            query.append(
                orm.ProcessNode,
                with_incoming='parent',
                edge_filters={'type': {'in': call}},
                edge_project=['label'],
                edge_tag='link',
                project=list(_PROJECT),
                tag='child',
            )
            frontier = []
            for row in query.dict():
                process = _process(row['child'], row['parent']['id'], row['link']['label'])
                self.nodes[process.pk] = process
                self.children.setdefault(process.parent, []).append(process.pk)
                if process.is_workflow:
                    frontier.append(process.pk)

    def called(self, pk: int) -> list[_Process]:
        """The processes ``pk`` called directly, oldest first."""
        return sorted((self.nodes[c] for c in self.children.get(pk, ())), key=lambda p: (p.ctime, p.pk))

    def below(self, pk: int) -> list[_Process]:
        """Every process below ``pk``, oldest first."""
        found, stack = [], [pk]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                found.append(self.nodes[child])
                stack.append(child)
        return sorted(found, key=lambda p: (p.ctime, p.pk))

    def calculations(self, pk: int, entry_points: str | tuple[str, ...]) -> list[_Process]:
        """The calculation jobs of the given engine(s) below ``pk``, oldest first."""
        wanted = (entry_points,) if isinstance(entry_points, str) else entry_points
        return [p for p in self.below(pk) if p.is_calcjob and p.entry_point in wanted]

    def slots(self, pk: int) -> list[_Process]:
        """The units of work ``pk`` submitted: its calculation jobs and sub-workflows (a restart chain counts once,
        however often it restarted), not its calcfunctions."""
        return [p for p in self.called(pk) if p.is_calcjob or p.is_workflow]


def _state(process: _Process | None, root_terminated: bool) -> str:
    if process is None:
        return 'not run' if root_terminated else 'waiting'
    if process.active:
        return 'running'
    if process.finished_ok:
        return 'done'
    if process.state == 'finished':
        return f'failed [{process.exit_status}]'
    return process.state  # killed, excepted


def _plural(count: int, word: str) -> str:
    return f'{word}' if count == 1 else f'{word}s'


# -- the engines' files, where cheap ----------------------------------------------------------------------------------
def _tail(path: str, size: int | None = _TAIL_BYTES) -> str | None:
    try:
        with open(path, 'rb') as handle:
            if size is not None:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - size))
            return handle.read().decode('utf-8', errors='replace')
    except OSError:
        return None


class ProgressReader:
    """Reads a :class:`Snapshot` of a ``MultiscaleWorkChain``, one rung work chain or any other process.

    Keeps what cannot change between two reads (the rungs' planned work, the transports of the computers, the number
    of configurations in a LAMMPS script), so a read is a few small queries plus, for running calculations on a local
    computer, the tail of one or two files.
    """

    def __init__(self, pk: int):
        self.pk = pk
        self._plans: dict[str, dict] = {}
        self._local: dict[int, bool] = {}
        self._script_units: dict[int, tuple[int, str] | None] = {}

    # -- entry point
    def read(self) -> Snapshot:
        from aiida_multiscale.resources import RUNGS

        tree = _Tree(self.pk)
        root = tree.root
        now = datetime.datetime.now(datetime.UTC)
        rung = _rung_of(root)
        if root.entry_point == 'multiscale.chain':
            called = {p.link_label: p for p in tree.called(root.pk)}
            lines = [self._line(name, called.get(name), tree, now, root) for name in RUNGS]
            lines.append(self._bridges(tree, root))
        elif rung is not None:
            lines = [self._line(rung, root, tree, now, root)]
        else:
            lines = [self._generic(root, tree, now)]
        exit_message = None
        if root.terminated:
            from aiida import orm

            exit_message = orm.load_node(root.pk).exit_message
        return Snapshot(
            pk=root.pk,
            label=root.process_label or 'process',
            state=root.state,
            exit_status=root.exit_status,
            exit_message=exit_message,
            elapsed=root.elapsed(now),
            lines=tuple(lines),
        )

    def _line(self, rung: str, process: _Process | None, tree: _Tree, now, root: _Process) -> Line:
        plan = self._plan(rung, process, root)
        state = _state(process, root.terminated)
        elapsed = None if process is None else process.elapsed(now)
        base = {'key': rung, 'title': _TITLES.get(rung, rung), 'state': state, 'elapsed': elapsed}
        counter = {'dft': self._dft, 'md': self._md, 'phase_field': self._phase_field, 'fem': self._fem}[rung]
        return Line(**base, **counter(process, tree, plan))

    # -- planned work from the inputs, once per rung
    def _plan(self, rung: str, process: _Process | None, root: _Process) -> dict:
        key = f'{rung}:{process.pk if process is not None else "chain"}'
        if key not in self._plans:
            try:
                self._plans[key] = _plan_from_inputs(rung, process, root)
            except (KeyError, TypeError, ValueError, OSError):  # inputs of another shape: show the counts, no total
                self._plans[key] = {}
        return self._plans[key]

    # -- per rung
    def _dft(self, process: _Process | None, tree: _Tree, plan: dict) -> dict:
        eos, strains = plan.get('eos_points'), plan.get('strains')
        planned = None if eos is None or strains is None else eos + strains
        detail = [] if planned is None else [f'{eos} EOS + {strains} strained']
        if planned is not None and not plan.get('kpoints_convergence') and plan.get('kpoints_error_estimate'):
            # Without the loop the strained cells also run once on a coarser mesh: their change is the k-point error.
            planned += strains
            detail[0] += f' + {strains} on a coarser k-mesh'
        if process is None:
            calcs, slots = [], []
        else:
            calcs, slots = tree.calculations(process.pk, _PW), tree.slots(process.pk)
        if planned is not None and len(slots) > planned:
            detail.append(f'{len(slots) - planned} more submitted (EOS re-centred or k-mesh refined)')
            planned = len(slots)
        if plan.get('kpoints_convergence'):
            # Each refinement reruns the strained SCFs on a denser mesh; whether one is needed is known only after.
            detail.append(f'k-mesh refinement may add up to {plan["kpoints_max_refinements"]} x {strains} more')
        done = sum(1 for c in calcs if c.finished_ok)
        running = sum(1 for c in calcs if c.active)
        if running:
            detail.append(f'{running} running')
        count = f'{done} SCFs finished' if planned is None else f'{done}/{planned} SCFs'
        return {'count': count, 'detail': '; '.join(detail), 'done': done, 'total': planned}

    def _md(self, process: _Process | None, tree: _Tree, plan: dict) -> dict:
        # The stages are fixed by the rung's outline; a stage run again after a walltime kill is still one stage.  The
        # mobility stage adds its a(T) and driven runs, each counted as one.
        mobility_runs = plan.get('mobility_runs', 0)
        planned = len(MD_STAGES) + mobility_runs
        calcs = [] if process is None else tree.calculations(process.pk, _LAMMPS)
        done = sum(1 for c in calcs if c.finished_ok)
        detail = []
        fraction = 0.0
        for calc in calcs:
            if not calc.active:
                continue
            stage = _slot_label(tree, process, calc)
            units = self._lammps_units(calc)
            if units is None:
                detail.append(f'{stage} running')
                continue
            finished, total, noun = units
            detail.append(f'{stage}: {finished}/{total} {_plural(total, noun)}')
            fraction += finished / total if total else 0.0
        if any(c.active for c in calcs) and not self._all_local(c for c in calcs if c.active):
            detail.append('finished stages only: the running one is on a remote computer')
        return {
            'count': f'{done}/{planned} ' + ('LAMMPS runs' if mobility_runs else 'stages'),
            'detail': '; '.join(detail),
            'done': min(done + fraction, planned),
            'total': planned,
        }

    def _phase_field(self, process: _Process | None, tree: _Tree, plan: dict) -> dict:
        """Cycles finished of at most ``realisations x max_cycles``, and the reduced time reached (MOOSE runs in
        reduced units: d0^2/(M sigma)).  A realisation stops earlier once fewer than ``min_grains`` grains are left,
        so the count is an upper bound of the work, said so."""
        realisations, cycles = plan.get('realisations') or 1, plan.get('max_cycles')
        cycle_time = plan.get('cycle_time')
        calcs = [] if process is None else tree.calculations(process.pk, _MOOSE)
        done = sum(1 for c in calcs if c.finished_ok)
        reached = max(_moose_times(c.pk for c in calcs if c.terminated), default=0.0)
        for calc in calcs:
            if calc.active and (live := self._moose_time(calc)) is not None:
                reached = max(reached, live)
        active = [c for c in calcs if c.active]
        target = cycles * cycle_time if cycles and cycle_time else None
        detail = []
        if target:
            detail.append(f'reduced time {reached:.3g} of at most {target:.3g} (d0^2/(M sigma))')
        elif reached:
            detail.append(f'reduced time {reached:.3g} (d0^2/(M sigma))')
        if realisations > 1:
            detail.append(f'{realisations} realisations side by side')
        if active and not self._all_local(active):
            detail.append('from the finished cycles only: the running one is on a remote computer')
        if cycles is None:
            count = f'{done} {_plural(done, "cycle")} finished'
            return {'count': count, 'detail': '; '.join(detail), 'done': done, 'total': None}
        total = realisations * cycles
        count = f'{min(done, total)}/{total} {_plural(total, "cycle")} at most'
        if target:
            return {'count': count, 'detail': '; '.join(detail), 'done': reached, 'total': target}
        return {'count': count, 'detail': '; '.join(detail), 'done': done, 'total': total}

    def _fem(self, process: _Process | None, tree: _Tree, plan: dict) -> dict:
        planned = plan.get('load_steps', 1)
        calcs = [] if process is None else tree.calculations(process.pk, _MOOSE)
        done = min(planned, sum(1 for c in calcs if c.finished_ok))
        detail = 'one static solve at the applied strain'
        return {'count': f'{done}/{planned} load {_plural(planned, "step")}', 'detail': detail, 'done': done,
                'total': planned}  # fmt: skip

    def _bridges(self, tree: _Tree, root: _Process) -> Line:
        from aiida_multiscale.bridges import BRIDGES

        names = [name for name, _, _ in BRIDGES]
        called = {p.link_label: p for p in tree.called(root.pk) if p.link_label in names}
        passed = [name for name in names if name in called and called[name].finished_ok]
        failed = [name for name in names if name in called and called[name].terminated and not called[name].finished_ok]
        if failed:
            state = f'failed [{called[failed[0]].exit_status}]'
        elif len(passed) == len(names):
            state = 'done'
        else:
            state = 'not run' if root.terminated else 'waiting'
        detail = f'failed: {", ".join(failed)}' if failed else ', '.join(passed)
        return Line(
            key='bridges', title=_TITLES['bridges'], state=state, count=f'{len(passed)}/{len(names)} passed',
            detail=detail, done=len(passed), total=len(names),
        )  # fmt: skip

    def _generic(self, root: _Process, tree: _Tree, now) -> Line:
        """Any other process: its calculation jobs finished so far (how many it will run is not known)."""
        calcs = [p for p in tree.below(root.pk) if p.is_calcjob]
        done = sum(1 for c in calcs if c.finished_ok)
        running = sum(1 for c in calcs if c.active)
        return Line(
            key='process', title=root.process_label or 'process', state=_state(root, False),
            count=f'{done} {_plural(done, "calculation")} finished', detail=f'{running} running' if running else '',
            done=done, total=None, elapsed=root.elapsed(now),
        )  # fmt: skip

    # -- files of running calculations
    def _all_local(self, calcs: t.Iterable[_Process]) -> bool:
        return all(self._is_local(c) for c in calcs)

    def _is_local(self, calc: _Process) -> bool:
        """True if the calculation's computer uses the local transport: its working directory is a local folder."""
        if calc.computer is None:
            return False
        if calc.computer not in self._local:
            from aiida import orm

            self._local[calc.computer] = orm.Computer.collection.get(pk=calc.computer).transport_type == 'core.local'
        return self._local[calc.computer]

    def _remote_tail(self, calc: _Process, filename: str, size: int | None = _TAIL_BYTES) -> str | None:
        """The end of a file in the working directory of a running calculation (all of it with ``size=None``), read
        only on a computer with the local transport; None elsewhere or if the file is not there yet."""
        if not calc.remote_workdir or not self._is_local(calc):
            return None
        return _tail(os.path.join(calc.remote_workdir, filename), size)

    def _moose_time(self, calc: _Process) -> float | None:
        """The time MOOSE's log of a running calculation has reached (in the model's unit), or None."""
        from aiida_multiscale.parsers.moose import parse_log

        text = self._remote_tail(calc, calc.output_filename or 'moose.log')
        if not text:
            return None
        last = parse_log(text)['last_time']
        try:
            return float(last) if last is not None else None
        except ValueError:
            return None

    def _lammps_units(self, calc: _Process) -> tuple[int, int, str] | None:
        """(results written to ``results.dat``, results the script will write, what they are) of a running LAMMPS job:
        one line per configuration (GB scan, size check) or per strained cell (bulk)."""
        from aiida_multiscale.engines.lammps.inputs import RESULTS_FILENAME

        if calc.pk not in self._script_units:
            self._script_units[calc.pk] = _lammps_script_units(calc.pk)
        if self._script_units[calc.pk] is None:
            return None
        total, noun = self._script_units[calc.pk]
        text = self._remote_tail(calc, RESULTS_FILENAME, size=None)
        if text is None:
            if not self._is_local(calc):
                return None
            text = ''
        finished = sum(1 for line in text.splitlines() if line.startswith(('config ', 'strain ')))
        return min(finished, total), total, noun


def _lammps_script_units(pk: int) -> tuple[int, str] | None:
    """How many configurations (GB scan) or strained cells (bulk) a LAMMPS script prints to ``results.dat``."""
    from aiida import orm

    node = orm.load_node(pk)
    script = node.inputs.script if 'script' in node.inputs else None
    if script is None:
        return None
    kinds = _LAMMPS_UNIT.findall(script.get_content())
    if not kinds:
        return None
    return len(kinds), 'configuration' if 'config' in kinds else 'strained cell'


def _moose_times(pks: t.Iterable[int]) -> list[float]:
    """The last time of every MooseCalculation among ``pks`` that has ``output_parameters`` (finished or killed)."""
    from aiida import orm

    pks = list(pks)
    if not pks:
        return []
    query = orm.QueryBuilder()
    query.append(orm.CalcJobNode, filters={'id': {'in': pks}}, tag='calc')
    query.append(
        orm.Dict, with_incoming='calc', edge_filters={'label': 'output_parameters'}, project=['attributes.time']
    )
    return [float(time) for (time,) in query.all() if time is not None]


def _slot_label(tree: _Tree, rung: _Process | None, calc: _Process) -> str:
    """The call link label under the rung of the unit of work ``calc`` belongs to (``gb_scan`` ...)."""
    process = calc
    while rung is not None and process.parent not in (rung.pk, None) and process.parent in tree.nodes:
        process = tree.nodes[process.parent]
    return process.link_label or calc.process_label


def _rung_of(process: _Process) -> str | None:
    """``dft``, ``md``, ``phase_field`` or ``fem`` for a rung work chain, else None."""
    from aiida_multiscale.resources import RUNGS

    name = process.entry_point.removeprefix('multiscale.')
    return name if process.entry_point.startswith('multiscale.') and name in RUNGS else None


def _plan_from_inputs(rung: str, process: _Process | None, root: _Process) -> dict:
    """What the rung will run, from its inputs (or the chain's inputs for it, before it starts) over the protocol's
    defaults, the values the rung itself runs with."""
    from aiida_multiscale.workflows.protocols.utils import load_protocol_file, recursive_merge

    if process is not None:
        inputs = _input_nodes(process.pk, '')
    else:
        inputs = _input_nodes(root.pk, f'{rung}__')
    defaults = load_protocol_file(rung)['default_inputs'].get('parameters', {})
    parameters = recursive_merge(defaults, inputs['parameters'].get_dict() if 'parameters' in inputs else {})
    if rung == 'dft':
        return {
            'eos_points': int(parameters['eos_points']) if 'eos_points' in parameters else None,
            'strains': len(parameters['strains']) if 'strains' in parameters else None,
            'kpoints_convergence': bool(parameters.get('kpoints_convergence')),
            'kpoints_error_estimate': bool(parameters.get('kpoints_error_estimate')),
            'kpoints_max_refinements': int(parameters.get('kpoints_max_refinements') or 0),
        }
    if rung == 'phase_field':
        return {
            'realisations': int(parameters.get('realisations') or 1),
            'max_cycles': int(parameters['max_cycles']) if 'max_cycles' in parameters else None,
            'cycle_time': float(parameters['cycle_time']) if 'cycle_time' in parameters else None,
        }
    if rung == 'fem':
        return {'load_steps': 1}  # FemWorkChain solves one Steady problem at the applied strain
    if rung == 'md':
        mobility = parameters.get('mobility') or {}
        if not mobility.get('compute'):
            return {'mobility_runs': 0}
        temperatures = len(mobility['homologous_temperatures'])
        # One a(T) run and `replicas` driven runs per temperature, and the u0/2 and -u0 runs of the checks.
        runs = temperatures * (1 + int(mobility['replicas'])) + (2 if mobility.get('linearity_check') else 0)
        return {'mobility_runs': runs}
    return {}


def _input_nodes(pk: int, prefix: str) -> dict:
    """``{label: node}`` of the INPUT_WORK links of ``pk`` whose label starts with ``prefix`` (prefix removed)."""
    from aiida import orm
    from aiida.common.links import LinkType

    links = orm.load_node(pk).base.links.get_incoming(link_type=LinkType.INPUT_WORK).all()
    return {
        link.link_label[len(prefix) :]: link.node
        for link in links
        if link.link_label.startswith(prefix) and '__' not in link.link_label[len(prefix) :]
    }


# -- the displays -----------------------------------------------------------------------------------------------------
class PlainDisplay:
    """One plain line per change of a rung's state or count (CI, a pipe, a log file): no escape codes."""

    def __init__(self, err: bool = False):
        self.err = err
        self._last: dict[str, tuple[str, str]] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, snapshot: Snapshot) -> None:
        for line in snapshot.lines:
            key = (line.state, line.count)
            if self._last.get(line.key) != key:
                self._last[line.key] = key
                click.echo(f'[{snapshot.elapsed:6.0f} s] {line.text()}', err=self.err)

    def echo(self, text: str) -> None:
        click.echo(text, err=self.err)


class QuietDisplay(PlainDisplay):
    """Shows nothing while it runs (``--json`` output that is not on a terminal: the JSON line stays alone)."""

    def update(self, snapshot: Snapshot) -> None:
        return None

    def echo(self, text: str) -> None:
        return None


class LiveDisplay:
    """One line per rung, updated in place (rich's live display): bar, count, what is known, elapsed time."""

    BAR_WIDTH = 28

    def __init__(self, console):
        from rich.live import Live

        self.console = console
        self.live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False,
                         redirect_stderr=False)  # fmt: skip

    def __enter__(self):
        self.live.start()
        return self

    def __exit__(self, *exc):
        self.live.stop()
        return False

    def update(self, snapshot: Snapshot) -> None:
        self.live.update(self.render(snapshot), refresh=True)

    def echo(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    @classmethod
    def render(cls, snapshot: Snapshot):
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=False, pad_edge=False, expand=False)
        for name in ('rung', 'state', 'bar', 'count', 'detail', 'elapsed'):
            table.add_column(name, no_wrap=name != 'detail', justify='right' if name == 'elapsed' else 'left')
        for line in snapshot.lines:
            fraction = line.fraction
            if fraction is None:
                bar = Text('')
            else:
                style = 'red' if line.state.startswith(('failed', 'killed', 'excepted')) else 'cyan'
                bar = ProgressBar(total=1.0, completed=fraction, width=cls.BAR_WIDTH, complete_style=style)
            elapsed = '' if line.elapsed is None else f'{line.elapsed:.0f} s'
            table.add_row(Text(line.title, style='bold'), _state_text(line.state), bar, line.count,
                          Text(line.detail, style='dim'), elapsed)  # fmt: skip
        table.title = f'{snapshot.label}<{snapshot.pk}> {snapshot.status}, {snapshot.elapsed:.0f} s'
        table.title_justify = 'left'
        if not snapshot.terminated:
            table.caption = 'Ctrl-C stops watching; the processes go on in the daemon.'
            table.caption_justify = 'left'
        return table


def _state_text(state: str):
    from rich.text import Text

    if state == 'done':
        return Text(state, style='green')
    if state == 'running':
        return Text(state, style='cyan')
    if state.startswith(('failed', 'killed', 'excepted')):
        return Text(state, style='red')
    return Text(state, style='dim')


def make_display(err: bool = False, plain: bool = True):
    """The live display when the stream (stdout, or stderr with ``err``) is a terminal, else plain lines, or nothing
    at all when ``plain`` is False (``--json``: the JSON object stays the only output)."""
    from rich.console import Console

    console = Console(file=sys.stderr if err else sys.stdout, highlight=False)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveDisplay(console)
    return PlainDisplay(err=err) if plain else QuietDisplay(err=err)


def watch(
    pk: int,
    display=None,
    interval: float = WATCH_INTERVAL,
    timeout: float | None = None,
    err: bool = False,
    plain: bool = True,
    reader=None,
) -> Snapshot | None:
    """Show the progress of process ``pk`` until it terminates (or ``timeout`` s pass); return the last snapshot.

    Ctrl-C stops watching only: nothing is sent to the processes, which go on in the daemon; the message says how to
    watch again, and None is returned.  ``reader`` (anything with a ``read()`` giving a :class:`Snapshot`) replaces the
    database, for tests.
    """
    display = display if display is not None else make_display(err=err, plain=plain)
    reader = reader if reader is not None else ProgressReader(pk)
    start = time.monotonic()
    snapshot = None
    try:
        with display:
            while True:
                snapshot = reader.read()
                display.update(snapshot)
                if snapshot.terminated or (timeout is not None and time.monotonic() - start > timeout):
                    break
                time.sleep(interval)
    except KeyboardInterrupt:
        label = f'{snapshot.label}<{pk}>' if snapshot is not None else f'process <{pk}>'
        click.echo(
            f'\nStopped watching {label}; it goes on in the daemon (nothing was stopped). '
            f'Watch it again with: {WATCH_AGAIN.format(pk=pk)}',
            err=True,
        )
        return None
    display.echo(summary_line(snapshot))
    return snapshot
