"""``LammpsRawParser``: aiida-lammps' ``lammps.raw`` parser, made to fail cleanly on a run that was cut short.

aiida-lammps 1.0.2 workaround: its parser reads a thermo block up to the line that does not start with a
number ("Loop time of ...").  When the job is killed inside a run (``scancel``, the scheduler's time or memory limit,
a node failure) the block is the last thing in ``lammps.out``, the loop reaches the file's empty last line and
``line.split()[0]`` raises ``IndexError``: the calculation *excepts* instead of finishing with an exit code, so no
restart handler can act on it.  A run killed between two ``run``/``minimize`` commands parses without error and
even looked finished (exit 0).

This subclass keeps the stock parser for everything it handles (a complete run parses identically; a LAMMPS
``ERROR`` still gives 309) and decides only for runs that were cut short, recognised by the missing
``Total wall time:`` line LAMMPS writes when it exits normally:

* if the scheduler already reported why it killed the job (110 out of memory, 120 out of walltime, 130 node failure;
  aiida-core sets this on the node before the parser runs), that exit code is kept: it is the one a restart handler
  can act on (``LammpsRawBaseWorkChain`` resubmits with more time on 120);
* otherwise (``scancel`` by a user or an admin, a crash without a message) it returns
  :data:`ERROR_OUTPUT_INCOMPLETE` (352).
"""

from __future__ import annotations

from aiida.engine import ExitCode
from aiida_lammps.calculations.raw import LammpsRawCalculation
from aiida_lammps.parsers.raw import LammpsRawParser as _StockLammpsRawParser

__all__ = ('ERROR_OUTPUT_INCOMPLETE', 'LammpsRawParser', 'is_cut_short')

#: The line LAMMPS writes as the very last thing of a run that ended normally (also with ``-screen`` redirected).
END_MARKER = 'Total wall time:'

#: Our own exit code for a run that stopped without a reason from the scheduler.  ``lammps.raw`` declares 309, 351
#: and 1001; 352 sits next to 351 (output file missing) and is not used by ``lammps.raw`` or ``lammps.base``.  A
#: parser cannot add to the ``CalcJob``'s spec, so this code is defined here and compared by its status.
ERROR_OUTPUT_INCOMPLETE = ExitCode(
    352,
    'the LAMMPS output stops before the end of the run (no "Total wall time" line): the job was killed (scancel, '
    'a crash) without a reason from the scheduler; see _scheduler-stderr.txt. The partial output is retrieved.',
)


def is_cut_short(text: str) -> bool:
    """True when ``lammps.out`` does not end like a LAMMPS run that exited normally.

    LAMMPS writes ``Total wall time: H:MM:SS`` when it finishes the input script; it is absent when the process was
    killed, and also when LAMMPS stopped on an ``ERROR`` (that case is reported by the stock parser as 309).
    """
    return END_MARKER not in text


class LammpsRawParser(_StockLammpsRawParser):
    """aiida-lammps' ``lammps.raw`` parser that turns a cut-short run into an exit code instead of an exception.

    Entry point ``multiscale.lammps.raw``; select it with ``metadata.options.parser_name``
    (``LammpsRawBaseWorkChain`` always does).
    """

    def _scheduler_exit_code(self) -> ExitCode | None:
        """The exit code the scheduler output parser set on the node before this parser ran (100-199), if any."""
        status = self.node.exit_status
        if status is not None and 100 <= status < 200:
            return ExitCode(status, self.node.exit_message)
        return None

    def parse(self, **kwargs):
        """Parse with the stock parser; a run that was cut short gets the scheduler's exit code or 352."""
        scheduler = self._scheduler_exit_code()
        filename = LammpsRawCalculation.FILENAME_OUTPUT
        if filename not in self.retrieved.base.repository.list_object_names():
            # Killed before LAMMPS started (or its output was lost): the scheduler's reason beats "file missing".
            return scheduler or self.exit_codes.ERROR_OUTFILE_MISSING
        text = self.retrieved.base.repository.get_object_content(filename)
        try:
            exit_code = super().parse(**kwargs)
        except (IndexError, ValueError, SyntaxError):
            # IndexError: the empty last line of a thermo block cut short; ValueError/SyntaxError: a row cut in the
            # middle of a number or with fewer columns.  Only when the run really is incomplete: otherwise it is a
            # parser bug that must stay visible.
            if not is_cut_short(text):
                raise
            return self._cut_short(scheduler)
        if exit_code is None and is_cut_short(text):
            # Killed between two run/minimize commands: the stock parser found nothing wrong and would report 0.
            return self._cut_short(scheduler)
        return exit_code

    def _cut_short(self, scheduler: ExitCode | None) -> ExitCode:
        if scheduler is not None:
            self.logger.warning(f'LAMMPS output cut short; keeping the scheduler exit code {scheduler.status}')
            return scheduler
        self.logger.error(ERROR_OUTPUT_INCOMPLETE.message)
        return ERROR_OUTPUT_INCOMPLETE
