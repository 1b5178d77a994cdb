"""Progress while a chain runs: counts from the provenance graph and the engines' files, live and plain displays."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import sys
import time

import pytest

from aiida_multiscale.cli.progress import Line, LiveDisplay, PlainDisplay, ProgressReader, Snapshot, summary_line, watch


def _snapshot(state='running', exit_status=None, elapsed=12.0, **changes) -> Snapshot:
    lines = (
        Line('dft', 'DFT', 'running', '4/10 SCFs', '7 EOS + 3 strained; 2 running', 4, 10, 11.0),
        Line('md', 'MD', 'done', '3/3 stages', '', 3, 3, 9.0),
        Line('phase_field', 'phase field', 'running', '1/4 cycles at most', 'reduced time 0.5', 0.5, 1.0, 3.0),
        Line('fem', 'FEM', 'waiting', '0/1 load step', '', 0, 1, None),
        Line('bridges', 'bridges', 'waiting', '1/4 passed', 'md_to_mesoscale', 1, 4, None),
    )
    return Snapshot(7, 'MultiscaleWorkChain', state, exit_status, None, elapsed, changes.get('lines', lines))


# -- the model and the displays, no database ------------------------------------------------------------------------
def test_line_fraction_only_where_known():
    assert Line('x', 'X', 'running', done=3, total=4).fraction == 0.75
    assert Line('x', 'X', 'running', done=5, total=4).fraction == 1.0
    assert Line('x', 'X', 'running', done=3, total=None).fraction is None  # no fake bar
    assert Line('x', 'X', 'running', count='4/10 SCFs', detail='2 running', elapsed=5).text() == (
        'X: running, 4/10 SCFs (2 running), 5 s'
    )


def test_summary_line():
    assert summary_line(_snapshot()).startswith('MultiscaleWorkChain<7> running, 12 s so far; DFT 4/10 SCFs (11 s)')
    done = summary_line(_snapshot(state='finished', exit_status=0))
    assert done.startswith('MultiscaleWorkChain<7> finished: all done in 12 s;') and 'FEM 0/1 load step' in done
    assert 'failed [305]' in summary_line(_snapshot(state='finished', exit_status=305))


def test_plain_display_one_line_per_change(capsys):
    display = PlainDisplay()
    display.update(_snapshot())
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 5 and first[0] == '[    12 s] DFT: running, 4/10 SCFs (7 EOS + 3 strained; 2 running), 11 s'
    display.update(_snapshot(elapsed=13.0))  # only the time moved: nothing new
    assert capsys.readouterr().out == ''
    changed = list(_snapshot().lines)
    changed[0] = Line('dft', 'DFT', 'running', '5/10 SCFs', '', 5, 10, 12.0)
    display.update(_snapshot(lines=tuple(changed)))
    assert capsys.readouterr().out.splitlines() == ['[    12 s] DFT: running, 5/10 SCFs, 12 s']
    assert '\x1b' not in ''.join(first)


def test_live_render_without_terminal_errors():
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    console.print(LiveDisplay.render(_snapshot()))
    text = console.file.getvalue()
    assert 'SCFs' in text and 'phase field' in text and 'Ctrl-C stops watching' in text


def test_watch_plain_until_terminated_mock_reader(capsys):
    class Reader:
        states = iter(['running', 'running', 'finished'])

        def read(self):
            state = next(self.states)
            return _snapshot(state=state, exit_status=0 if state == 'finished' else None)

    snapshot = watch(7, display=PlainDisplay(), interval=0.01, reader=Reader())
    assert snapshot.finished_ok
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and 'all done' in lines[-1]


# -- the in-place display in a pseudo-terminal ------------------------------------------------------------------------
_FAKE_WATCH = """
import sys
from aiida_multiscale.cli.progress import Line, Snapshot, watch

class Reader:
    count = 0

    def read(self):
        self.count += 1
        lines = (
            Line('dft', 'DFT', 'running', f'{self.count}/10 SCFs', '7 EOS + 3 strained', self.count, 10, 1.0),
            Line('fem', 'FEM', 'waiting', '0/1 load step', '', 0, 1, None),
            Line('other', 'other', 'running', '2 calculations finished', '', 2, None, 1.0),
        )
        return Snapshot(42, 'MultiscaleWorkChain', 'running', None, None, float(self.count), lines)

