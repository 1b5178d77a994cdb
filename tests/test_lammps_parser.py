"""Tests of ``multiscale.lammps.raw`` on LAMMPS outputs: complete, killed inside a run, killed between runs.

``cut_short_md/lammps.out`` was recorded from the real ``lmp`` killed with SIGKILL 3 s into an NVE run
(``cut_short_md/input.in``); the other incomplete outputs are cut from the complete ``bulk_al_mm`` output, at the
places a kill can leave them (between two minimisations, in the middle of a thermo row).
"""

from __future__ import annotations

import pathlib

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.plugins import ParserFactory
from aiida_lammps.parsers.raw import LammpsRawParser as StockParser

from aiida_multiscale.parsers.lammps import ERROR_OUTPUT_INCOMPLETE, LammpsRawParser, is_cut_short

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'lammps'
COMPLETE = (FIXTURES / 'bulk_al_mm' / 'lammps.out').read_text()
KILLED_IN_RUN = (FIXTURES / 'cut_short_md' / 'lammps.out').read_text()
#: Cut after the first minimisation's statistics, before the next command's output.
KILLED_BETWEEN_RUNS = COMPLETE[: COMPLETE.index('Setting up cg style minimization', COMPLETE.index('Loop time'))]
#: Cut in the middle of the second thermo row of the first minimisation.
KILLED_MID_ROW = COMPLETE[: COMPLETE.index('\n', COMPLETE.index('   Step ')) + 1]
KILLED_MID_ROW += COMPLETE[len(KILLED_MID_ROW) :].splitlines(keepends=True)[0] + '         1   -3.'

OUT_OF_WALLTIME, OUT_OF_MEMORY = 120, 110


@pytest.fixture
def parse_fake_job(aiida_localhost):
    """Parse a ``lammps.out`` text with ``parser`` as if retrieved by a ``lammps.raw`` job (fake: a stored
    ``CalcJobNode`` that never ran, the text as its retrieved output); ``scheduler_exit`` is the status aiida-core's
    scheduler parser set on the node before the output parser ran."""

    def _parse(text: str | None, parser=LammpsRawParser, scheduler_exit: int | None = None):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:lammps.raw')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.store()
        retrieved = orm.FolderData()
        if text is not None:
            retrieved.base.repository.put_object_from_bytes(text.encode(), 'lammps.out')
        retrieved.base.repository.put_object_from_bytes(b'', '_scheduler-stderr.txt')
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        if scheduler_exit is not None:
            node.set_exit_status(scheduler_exit)
            node.set_exit_message(f'scheduler exit {scheduler_exit}')
        results, calcfunction = parser.parse_from_node(node, store_provenance=False)
        return results, calcfunction.exit_status

    return _parse


def test_entry_point():
    assert ParserFactory('multiscale.lammps.raw') is LammpsRawParser


def test_is_cut_short():
    assert not is_cut_short(COMPLETE)
    assert all(is_cut_short(text) for text in (KILLED_IN_RUN, KILLED_BETWEEN_RUNS, KILLED_MID_ROW))


def test_complete_run_parses_like_stock_parser_fake(parse_fake_job):
    """Same exit status and the same ``results`` dictionary as aiida-lammps' own parser."""
    ours, status = parse_fake_job(COMPLETE)
    stock, stock_status = parse_fake_job(COMPLETE, parser=StockParser)
    assert status == stock_status == 0
    assert ours['results'].get_dict() == stock['results'].get_dict()
    assert ours['results']['compute_variables']['minimization']['stop_criterion'] == 'force tolerance'


def test_stock_parser_excepts_on_cut_short_output_fake(parse_fake_job):
    """The bug being worked around (aiida-lammps 1.0.2): if this starts to pass, the workaround can go."""
    with pytest.raises(IndexError):
        parse_fake_job(KILLED_IN_RUN, parser=StockParser)


@pytest.mark.parametrize('text', [KILLED_IN_RUN, KILLED_BETWEEN_RUNS, KILLED_MID_ROW], ids=['in_run', 'between', 'row'])
def test_cut_short_without_scheduler_reason_gives_352_fake(parse_fake_job, text):
    _, status = parse_fake_job(text)
    assert status == ERROR_OUTPUT_INCOMPLETE.status == 352


@pytest.mark.parametrize('scheduler_exit', [OUT_OF_WALLTIME, OUT_OF_MEMORY])
@pytest.mark.parametrize('text', [KILLED_IN_RUN, KILLED_BETWEEN_RUNS, None], ids=['in_run', 'between', 'no_output'])
def test_cut_short_keeps_scheduler_exit_code_fake(parse_fake_job, text, scheduler_exit):
    _, status = parse_fake_job(text, scheduler_exit=scheduler_exit)
    assert status == scheduler_exit


def test_complete_run_with_late_scheduler_message_is_a_success_fake(parse_fake_job):
    """A run that wrote its last line before the kill has all its results: the stock parser's 0 is kept."""
    _, status = parse_fake_job(COMPLETE, scheduler_exit=OUT_OF_WALLTIME)
    assert status == 0


def test_missing_output_without_scheduler_reason_gives_351_fake(parse_fake_job):
    _, status = parse_fake_job(None)
    assert status == 351


@pytest.mark.real_code
def test_lammps_error_gives_309(codes):
    """A real lmp run that stops on a LAMMPS ``ERROR`` (an unknown command): still 309 through our parser."""
    import io

    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory

    builder = CalculationFactory('lammps.raw').get_builder()
    builder.code = codes['lmp']
    script = 'units metal\nno_such_command 1\n'
    builder.script = orm.SinglefileData(io.BytesIO(script.encode()), filename='input.in')
    builder.metadata.options.parser_name = 'multiscale.lammps.raw'
    builder.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    builder.metadata.options.withmpi = False
    builder.metadata.options.max_wallclock_seconds = 120
    _, node = run_get_node(builder)
    assert node.exit_status == 309, f'[{node.exit_status}] {node.exit_message}'
    assert 'ERROR: Unknown command: no_such_command' in node.exit_message
    with node.outputs.retrieved.open('lammps.out') as handle:
        assert 'ERROR: Unknown command: no_such_command 1' in handle.read()
