"""The embedded profile (SQLite storage, aiida-core's ZeroMQ broker): the fast chain through its daemon.

The rest of the suite runs on PostgreSQL and RabbitMQ; the session's embedded profile (``embedded_profile`` in
``tests/conftest.py``) is made as ``make demo EMBEDDED=1`` makes it (``scripts/profile_embedded.sh``, caching on),
in a configuration folder of its own, with the codes of ``aiida-multiscale setup`` and its daemon running; everything
runs in subprocesses, so that the session's profile is not touched.  The profile already holds one real run of the fast
chain: ``aiida-multiscale reproduce`` reran the session's chain in it (``embedded_reproduction``, caching off, checked
by ``tests/test_reproduce.py``).  The chain submitted here through the daemon has the same inputs, so, as a user's
second ``make demo`` would, it takes every calculation from that run's cache: the daemon, the broker and SQLite run
the whole work-chain graph, the bridges and the cache look-ups without a second run of the codes.
"""

from __future__ import annotations

import json

import pytest

#: Submitted in the embedded profile: the test size of the fast chain (tests/conftest.py), then wait; prints the PK.
RUN_CHAIN = """
import json, sys, time
from aiida.engine import submit
from aiida_multiscale.workflows.chain import MultiscaleWorkChain
overrides = json.loads(sys.argv[1])
node = submit(MultiscaleWorkChain.get_builder_from_protocol('Al', protocol='fast', overrides=overrides))
start = time.monotonic()
while not node.is_terminated and time.monotonic() - start < 1500:
    time.sleep(2)
print(node.pk)
"""


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.real_code
@pytest.mark.timeout(2400)
def test_fast_chain_on_embedded_profile(embedded_profile, embedded_reproduction):
    """SQLite + ZeroMQ profile by the project's script, codes by `aiida-multiscale setup`, the chain via the daemon."""
    from conftest import TEST_OVERRIDES

    rerun = embedded_reproduction['rerun']  # the run whose calculations the chain below takes from the cache
    assert rerun and rerun['ok'], embedded_reproduction['stdout'] + embedded_reproduction['stderr']
    embedded_profile.daemon_start()
    pk = embedded_profile.python(RUN_CHAIN, json.dumps(TEST_OVERRIDES), timeout=1800)
    result = embedded_profile.summary(pk.strip().splitlines()[-1])
    assert result['ok'], result
    macro = result['macro']
    assert macro['youngs_modulus_reuss']['value'] <= macro['youngs_modulus']['value'] * 1.002
    assert macro['youngs_modulus']['value'] <= macro['youngs_modulus_voigt']['value'] * 1.002

    # The profile's caching (enabled by the script, as for a user) took every calculation from the reproduced chain,
    # which ran the same inputs with the same codes in this profile; the macro numbers are therefore that chain's.
    calcs = result['calculations']
    assert calcs and len(calcs) == len(rerun['calculations']), (len(calcs), len(rerun['calculations']))
    # A source is one of the rerun's calculations, or (for two identical calculations in one chain) this chain's copy
    # of one.
    sources = {calc['uuid'] for calc in rerun['calculations'] + calcs}
    assert all(calc['cached_from'] in sources for calc in calcs), [c for c in calcs if c['cached_from'] not in sources]
    assert macro.keys() == rerun['macro'].keys()
    for name, spec in rerun['macro'].items():
        assert macro[name]['unit'] == spec['unit'], name
        assert macro[name]['value'] == pytest.approx(spec['value'], rel=1e-9), name