sys.exit(0 if watch(42, interval=0.2, reader=Reader()) is not None else 130)
"""


def _run_in_pty(argv: list[str], interrupt_after: bytes | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run ``argv`` on a new pseudo-terminal (its controlling terminal); with ``interrupt_after``, type Ctrl-C once
    that text appeared.  Returns the exit status and everything written to the terminal."""
    env = dict(os.environ, TERM='xterm-256color', COLUMNS='140', LINES='40')
    for name in ('NO_COLOR', 'FORCE_COLOR', 'TTY_COMPATIBLE', 'TTY_INTERACTIVE'):
        env.pop(name, None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        # A background job (CI, nohup) inherits SIGINT ignored, and an ignored signal stays ignored across exec: give
        # the child the default disposition a user's terminal has, or Ctrl-C would not reach Python.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(argv[0], argv, env)
    output, interrupted, start = b'', False, time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if interrupt_after is not None and not interrupted and interrupt_after in output:
                os.write(fd, b'\x03')  # Ctrl-C, as typed: the terminal sends SIGINT to the foreground process
                interrupted = True
        else:
            os.kill(pid, 9)
            pytest.fail(f'{argv} did not end in {timeout} s: {output.decode(errors="replace")[-2000:]}')
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors='replace')


def test_live_display_in_a_terminal_and_ctrl_c_fake_chain():
    """In place on a terminal (cursor movement, no new line per update); Ctrl-C stops watching, says how to go on."""
    code, output = _run_in_pty([sys.executable, '-c', _FAKE_WATCH], interrupt_after=b'3/10 SCFs')
    assert code == 130, output
    assert '\x1b[' in output  # escape codes: the display redraws itself
    assert output.count('MultiscaleWorkChain<42>') >= 3  # redrawn in place, once per read
    assert 'Stopped watching MultiscaleWorkChain<42>' in output
    assert 'aiida-multiscale status 42 --watch' in output
    assert 'Traceback' not in output


# -- counts on a provenance graph made by hand (no daemon) ------------------------------------------------------------
def _process(cls, entry_point, label, state='finished', exit_status=0, parent=None, link_label='', **kw):
    from aiida import orm
    from aiida.common.links import LinkType
    from plumpy import ProcessState

    node = cls(**kw)
    group = 'workflows' if issubclass(cls, orm.WorkflowNode) else 'calculations'
    node.process_type = f'aiida.{group}:{entry_point}' if entry_point else None
    node.set_process_label(label)
    node.set_process_state(ProcessState(state))
    if exit_status is not None and state == 'finished':
        node.set_exit_status(exit_status)
    if parent is not None:
        link = LinkType.CALL_WORK if issubclass(cls, orm.WorkflowNode) else LinkType.CALL_CALC
        node.base.links.add_incoming(parent, link_type=link, link_label=link_label)
    return node


def _input(node, label, data):
    from aiida import orm
    from aiida.common.links import LinkType

    link = LinkType.INPUT_WORK if isinstance(node, orm.WorkflowNode) else LinkType.INPUT_CALC
    node.base.links.add_incoming(data.store(), link_type=link, link_label=label)


