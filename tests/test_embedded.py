"""The embedded profile (SQLite storage, aiida-core's ZeroMQ broker): the fast chain through its daemon.

The rest of the suite runs on PostgreSQL and RabbitMQ; this one test makes the profile that `make demo EMBEDDED=1` makes
(``scripts/profile_embedded.sh``) in a configuration folder of its own, sets up the codes, starts that profile's daemon
and runs one fast chain, all in subprocesses, so that the session's profile is not touched.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent

#: Submitted in the embedded profile: the test size of the fast chain (tests/conftest.py), then wait and report.
RUN_CHAIN = """
import json, sys, time
from aiida import load_profile
load_profile(sys.argv[1])
from aiida.engine import submit
from aiida_multiscale.workflows.chain import MultiscaleWorkChain
overrides = {'phase_field': {'overrides': {'parameters': {'grid': 40, 'grains': 6}}}}
node = submit(MultiscaleWorkChain.get_builder_from_protocol('Al', protocol='fast', overrides=overrides))
start = time.monotonic()
while not node.is_terminated and time.monotonic() - start < 1500:
    time.sleep(2)
macro = node.outputs.macro.summary() if 'macro' in node.outputs else None
print(json.dumps({'ok': node.is_finished_ok, 'exit_status': node.exit_status, 'macro': macro}))
"""


def _run(args, env, timeout=600):
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f'{args}: {result.stdout}\n{result.stderr}'
    return result.stdout


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.real_code
@pytest.mark.timeout(2400)
def test_fast_chain_on_embedded_profile(tmp_path):
    """SQLite + ZeroMQ profile by the project's script, codes by `aiida-multiscale setup`, the chain via the daemon."""
    name = 'embedded_test'
    env = dict(os.environ, AIIDA_PATH=str(tmp_path / 'config'), AIIDA_MULTISCALE_PROFILE=name)
    env['PATH'] = f'{BIN}{os.pathsep}{env.get("PATH", "")}'  # `verdi daemon start` calls `verdi`
    output = _run(['bash', str(ROOT / 'scripts' / 'profile_embedded.sh')], env)
    assert f"'{name}' uses storage core.sqlite_dos and broker core.zeromq" in output, output
    setup = [str(BIN / 'aiida-multiscale'), '-p', name, 'setup']
    if os.environ.get('AIIDA_MULTISCALE_MOOSE'):
        setup += ['--moose', os.environ['AIIDA_MULTISCALE_MOOSE']]
    _run(setup, env)
    _run([str(BIN / 'verdi'), '-p', name, 'daemon', 'start', '2'], env)
    try:
        result = json.loads(_run([sys.executable, '-c', RUN_CHAIN, name], env, timeout=1800).splitlines()[-1])
    finally:
        subprocess.run([str(BIN / 'verdi'), '-p', name, 'daemon', 'stop'], env=env, capture_output=True, timeout=120)
    assert result['ok'], result
    macro = result['macro']
    assert macro['youngs_modulus_reuss']['value'] <= macro['youngs_modulus']['value'] * 1.002
    assert macro['youngs_modulus']['value'] <= macro['youngs_modulus_voigt']['value'] * 1.002
