"""The embedded profile (SQLite storage, aiida-core's ZeroMQ broker) of a test session, made as a user makes it.

``scripts/profile_embedded.sh`` (what ``make demo EMBEDDED=1`` runs) creates the profile in a configuration folder of
its own (``AIIDA_PATH``) and ``aiida-multiscale setup`` makes its computer, codes and pseudopotential families; the
tests start its daemon when they need it (the ZeroMQ broker lives in the daemon: ``submit`` needs it, ``reproduce``
does not).  Everything runs in subprocesses, so that the pytest process keeps its own PostgreSQL profile loaded.  The
profile serves ``tests/test_reproduce.py`` (the fast chain of the session, archived and reproduced in it) and
``tests/test_embedded.py`` (a chain through its daemon).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

__all__ = ('CHAIN_SUMMARY', 'EmbeddedProfile', 'embedded_profile')

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent

#: Printed by :meth:`EmbeddedProfile.summary` for the chain ``sys.argv[1]`` (a PK or UUID): its end state, macro
#: quantities and every calculation job it called with the node it was cached from (``None``: it ran).
CHAIN_SUMMARY = """
import json, sys
from aiida import orm
from aiida_multiscale.provenance.caching import called_calculations
node = orm.load_node(sys.argv[1])
print(json.dumps({
    'pk': node.pk,
    'uuid': node.uuid,
    'ok': node.is_finished_ok,
    'exit_status': node.exit_status,
    'exit_message': node.exit_message,
    'macro': node.outputs.macro.summary() if 'macro' in node.outputs else None,
    'calculations': [
        {'uuid': calc.uuid, 'process_type': calc.process_type, 'cached_from': calc.base.caching.get_cache_source()}
        for calc in called_calculations(node)
    ],
}))
"""


@dataclasses.dataclass
class EmbeddedProfile:
    """A profile ``name`` in the AiiDA configuration folder ``folder``; every command runs in a subprocess."""

    folder: pathlib.Path
    name: str

    @property
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ('AIIDA_PROFILE', 'AIIDA_PATH')}
        env.update(AIIDA_PATH=str(self.folder), AIIDA_MULTISCALE_PROFILE=self.name)
        env['PATH'] = f'{BIN}{os.pathsep}{env.get("PATH", "")}'  # `verdi daemon start` calls `verdi`
        return env

    def run(self, *args, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``args`` with this profile's configuration folder; with ``check``, fail with its output if it fails."""
        args = [str(arg) for arg in args]
        result = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f'{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}')
        return result

    def python(self, code: str, *args, timeout: float = 600) -> str:
        """Run ``code`` in a fresh interpreter with this profile loaded; return its standard output."""
        prelude = f'from aiida import load_profile; load_profile({self.name!r})\n'
        return self.run(sys.executable, '-c', prelude + code, *args, timeout=timeout).stdout

    def cli(self, *args, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """``aiida-multiscale -p NAME ARGS``."""
        return self.run(BIN / 'aiida-multiscale', '-p', self.name, *args, timeout=timeout, check=check)

    def daemon_start(self, workers: int = 2) -> None:
        """Start the daemon (and with it the ZeroMQ broker) unless it runs."""
        if self.run(BIN / 'verdi', '-p', self.name, 'daemon', 'status', check=False).returncode != 0:
            self.run(BIN / 'verdi', '-p', self.name, 'daemon', 'start', str(workers), timeout=180)

    def daemon_stop(self) -> None:
        self.run(BIN / 'verdi', '-p', self.name, 'daemon', 'stop', timeout=180, check=False)

    def summary(self, identifier) -> dict:
        """:data:`CHAIN_SUMMARY` of the chain with PK or UUID ``identifier``."""
        return json.loads(self.python(CHAIN_SUMMARY, str(identifier)).splitlines()[-1])


@contextlib.contextmanager
def embedded_profile(folder: pathlib.Path, name: str = 'embedded_test'):
    """Yield an :class:`EmbeddedProfile` made by the project's script and set up (daemon not started); stop its daemon
    after."""
    profile = EmbeddedProfile(pathlib.Path(folder) / 'config', name)
    output = profile.run('bash', ROOT / 'scripts' / 'profile_embedded.sh').stdout
    assert f"'{name}' uses storage core.sqlite_dos and broker core.zeromq" in output, output
    setup = ['setup', '--workdir', str(pathlib.Path(folder) / 'scratch')]
    if os.environ.get('AIIDA_MULTISCALE_MOOSE'):
        setup += ['--moose', os.environ['AIIDA_MULTISCALE_MOOSE']]
    profile.cli(*setup)
    try:
        yield profile
    finally:
        profile.daemon_stop()