@pytest.fixture
def running_chain(aiida_profile, aiida_localhost, tmp_path):
    """A chain caught mid-run: DFT 4 of 10 SCFs, MD in its GB scan, the phase field in its second cycle, no FEM."""
    from aiida import orm

    from aiida_multiscale.data.handoff import HandoffData

    calc = orm.CalcJobNode
    work = orm.WorkChainNode
    chain = _process(work, 'multiscale.chain', 'MultiscaleWorkChain', state='waiting').store()

    dft = _process(work, 'multiscale.dft', 'DftWorkChain', state='waiting', parent=chain, link_label='dft')
    _input(dft, 'parameters', orm.Dict({'eos_points': 7, 'strains': [-0.01, 0.0, 0.01]}))
    dft.store()
    for index in range(5):
        done = index < 4
        base = _process(work, None, 'PwBaseWorkChain', 'finished' if done else 'running', parent=dft,
                        link_label=f'eos_p{index}').store()  # fmt: skip
        if index == 0:  # a restart inside the base chain: one failed calculation, then the one that counts
            _process(calc, 'quantumespresso.pw', 'PwCalculation', exit_status=400, parent=base,
                     link_label='iteration_01', computer=aiida_localhost).store()  # fmt: skip
        _process(calc, 'quantumespresso.pw', 'PwCalculation', 'finished' if done else 'running', parent=base,
                 link_label='iteration_02', computer=aiida_localhost).store()  # fmt: skip

    md = _process(work, 'multiscale.md', 'MdWorkChain', state='waiting', parent=chain, link_label='md')
    _input(md, 'parameters', orm.Dict({'mobility': {'compute': False}}))  # the GB energy only: three stages
    md.store()
    _process(calc, 'lammps.raw', 'LammpsRawCalculation', parent=md, link_label='bulk', computer=aiida_localhost).store()
    scan_chain = _process(work, None, 'LammpsBaseWorkChain', 'waiting', parent=md, link_label='gb_scan').store()
    scan = _process(calc, 'lammps.raw', 'LammpsRawCalculation', 'running', parent=scan_chain,
                    link_label='iteration_01', computer=aiida_localhost)  # fmt: skip
    script = ''.join(f'print "config s{i}c0 $(atoms)" append results.dat screen no\n' for i in range(4))
    _input(scan, 'script', orm.SinglefileData(io.BytesIO(script.encode()), filename='input.in'))
    workdir = tmp_path / 'lammps'
    workdir.mkdir()
    (workdir / 'results.dat').write_text('config s0c0 120 -1\nconfig s1c0 120 -1\nconfig s2c0 120 -1\n')
    scan.set_remote_workdir(str(workdir))
    scan.store()

    interface = HandoffData({'anneal_time': {'value': 100.0, 'unit': 'us'}}, producer='assumption')
    # Reduced units: 2 realisations of at most 2 cycles of 0.5 each, so the time runs to at most 1.0.
    phase_field = _process(work, 'multiscale.phase_field', 'PhaseFieldWorkChain', state='waiting', parent=chain,
                           link_label='phase_field')  # fmt: skip
    _input(phase_field, 'interface', interface)
    _input(phase_field, 'parameters', orm.Dict({'max_cycles': 2, 'cycle_time': 0.5, 'realisations': 2}))
    phase_field.store()
    first = _process(calc, 'multiscale.moose', 'MooseCalculation', parent=phase_field, link_label='iteration_01',
                     computer=aiida_localhost).store()  # fmt: skip
    from aiida.common.links import LinkType

    orm.Dict({'time': 0.5}).store().base.links.add_incoming(  # reduced: half the longest run
        first, link_type=LinkType.CREATE, link_label='output_parameters'
    )
    second = _process(calc, 'multiscale.moose', 'MooseCalculation', 'running', parent=phase_field,
                      link_label='iteration_02', computer=aiida_localhost)  # fmt: skip
    workdir = tmp_path / 'moose'
    workdir.mkdir()
    log = 'Time Step 40, time = 0.7, dt = 0.005\n\nTime Step 41, time = 0.75, dt = 0.005\n'
    (workdir / 'moose.log').write_text(log)
    second.set_remote_workdir(str(workdir))
    second.set_option('output_filename', 'moose.log')
    second.store()

    _process(orm.CalcFunctionNode, None, 'md_to_mesoscale', parent=chain, link_label='md_to_mesoscale').store()
    return chain


def test_md_count_includes_the_mobility_runs_mock(aiida_profile, aiida_localhost):
    """With the mobility stage on, the MD line counts LAMMPS runs: the three stages, then per temperature one a(T) run
    and the replicas, and the two check runs (fast protocol: 3 + 3 x (1 + 2) + 2 = 14)."""
    from aiida import orm

    from aiida_multiscale.workflows.md import MdWorkChain

    chain = _process(orm.WorkChainNode, 'multiscale.chain', 'MultiscaleWorkChain', state='waiting').store()
    md = _process(orm.WorkChainNode, 'multiscale.md', 'MdWorkChain', state='waiting', parent=chain, link_label='md')
    parameters = MdWorkChain.get_protocol_inputs('fast')['parameters']
    _input(md, 'parameters', orm.Dict(parameters))
    md.store()
    for label in ('bulk', 'gb_scan', 'gb_size_check', 'lattice_0'):
        _process(orm.CalcJobNode, 'lammps.raw', 'LammpsRawCalculation', parent=md, link_label=label,
                 computer=aiida_localhost).store()  # fmt: skip
    lines = {line.key: line for line in ProgressReader(chain.pk).read().lines}
    mobility = parameters['mobility']
    planned = 3 + len(mobility['homologous_temperatures']) * (1 + mobility['replicas']) + 2
    assert planned == 14
    assert lines['md'].count == f'4/{planned} LAMMPS runs' and lines['md'].total == planned


