"""AiiDA's caching of the rung calculations: a second chain at another anneal temperature reruns only what changed.

The second chain has the DFT and MD inputs of the session's ``fast_chain`` and a higher anneal temperature.  With
caching enabled for the daemon (as ``scripts/profile.sh`` does for a user's profile), every pw.x and LAMMPS run of
its DFT and MD rungs must be a copy of the first chain's (``_aiida_cached_from``), and so must every MOOSE run of its
phase field: the phase field runs in reduced units (lengths in d0, times in d0^2/(M sigma)), so a temperature, which
changes only M, renders the same MOOSE input.  The FEM rung's runs are new: the grain map it gets is the same one
rescaled to the larger grain size the growth law gives at the higher mobility.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from conftest import CHAIN_TIMEOUT, TEST_OVERRIDES

#: The second anneal: 650 K instead of the protocol's 0.6 T_melt of Al (560 K).  With Q = 0.23 eV the grain
#: boundary mobility M0 exp(-Q / kT) is 1.9 times higher, so the grains must grow further in the same anneal time.
SECOND_TEMPERATURE = 650.0


def _rungs(chain) -> dict:
    return {link.link_label: link.node for link in chain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()}


def test_configure_caching_keeps_the_users_choice_mock_config(aiida_config, aiida_profile, monkeypatch):
    """The profile set-up writes the list once, into the profile's section; any caching option already set wins.

    Run on a copy of the test config (``store`` disabled), so that the daemon of this session never sees it.
    """
    import copy

    from aiida.manage import configuration

    from aiida_multiscale.setup import CACHED_CALCULATIONS, configure_caching

    name = aiida_profile.name

    def fresh_config(**options):
        config = copy.deepcopy(aiida_config)
        for option in ('caching.default_enabled', 'caching.enabled_for', 'caching.disabled_for'):
            config.unset_option(option, scope=name)
            config.unset_option(option)
        for option, (value, scope) in options.items():
            config.set_option(option.replace('__', '.'), value, scope=scope)
        monkeypatch.setattr(config, 'store', lambda: config)
        monkeypatch.setattr(configuration, 'get_config', lambda *args, **kwargs: config)
        return config

    config = fresh_config()
    assert configure_caching(name, log=lambda _: None) is True
    # Setting the option validates every entry strictly (the entry point must load): a typo would raise here.
    assert config.get_option('caching.enabled_for', scope=name, default=False) == list(CACHED_CALCULATIONS)
    assert config.get_option('caching.enabled_for', default=False) is None  # not global: other profiles unchanged
    assert configure_caching(name, log=lambda _: None) is False

    messages = []
    config = fresh_config(caching__default_enabled=(False, name))  # "no caching", as docs/howto_caching.md says
    assert configure_caching(name, log=messages.append) is False
    assert config.get_option('caching.enabled_for', scope=name, default=False) is None
    assert 'caching.default_enabled' in messages[0]
    config = fresh_config(caching__disabled_for=(['aiida.calculations:multiscale.moose'], None))  # a global choice
    assert configure_caching(name, log=lambda _: None) is False


def _wait(*nodes) -> None:
    start = time.monotonic()
    while not all(node.is_terminated for node in nodes):
        if time.monotonic() - start > CHAIN_TIMEOUT:
            pytest.fail(f'{", ".join(f"{n.process_label}<{n.pk}>" for n in nodes)} did not finish in {CHAIN_TIMEOUT} s')
        time.sleep(2)


def _by_call_path(rung) -> dict[tuple[str, ...], orm.CalcJobNode]:
    """The calculation jobs of ``rung`` by their call-link path below it, e.g. ``('eos_m1', 'iteration_01')``."""
    from aiida_multiscale.provenance.caching import called_calculations

    result = {}
    for calc in called_calculations(rung):
        path, node = [], calc
        while node.pk != rung.pk:
            link = node.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).one()
            path.append(link.link_label)
            node = link.node
        result[tuple(reversed(path))] = calc
    return result


def _task_queue_consumers(profile) -> int:
    """Consumers of ``profile``'s process queue on RabbitMQ (one per daemon worker), by a passive declare over AMQP.

    Run in a thread of its own with its own event loop, so that the test process's AiiDA runner is not touched.
    """
    import asyncio
    import concurrent.futures

    import aiormq
    from aiida.brokers.rabbitmq.utils import get_launch_queue_name
    from aiida.manage import get_manager

    url = get_manager().get_broker().get_url()
    queue = get_launch_queue_name(f'aiida-{profile.uuid}')

    async def count() -> int:
        connection = await aiormq.connect(url)
        try:
            channel = await connection.channel()
            try:
                return (await channel.queue_declare(queue, passive=True)).consumer_count
            except aiormq.exceptions.ChannelNotFoundEntity:
                return 0
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, count()).result(timeout=60)


def _replace_workers(daemon_client, profile) -> None:
    """Replace every daemon worker by a new one, which reads the config when it starts.

    Not ``restart_daemon``: a test profile's task queue is deleted 10 s after its last consumer leaves, and the test
    process would then publish into nothing (``UnroutableError: NO_ROUTE``).  New workers are added first and the old
    ones (circus stops the oldest) only removed once the new ones consume from the queue, so the queue always has one.
    """
    number = int(daemon_client.get_numprocesses(timeout=120)['numprocesses'])
    consumers = _task_queue_consumers(profile)
    daemon_client.increase_workers(number, wait=True, timeout=120)
    deadline = time.monotonic() + 180
    while _task_queue_consumers(profile) < consumers + number:
        if time.monotonic() > deadline:
            pytest.fail(f'the {number} new daemon worker(s) did not subscribe to the process queue within 180 s')
        time.sleep(1)
    daemon_client.decrease_workers(number, wait=True, timeout=300)


@pytest.fixture
def daemon_caching(aiida_config, aiida_profile, daemon_client):
    """Caching enabled in the test profile by the profile set-up's own function, daemon workers restarted to read it.

    Restored afterwards (option removed, workers replaced again) so that the other tests of the session run uncached.
    """
    from aiida.manage.caching import get_use_cache

    from aiida_multiscale.setup import CACHED_CALCULATIONS, configure_caching

    assert configure_caching(aiida_profile.name, log=lambda _: None) is True
    try:
        # A second call keeps what is there: re-running the set-up must not override the user's caching choice.
        assert configure_caching(aiida_profile.name, log=lambda _: None) is False
        assert aiida_config.get_option('caching.enabled_for', scope=aiida_profile.name) == list(CACHED_CALCULATIONS)
        for process_type in CACHED_CALCULATIONS:
            assert get_use_cache(identifier=process_type)
        # Work chains are never cached by AiiDA; the bridges (calcfunctions) are not in the list on purpose.
        assert not get_use_cache(identifier='aiida_multiscale.bridges.dft_to_md.dft_to_md')
        _replace_workers(daemon_client, aiida_profile)
        yield
    finally:
        aiida_config.unset_option('caching.enabled_for', scope=aiida_profile.name)
        aiida_config.store()
        _replace_workers(daemon_client, aiida_profile)


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.real_code
def test_second_chain_reuses_dft_and_md(fast_chain, codes, daemon_caching):
    from aiida.engine import submit
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli
    from aiida_multiscale.provenance import trace, trace_json
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    first = fast_chain
    assert first.is_finished_ok, f'[{first.exit_status}] {first.exit_message}'
    builder = MultiscaleWorkChain.get_builder_from_protocol(
        'Al', protocol='fast', codes=codes, overrides=TEST_OVERRIDES, temperature=SECOND_TEMPERATURE
    )
    first_rungs = _rungs(first)
    start = time.monotonic()
    second = submit(builder)
    # The first chain's phase-field and FEM rungs again, with the very same inputs (checked at the end: all from the
    # cache).  Submitted now, beside the second chain, not after it: they only look up the cache, and their hashes
    # (560 K) are not those of the second chain's MOOSE runs (650 K), so neither can take anything from the other.
    repeats = {rung: submit(first_rungs[rung].get_builder_restart()) for rung in ('phase_field', 'fem')}
    _wait(second)
    wall = time.monotonic() - start
    first_wall = first.base.extras.get('test_wall_time', None)
    ratio = f' ({wall / first_wall:.2f} of the first chain, {first_wall:.0f} s)' if first_wall else ''
    print(f'\ncaching: second chain (DFT and MD from cache) took {wall:.0f} s{ratio}')
    assert second.is_finished_ok, f'[{second.exit_status}] {second.exit_message}'

    second_rungs = _rungs(second)
    for label, rungs in (('first', first_rungs), ('second', second_rungs)):
        # Where the time goes: DFT runs beside MD and the phase field, so the cache saves what was on the critical
        # path (MD); the phase field and FEM, which the temperature changes, run again.
        times = ', '.join(f'{rung} {(node.mtime - node.ctime).total_seconds():.0f} s' for rung, node in rungs.items())
        print(f'caching: rungs of the {label} chain: {times}')

    # DFT and MD: every calculation job is a copy of the one at the same place in the first chain.  Its source is
    # that node, or (in a full test session) an identical earlier run with the same hash, e.g. of the DFT tests.
    for rung in ('dft', 'md'):
        originals, copies = _by_call_path(first_rungs[rung]), _by_call_path(second_rungs[rung])
        assert originals and set(copies) == set(originals), rung
        for path, calc in copies.items():
            original = originals[path]
            source = calc.base.caching.get_cache_source()
            assert source is not None, f'{rung} {"/".join(path)}: {calc.process_label}<{calc.pk}> ran again'
            assert original.base.caching.get_cache_source() is None  # the first chain ran uncached
            assert calc.base.caching.get_hash() == original.base.caching.get_hash()
            if source != original.uuid:
                assert orm.load_node(source).base.caching.get_hash() == original.base.caching.get_hash()
            assert calc.is_finished_ok and calc.outputs.retrieved.base.repository.list_object_names() == (
                original.outputs.retrieved.base.repository.list_object_names()
            )

    # Phase field: reduced units, so the same MOOSE inputs at the other temperature: every run is a copy.
    originals, copies = _by_call_path(first_rungs['phase_field']), _by_call_path(second_rungs['phase_field'])
    assert originals and set(copies) == set(originals)
    for path, calc in copies.items():
        assert calc.base.caching.get_cache_source() is not None, f'phase field {"/".join(path)} ran again'
        assert calc.base.caching.get_hash() == originals[path].base.caching.get_hash()
    # FEM: the map is the same one rescaled, so the elastic runs (scale-free) may come from the cache, but the
    # crystal-plasticity RVE, whose Hall-Petch CRSS depends on the grain size, runs again.
    fem_copies = _by_call_path(second_rungs['fem'])
    plastic = {path: calc for path, calc in fem_copies.items() if path[0].startswith('rve_plasticity')}
    assert plastic
    for path, calc in plastic.items():
        assert calc.base.caching.get_cache_source() is None, f'fem {"/".join(path)} was cached'

    # The handoffs that the DFT and MD rungs made are the same numbers; the anneal is the only thing that changed.
    for label in ('dft_to_md_eos', 'dft_to_md_elastic'):
        assert second.outputs.handoffs[label].quantities == first.outputs.handoffs[label].quantities, label
    md_first, md_second = first_rungs['md'].outputs.md_properties, second_rungs['md'].outputs.md_properties
    assert md_second.quantities == md_first.quantities
    interface_first = first.outputs.handoffs.md_to_mesoscale_interface
    interface_second = second.outputs.handoffs.md_to_mesoscale_interface
    assert interface_second.value('gb_energy', 'J/m**2') == interface_first.value('gb_energy', 'J/m**2')
    assert interface_second.value('temperature', 'K') == pytest.approx(SECOND_TEMPERATURE)
    assert interface_first.value('temperature', 'K') == pytest.approx(0.6 * 933.47)

    # Physics: the same Voronoi start (same seed), and at the higher temperature the grain-boundary mobility is
    # higher (Arrhenius), so in the same anneal time the grains grow more.  Both anneals lie beyond the (shared,
    # cached) reduced run, so both sizes come from its growth law d^2/d0^2 = a + k tau; the second one at the reduced
    # time of the first times the ratio of the mobilities computed here: the bridge's conversion checked on its own.
    assert np.array_equal(
        second.outputs.initial_microstructure.grain_ids, first.outputs.initial_microstructure.grain_ids
    )
    k_b = 8.617333262e-5  # eV/K
    mobility_ratio = math.exp(0.23 / k_b * (1 / interface_first.value('temperature', 'K') - 1 / SECOND_TEMPERATURE))
    assert mobility_ratio > 1.5
    size_first = first.outputs.macro.value('mean_grain_size', 'm')
    size_second = second.outputs.macro.value('mean_grain_size', 'm')
    counts = [chain.outputs.microstructure.grain_count for chain in (first, second)]
    print(
        f'caching: mean grain size {size_first * 1e6:.3f} um ({counts[0]} grains) at '
        f'{interface_first.value("temperature", "K"):.0f} K, {size_second * 1e6:.3f} um ({counts[1]} grains) at '
        f'{SECOND_TEMPERATURE:.0f} K (mobility x {mobility_ratio:.2f})'
    )
    assert size_second > size_first
    assert second.outputs.microstructure.grain_count == first.outputs.microstructure.grain_count
    statistics = first_rungs['phase_field'].outputs.grain_statistics
    row = statistics.metadata['realisations'][0]
    tau_first = statistics.value('reduced_time', 'dimensionless')
    d0 = statistics.value('initial_mean_grain_size', 'm')

    def area_diameter(micro):
        areas = np.bincount(micro.grain_ids.ravel()) * micro.pixel_size**2
        return math.sqrt(4 * areas[areas > 0].mean() / math.pi)

    law = row['law_intercept_reduced'], row['rate_constant_reduced']
    for chain, tau in ((first, tau_first), (second, tau_first * mobility_ratio)):
        assert area_diameter(chain.outputs.microstructure) == pytest.approx(
            d0 * math.sqrt(law[0] + law[1] * tau), rel=1e-6
        )
    sizes = [area_diameter(chain.outputs.microstructure) for chain in (first, second)]
    growth = (sizes[1] ** 2 - d0**2) / (sizes[0] ** 2 - d0**2)
    # Every rung matters (issue 15): the MD-side mobility moves the grain size, and the grain size moves the yield
    # strength as Hall-Petch says, predicted here from the first chain's RVE Taylor factor and both grain maps
    # (Hansen's k = 0.04 MPa m^0.5 and M_r = 3.06, written here).
    macros = [chain.outputs.macro for chain in (first, second)]
    inverse_sqrt = []
    for chain in (first, second):
        micro = chain.outputs.microstructure
        areas = np.bincount(micro.grain_ids.ravel()) * micro.pixel_size**2
        areas = areas[areas > 0]
        inverse_sqrt.append(np.sum(areas / np.sqrt(np.sqrt(4 * areas / np.pi))) / np.sum(areas))
    predicted = macros[0].value('taylor_factor') / 3.06 * 0.04 * (inverse_sqrt[1] - inverse_sqrt[0])
    actual = macros[1].value('yield_strength', 'MPa') - macros[0].value('yield_strength', 'MPa')
    print(
        f'caching: growth (d^2 - d0^2) x {growth:.2f} for mobility x {mobility_ratio:.2f}; yield '
        f'{macros[0].value("yield_strength", "MPa"):.2f} -> {macros[1].value("yield_strength", "MPa"):.2f} MPa '
        f'({actual:+.2f}; Hall-Petch at the first RVE Taylor factor {predicted:+.2f}); Taylor factors '
        f'{macros[0].value("taylor_factor"):.3f}, {macros[1].value("taylor_factor"):.3f}'
    )
    assert predicted < -0.05  # MPa: large enough to be seen
    assert actual == pytest.approx(predicted, rel=0.5)

    # What the user sees: status counts the calculations taken from the cache per rung, trace marks them.
    runner = CliRunner()
    result = runner.invoke(cli, ['status', str(second.pk), '--json'])
    assert result.exit_code == 0, result.output
    rows = {row['rung']: row for row in json.loads(result.output)}
    for rung in ('dft', 'md'):
        assert rows[rung]['calculations'] > 0 and rows[rung]['cached'] == rows[rung]['calculations'], rows[rung]
    for rung in ('phase_field',):
        assert rows[rung]['calculations'] > 0 and rows[rung]['cached'] == rows[rung]['calculations'], rows[rung]
    assert 0 <= rows['fem']['cached'] < rows['fem']['calculations'], rows['fem']
    for chain in (first, second):
        result = runner.invoke(cli, ['status', str(chain.pk)])
        assert result.exit_code == 0, result.output
        print(result.output)
    dft_row = next(line for line in result.output.splitlines() if line.startswith('dft '))
    assert f'{rows["dft"]["cached"]}/{rows["dft"]["calculations"]}' in dft_row

    data = trace_json(trace(second))
    assert data['dft_calculations'] and all(calc['cached_from'] for calc in data['dft_calculations'])
    assert not any(calc['cached_from'] for calc in trace_json(trace(first))['dft_calculations'])
    result = runner.invoke(cli, ['trace', str(second.pk)])
    assert result.exit_code == 0, result.output
    assert f'{len(data["dft_calculations"])} reused from the cache' in result.output

    # The MOOSE runs' hashes are stable too: the first chain's phase-field and FEM rungs, submitted again with the very
    # same inputs (above, beside the second chain), are taken entirely from the cache (an input drawn at run time, such
    # as a random seed, a time stamp or a UUID in a parameter, would make them run again).
    _wait(*repeats.values())
    took = ', '.join(f'{rung} {(node.mtime - node.ctime).total_seconds():.0f} s' for rung, node in repeats.items())
    print(f'caching: phase-field and FEM rungs of the first chain again: {took}')
    for rung, node in repeats.items():
        assert node.is_finished_ok, f'{rung}: [{node.exit_status}] {node.exit_message}'
        originals, copies = _by_call_path(first_rungs[rung]), _by_call_path(node)
        assert originals and set(copies) == set(originals), rung
        for path, calc in copies.items():
            assert calc.base.caching.get_cache_source() is not None, f'{rung} {"/".join(path)} ran again'
            assert calc.base.caching.get_hash() == originals[path].base.caching.get_hash()