def test_counts_from_the_graph_and_the_engines_files_mock(running_chain):
    snapshot = ProgressReader(running_chain.pk).read()
    lines = {line.key: line for line in snapshot.lines}
    assert list(lines) == ['dft', 'md', 'phase_field', 'fem', 'bridges']

    dft = lines['dft']
    assert (dft.state, dft.count, dft.done, dft.total) == ('running', '4/10 SCFs', 4, 10)
    assert '7 EOS + 3 strained' in dft.detail and '1 running' in dft.detail

    md = lines['md']  # one stage done; the scan has written 3 of its 4 configurations to results.dat
    assert md.count == '1/3 stages' and md.done == pytest.approx(1.75) and md.total == 3
    assert 'gb_scan: 3/4 configurations' in md.detail

    phase_field = lines['phase_field']  # the running cycle's log is at reduced time 0.75 of at most 1.0
    assert phase_field.count == '1/4 cycles at most' and phase_field.fraction == pytest.approx(0.75)
    assert 'reduced time 0.75 of at most 1 (d0^2/(M sigma))' in phase_field.detail
    assert '2 realisations side by side' in phase_field.detail

    fem = lines['fem']
    assert (fem.state, fem.count, fem.total) == ('waiting', '0/1 load step', 1)
    bridges = lines['bridges']
    assert (bridges.state, bridges.count, bridges.detail) == ('waiting', '1/4 passed', 'md_to_mesoscale')
    assert not snapshot.terminated and snapshot.label == 'MultiscaleWorkChain'


def test_one_rung_and_other_processes_mock(running_chain):
    """``launch dft --wait`` watches the rung alone; any other process gets its finished calculations counted."""
    from aiida import orm

    dft = next(node for node in running_chain.called if node.process_label == 'DftWorkChain')
    (line,) = ProgressReader(dft.pk).read().lines
    assert line.key == 'dft' and line.count == '4/10 SCFs'
    base = dft.base.links.get_outgoing(node_class=orm.WorkChainNode, link_label_filter='eos_p0').one().node
    (line,) = ProgressReader(base.pk).read().lines
    assert line.total is None and line.count == '1 calculation finished'


def test_inputs_of_another_shape_give_counts_without_a_total_mock(aiida_profile):
    """A rung whose inputs cannot be read as planned work still shows what finished, without a bar."""
    from aiida import orm

    dft = _process(orm.WorkChainNode, 'multiscale.dft', 'DftWorkChain', state='waiting')
    _input(dft, 'parameters', orm.Dict({'eos_points': 'seven'}))
    dft.store()
    (line,) = ProgressReader(dft.pk).read().lines
    assert (line.count, line.total, line.fraction) == ('0 SCFs finished', None, None)


# -- the real chain: plain lines and the live display ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.real_code
def test_watch_finished_chain_plain_and_json(fast_chain):
    """Not on a terminal: plain lines, every count complete, the last line says all done; --json stays one object."""
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    snapshot = ProgressReader(fast_chain.pk).read()
    assert snapshot.finished_ok
    for line in snapshot.lines:
        assert line.state == 'done', line
        assert line.fraction == pytest.approx(1.0, rel=1e-6), line
    counts = {line.key: line.count for line in snapshot.lines}
    # fast: 7 EOS + 3 strained + the same 3 strained cells on a coarser k-mesh (the k-point error)
    assert counts['dft'] == '13/13 SCFs' and counts['md'] == '3/3 stages' and counts['bridges'] == '4/4 passed'
    assert counts['fem'] == '1/1 load step'

    result = CliRunner().invoke(cli, ['status', str(fast_chain.pk), '--watch'])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert '\x1b' not in result.output
    assert lines[-1].startswith(f'MultiscaleWorkChain<{fast_chain.pk}> finished: all done in ')
    assert len(lines) == 6 and all(' done, ' in line for line in lines[:-1])

    result = CliRunner().invoke(cli, ['status', str(fast_chain.pk), '--watch', '--json'])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output.strip().splitlines()[-1])
    assert len(result.output.strip().splitlines()) == 1 and rows[-1]['rung'] == 'chain'


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.real_code
def test_watch_finished_chain_in_a_terminal(fast_chain, aiida_profile):
    """``aiida-multiscale status PK --watch`` on a pseudo-terminal renders the live display without error."""
    command = os.path.join(os.path.dirname(sys.executable), 'aiida-multiscale')
    code, output = _run_in_pty([command, '-p', aiida_profile.name, 'status', str(fast_chain.pk), '--watch'])
    assert code == 0, output
    assert '\x1b[' in output and 'Traceback' not in output
    assert 'SCFs' in output and 'load step' in output and 'all done' in output
