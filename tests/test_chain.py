"""The whole chain through the daemon on the fast protocol; trace, rung boundaries, CLI and archive round trip on it.

One chain run (module fixture) serves every test here: it is the one heavy test of the chain (budget ~6 min).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import secrets
import subprocess
import sys

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from references import youngs_bounds

PG_HOST = os.environ.get('AIIDA_MULTISCALE_PGHOST', '127.0.0.1')
PG_PORT = int(os.environ.get('AIIDA_MULTISCALE_PGPORT', '5432'))
PG_SUPERUSER = os.environ.get('AIIDA_MULTISCALE_PGSUPERUSER', 'postgres')


def _psql(sql: str) -> None:
    subprocess.run(
        ['psql', '-h', PG_HOST, '-p', str(PG_PORT), '-U', PG_SUPERUSER, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1',
         '-qc', sql],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def _rungs(chain) -> dict:
    return {link.link_label: link.node for link in chain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()}


def _data_ancestors(node) -> set[str]:
    """UUIDs of every node behind ``node`` in the data provenance (CREATE and INPUT_CALC links), walked link by link
    with the ORM: a second route to what ``trace`` finds with its recursive SQL query."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        for link in current.base.links.get_incoming(link_type=(LinkType.CREATE, LinkType.INPUT_CALC)).all():
            if link.node.uuid not in seen:
                seen.add(link.node.uuid)
                todo.append(link.node)
    return seen


# -- bad input, before anything is submitted ------------------------------------------------------------------


@pytest.mark.parametrize(
    'element, kwargs, expected',
    [
        ('Xx', {}, 'not a chemical symbol'),
        ('al', {}, 'not a chemical symbol'),
        ('Fe', {}, "element 'Fe' is bcc in its ground state; the MD rung builds fcc cells"),
        ('W', {}, "element 'W' is bcc in its ground state"),
        ('Mg', {}, "element 'Mg' is hcp in its ground state"),
        ('Ag', {}, 'pseudo'),  # a potential exists, no LDA pseudopotential in multiscale/lda
        ('Pb', {}, 'potential'),  # fcc, an LDA pseudopotential exists, no default potential
        ('Al', {'anneal_time': 0.0}, 'anneal_time'),
        ('Al', {'anneal_time': -1e-4}, 'anneal_time'),
        ('Al', {'temperature': 0.0}, 'temperature'),
        ('Al', {'temperature': 1000.0}, 'melting point'),
        ('Al', {'initial_grain_size': 1e-9}, r'initial_grain_size = 1e-09 m: the starting mean grain size must be'),
    ],
)
def test_bad_input_get_builder(codes, pseudo_family, element, kwargs, expected):
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    with pytest.raises(ValueError, match=expected):
        MultiscaleWorkChain.get_builder_from_protocol(element, protocol='fast', codes=codes, **kwargs)


def test_bad_input_port_validator(codes, pseudo_family):
    """A builder edited after the protocol is refused by the spec validation that runs before submission."""
    from aiida_multiscale.bridges.md_to_mesoscale import make_assumptions
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    builder = MultiscaleWorkChain.get_builder_from_protocol('Al', protocol='fast', codes=codes)
    spec = MultiscaleWorkChain.spec().inputs
    assert spec.validate(builder._inputs(prune=True)) is None
    values = {name: dict(q) for name, q in builder.assumptions.quantities.items()}
    values['temperature']['value'] = 1200.0
    builder.assumptions = make_assumptions(values)
    error = spec.validate(builder._inputs(prune=True))
    assert error is not None and 'melting point of Al' in str(error)
    builder.assumptions = make_assumptions({**values, 'temperature': {'value': 600.0, 'unit': 'K'}})
    builder.element = orm.Str('Qq')
    error = spec.validate(builder._inputs(prune=True))
    assert error is not None and "'Qq' is not a chemical symbol" in str(error)
    builder.element = orm.Str('Fe')  # a bcc metal put on an Al builder: refused for its structure, not a file
    error = spec.validate(builder._inputs(prune=True))
    assert error is not None and "element 'Fe' is bcc in its ground state" in str(error)


def test_the_mobility_comes_from_md_or_by_hand(codes, pseudo_family):
    """By default the MD rung computes the mobility: no assumed M0, Q, an assumed mobility_reduction.  M0 and Q given
    by hand become assumptions and switch the MD stage off; one without the other, an MD stage switched off with no M0,
    or both sources at once (an edited builder) are refused before submission, naming the fix."""
    from aiida_multiscale.bridges.md_to_mesoscale import make_assumptions
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    spec = MultiscaleWorkChain.spec().inputs
    computed = MultiscaleWorkChain.get_builder_from_protocol('Al', protocol='fast', codes=codes)
    assert computed.md.parameters['mobility']['compute'] is True
    assert 'mobility_prefactor' not in computed.assumptions and 'activation_energy' not in computed.assumptions
    reduction = computed.assumptions['mobility_reduction']
    assert reduction.value == 1.0 and reduction.relative_std == pytest.approx(math.log(10))
    assert 'Olmsted' in reduction.note

    by_hand = MultiscaleWorkChain.get_builder_from_protocol(
        'Al', protocol='fast', codes=codes, mobility_prefactor=1e-7, activation_energy=0.5
    )
    assert by_hand.md.parameters['mobility']['compute'] is False
    assert (
        by_hand.assumptions.value('mobility_prefactor') == 1e-7
        and by_hand.assumptions.value('activation_energy') == 0.5
    )
    assert by_hand.assumptions['activation_energy'].note.startswith('assumed; source: user input')
    assert 'mobility_reduction' not in by_hand.assumptions
    assert spec.validate(by_hand._inputs(prune=True)) is None

    with pytest.raises(ValueError, match='give both mobility_prefactor and activation_energy'):
        MultiscaleWorkChain.get_builder_from_protocol('Al', protocol='fast', codes=codes, mobility_prefactor=1e-7)
    off = {'md': {'overrides': {'parameters': {'mobility': {'compute': False}}}}}
    with pytest.raises(ValueError, match='--mobility-prefactor'):
        MultiscaleWorkChain.get_builder_from_protocol('Al', protocol='fast', codes=codes, overrides=off)

    # By hand through overrides: the user's value is stored as the user's (not with the stand-alone default's source or
    # std); M0 without a std gets one decade, and the note says so.  A reduction with M0 by hand is refused.
    given = {'mobility_prefactor': {'value': 3e-7}, 'activation_energy': {'value': 0.4}}
    overridden = MultiscaleWorkChain.get_builder_from_protocol(
        'Al', protocol='fast', codes=codes, overrides={'assumptions': given}
    )
    prefactor = overridden.assumptions['mobility_prefactor']
    assert prefactor.value == 3e-7 and prefactor.relative_std == pytest.approx(math.log(10))
    assert prefactor.note.startswith('assumed; source: user input (overrides); std not given: one decade')
    assert overridden.assumptions['activation_energy'].std is None
    with pytest.raises(ValueError, match='mobility_reduction applies to a mobility computed by the MD rung'):
        MultiscaleWorkChain.get_builder_from_protocol(
            'Al', protocol='fast', codes=codes,
            overrides={'assumptions': {**given, 'mobility_reduction': {'value': 0.1}}},
        )  # fmt: skip

    values = {name: dict(q) for name, q in by_hand.assumptions.quantities.items()}
    computed.assumptions = make_assumptions(values)  # M0 and Q by hand, and the MD stage still on
    error = spec.validate(computed._inputs(prune=True))
    assert error is not None and 'the mobility is given twice' in str(error)


# -- the chain ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.real_code
def test_chain_finishes_with_physical_macro(fast_chain):
    """Exit 0, a macro output whose E lies inside the Voigt and Reuss bounds recomputed in the test."""
    chain = fast_chain
    assert chain.is_finished_ok, f'[{chain.exit_status}] {chain.exit_message}'
    macro = chain.outputs.macro
    youngs = macro.value('youngs_modulus', 'Pa')
    assert (
        macro.value('youngs_modulus_reuss', 'Pa') * 0.998 <= youngs <= macro.value('youngs_modulus_voigt', 'Pa') * 1.002
    )
    # Independent check: the Voigt and Reuss bounds recomputed by the test's own code (tests/references.py: scipy's
    # rotation, the closed-form cubic compliance) from the Cij handed to the FEM and its grain orientations
    # (weighted by the grains' fractions of the periodic RVE's elements).  Hill is only their midpoint, not a bound:
    # with the fast protocol's anisotropic Cij (Zener ratio about 1.8) the FEM value sat 2 % below it on a 4-grain
    # map, so the test asserts the bounds, which must hold.
    elastic = chain.outputs.handoffs.mesoscale_to_fem_elastic
    micro = chain.outputs.microstructure
    fem = _rungs(chain)['fem']
    rve = fem.base.links.get_outgoing(link_label_filter='rve_elasticity_0').one().node.outputs.elasticity
    voigt, reuss = youngs_bounds(
        *(elastic.value(name, 'Pa') for name in ('c11', 'c12', 'c44')), micro.euler_angles,
        rve.metadata['grain_fractions'],
    )  # fmt: skip
    assert reuss * 0.998 <= youngs <= voigt * 1.002
    # The bounds the chain reports are the ones recomputed here.
    assert macro.value('youngs_modulus_voigt', 'Pa') == pytest.approx(voigt, rel=1e-6)
    assert macro.value('youngs_modulus_reuss', 'Pa') == pytest.approx(reuss, rel=1e-6)
    # Al: experiment gives a polycrystal E of 70.4 GPa (Hill average of the room-temperature single-crystal constants,
    # Kamm and Alers, J.  Appl.  Phys. 35, 327 (1964)).  The fast DFT rung's strained SCFs use 24^3 k (C11/C12/C44 near
    # 117/65/29 GPa), which gives E near 75 GPa:  LDA overestimates B by ~7 %.  At 12^3 (C12 near 73 GPa)  E came out 57
    # GPa, which this bound rejects.
    assert 0.85 * 70.4e9 < youngs < 1.2 * 70.4e9
    for name in ('youngs_modulus', 'poisson_ratio', 'youngs_modulus_voigt', 'youngs_modulus_reuss', 'mean_grain_size',
                 'yield_strength', 'flow_stress'):  # fmt: skip
        assert macro[name].std is not None and macro[name].std > 0, name
    assert 0.25 < macro.value('poisson_ratio') < 0.5
    # Grain growth happened: the mean grain size grew during the anneal.
    assert micro.mean_grain_size > chain.outputs.initial_microstructure.mean_grain_size
    # The yield strength: inside its Sachs-Taylor interval, and near the polycrystal Hall-Petch law it was built from,
    # sigma_y = sigma_0 + k / sqrt(d) with Hansen's Al values (16 MPa, 0.04 MPa m^0.5; Acta Metall. 25, 863 (1977))
    # at the grains' area-weighted mean of d^-1/2, written here.  The RVE's own Taylor factor replaces the random
    # texture's 3.06 by which sigma_0 and k were taken to the slip level: one layer of columnar grains, a few
    # elements each, constrains less than Taylor's full constraints (2.3 measured on the test chain, 33.8 against
    # 45.4 MPa), so the RVE's yield sits 20-30 % below the law; the bound is that of the Sachs estimate (2.2).
    value, sachs, taylor = (
        macro.value(n, 'MPa') for n in ('yield_strength', 'yield_strength_sachs', 'yield_strength_taylor')
    )
    assert 0.95 * sachs <= value <= 1.05 * taylor
    areas = np.bincount(micro.grain_ids.ravel()) * micro.pixel_size**2
    sizes = np.sqrt(4 * areas[areas > 0] / np.pi)
    hall_petch = 16.0 + 0.04 * np.sum(areas[areas > 0] / np.sqrt(sizes)) / np.sum(areas)
    rve_taylor = macro.value('taylor_factor')
    assert 2.2 / 3.06 * 0.95 * hall_petch < value < 1.1 * hall_petch, (value, hall_petch, rve_taylor)
    assert macro.value('flow_stress', 'MPa') > value  # it hardens
    # The CP RVE ran on one mesh: its error is a term of the yield's budget, 0.088 / (elements per grain), counted
    # here from the mesh the RVE reports and the grains of the map it was given.
    cp_rve = fem.base.links.get_outgoing(link_label_filter='rve_plasticity_0').one().node
    nx, ny, _ = cp_rve.outputs.plasticity.metadata['mesh']
    per_grain = nx * ny / cp_rve.inputs.microstructure.grain_count
    budget = {entry['macro_quantity']: entry for entry in macro.metadata['variance_budget']}['yield_strength']
    (mesh_term,) = [entry for entry in budget['entries'] if entry['quantity'] == 'discretisation']
    assert mesh_term['std'] == pytest.approx(0.088 / per_grain, rel=1e-9)
    assert macro.value('grain_count') == micro.grain_count
    print(
        f'chain: yield {value:.2f} MPa in [Sachs {sachs:.2f}, Taylor {taylor:.2f}]; Hall-Petch {hall_petch:.2f} MPa; '
        f'RVE Taylor factor {rve_taylor:.3f}'
    )


@pytest.mark.slow
@pytest.mark.daemon
def test_every_rung_input_came_through_a_bridge(fast_chain):
    from aiida_multiscale.provenance.boundaries import boundary_violations

    assert set(_rungs(fast_chain)) == {'dft', 'md', 'phase_field', 'fem'}
    assert boundary_violations(fast_chain) == []


@pytest.mark.slow
@pytest.mark.daemon
def test_trace_reaches_every_pw_calculation(fast_chain, pseudo_family):
    from aiida_multiscale.provenance import trace, trace_json

    dft = _rungs(fast_chain)['dft']
    expected = {
        node.uuid
        for node in dft.called_descendants
        if isinstance(node, orm.CalcJobNode) and node.process_type == 'aiida.calculations:quantumespresso.pw'
    }
    assert len(expected) >= 7  # at least the EOS points
    lineage = trace(fast_chain)
    assert {calc.uuid for calc in lineage.dft_calculations} == expected
    data = trace_json(lineage)
    al_md5 = pseudo_family.get_pseudo('Al').md5
    for entry in data['dft_calculations']:
        calc = orm.load_node(entry['uuid'])
        assert entry['pseudos'] == {'Al': al_md5}
        assert entry['structure_uuid'] == calc.inputs.structure.uuid
        assert entry['formula'] == 'Al'
        assert entry['ecutwfc'] == calc.inputs.parameters['SYSTEM']['ecutwfc']
        assert entry['kpoints_mesh'] == list(calc.inputs.kpoints.get_kpoints_mesh()[0])
    bridges = [h['bridge'] for h in data['handoffs']]
    assert bridges[:2] == ['dft_to_md', 'dft_to_md'] and 'md_to_mesoscale' in bridges and 'mesoscale_to_fem' in bridges
    assert data['macro']['uuid'] == fast_chain.outputs.macro.uuid
    # The weakest input by its share of a macro quantity's variance.  Two inputs compete, each dominating its own
    # quantity: the assumed mobility (orders of magnitude) drives the grain size, and the fast protocol's unconverged
    # C44 (its std is the change from 20^3 to 24^3 k, about 20 GPa) drives E.  Which of the two wins depends on
    # shares near 1 in both budgets, so the test checks each budget's leader and that the trace names the overall one.
    budgets = {entry['macro_quantity']: entry for entry in data['variance_budget']}
    assert budgets['mean_grain_size']['entries'][0]['quantity'] in ('gb_mobility', 'mobility_prefactor')
    assert budgets['youngs_modulus']['entries'][0]['quantity'] in ('c44', 'c11', 'c12')
    leader = max(
        ((entry['share'], entry['quantity'], name) for name, b in budgets.items() for entry in b['entries']
         if entry['share'] is not None),
    )  # fmt: skip
    weakest = data['weakest_handoff']
    assert weakest['share'] == pytest.approx(leader[0], rel=1e-12)
    assert (weakest['quantity'], weakest['macro_quantity']) == leader[1:]
    assert weakest['quantity'] in ('gb_mobility', 'mobility_prefactor', 'c44')


def test_trace_lists_every_lammps_run(fast_chain):
    """``md_calculations`` of the trace: every LAMMPS run of the MD rung (the suite's chain leaves the mobility stage
    out: bulk, scan, size check), each with its purpose, the potential file's md5 (hashed here from the wheel's file),
    and its size: 4 n^3 atoms of the fast protocol's bulk cube, 20 nx ny nz of its bicrystals."""
    import hashlib

    from aiida_multiscale.engines.lammps.potentials import default_potential
    from aiida_multiscale.provenance import trace, trace_json

    md = _rungs(fast_chain)['md']
    expected = {
        c.uuid for c in md.called_descendants if c.process_type == 'aiida.calculations:lammps.raw' and c.is_finished_ok
    }
    entries = {entry['label']: entry for entry in trace_json(trace(fast_chain))['md_calculations']}
    assert {entry['uuid'] for entry in entries.values()} == expected
    assert {label: entry['purpose'] for label, entry in entries.items()} == {
        'bulk': 'bulk', 'gb_scan': 'gb_energy', 'gb_size_check': 'gb_energy'
    }  # fmt: skip
    path, _ = default_potential('Al')
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    assert {entry['potential_md5'] for entry in entries.values()} == {md5}
    parameters = md.inputs.parameters.get_dict()
    bulk_n = parameters.get('bulk', {}).get('repeats', 3)
    assert entries['bulk']['natoms'] == 4 * bulk_n**3
    for label, key in (('gb_scan', 'repeats'), ('gb_size_check', 'size_check_repeats')):
        nx, ny, nz = parameters['gb'][key]
        assert entries[label]['natoms'] == 20 * nx * ny * nz
        assert entries[label]['temperature'] is None and entries[label]['steps'] == 0  # 0 K minimisations


def test_trace_sql_equals_the_query_builder_path(fast_chain, monkeypatch):
    """The trace has two implementations written apart: plain SQL on aiida's node and link tables (PostgreSQL and
    SQLite, for speed) and aiida's QueryBuilder (any other storage).  On the real chain they must give the same JSON,
    so that neither can drift from the other unseen."""
    from aiida_multiscale.provenance import calls, lineage, trace, trace_json

    by_sql = trace_json(trace(fast_chain))
    assert calls.sql_session() is not None  # the suite's PostgreSQL: the line above took the SQL path
    monkeypatch.setattr(lineage, 'sql_session', lambda: None)
    by_query_builder = trace_json(trace(fast_chain))
    assert by_query_builder == by_sql
    assert len(by_sql['dft_calculations']) >= 7 and len(by_sql['handoffs']) >= 4


def tutorial_rows(chain) -> list[str]:
    """The rows of the tutorial's table (docs/tutorial.md, section 6) that the DFT and MD rungs fix, as they must read
    for ``chain``: the test suite's fast chain runs the same DFT and MD protocols as the demo the tutorial shows."""
    handoffs = chain.outputs.handoffs
    eos, elastic = handoffs.dft_to_md_eos, handoffs.dft_to_md_elastic
    cij = ', '.join(f'{elastic.value(name, "GPa"):.1f}' for name in ('c11', 'c12', 'c44'))
    sigma = handoffs.md_to_mesoscale_interface.value('gb_energy', 'J/m**2')
    return [
        f'| a0 (DFT, LDA, 12^3 k) | {eos.value("a0", "angstrom"):.3f} A |',
        f'| B0 (DFT, 12^3 k) | {eos.value("bulk_modulus", "GPa"):.1f} GPa |',
        f'| C11, C12, C44 (DFT, 24^3 k) | {cij} GPa |',
        f'| sigma_GB (MD, Mendelev) | {sigma:.3f} J/m^2 |',
    ]


@pytest.mark.slow
@pytest.mark.daemon
def test_tutorial_numbers_of_the_dft_and_md_rungs(fast_chain):
    """The tutorial's DFT and MD numbers are what these rungs give today, so that the page cannot go stale."""
    text = (pathlib.Path(__file__).parent.parent / 'docs' / 'tutorial.md').read_text()
    missing = [row for row in tutorial_rows(fast_chain) if row not in text]
    assert not missing, f'docs/tutorial.md section 6 should read: {missing}'


# -- CLI on the real chain ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.daemon
def test_cli_status_trace_graph(fast_chain, tmp_path):
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli
    from aiida_multiscale.data.handoff import HandoffData

    runner = CliRunner()
    result = runner.invoke(cli, ['status', str(fast_chain.pk)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    for rung in ('dft', 'md', 'phase_field', 'fem'):
        row = next(line for line in lines if line.startswith(rung + ' '))
        assert 'finished' in row and ' 0 ' in row and row.rstrip().endswith('s')

    result = runner.invoke(cli, ['trace', str(fast_chain.pk), '--format', 'json'])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # Every key and value checked against the nodes read with the ORM, not against the function the CLI calls.
    assert set(data) == {
        'macro', 'handoffs', 'dft_results', 'dft_calculations', 'md_calculations', 'weakest_handoff', 'variance_budget'
    }  # fmt: skip
    macro = fast_chain.outputs.macro
    assert data['macro'] == {'uuid': macro.uuid, 'quantities': macro.base.attributes.get('quantities')}
    # The DFT results are the dft_to_md bridge's HandoffData inputs, each with the settings of its own metadata, and
    # the eos with the rung's verification output (fast Al: LDA, so no reference and a reason).
    dft = _rungs(fast_chain)['dft']
    bridge = next(c for c in fast_chain.called if c.process_label == 'dft_to_md')
    links = bridge.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
    inputs = {link.link_label: link.node for link in links}
    results = {label: node for label, node in inputs.items() if isinstance(node, HandoffData)}
    assert {entry['label']: entry['uuid'] for entry in data['dft_results']} == {
        label: node.uuid for label, node in results.items()
    }
    for entry in data['dft_results']:
        metadata = results[entry['label']].base.attributes.get('metadata')
        assert entry['functional'] == metadata['functional'] == 'lda'
        assert entry['functional_bias'] == metadata['functional_bias'] and 'overbind' in entry['functional_bias']
        assert (entry['ecutwfc'], entry['ecutrho'], entry['cutoffs_source']) == (
            metadata['ecutwfc'], metadata['ecutrho'], metadata['cutoffs_source']
        )  # fmt: skip
    elastic = next(entry for entry in data['dft_results'] if entry['label'] == 'elastic')
    assert elastic['kpoints_converged'] is False  # the fast protocol never claims convergence
    verification = dft.outputs.verification
    assert verification.base.attributes.get('metadata')['status'] == 'no_reference'
    ancestors = _data_ancestors(macro)
    bridge_names = {'dft_to_md', 'md_to_mesoscale', 'mesoscale_to_fem'}
    expected = {}
    for called in fast_chain.called:
        if isinstance(called, orm.CalcFunctionNode) and called.process_label in bridge_names:
            for link in called.base.links.get_outgoing(link_type=LinkType.CREATE).all():
                if isinstance(link.node, HandoffData) and link.node.uuid in ancestors:  # not the MicrostructureData
                    expected[link.node.uuid] = called.process_label
    assert {entry['uuid']: entry['bridge'] for entry in data['handoffs']} == expected
    scales = {
        'dft_to_md': ('dft', 'md'),
        'md_to_mesoscale': ('md', 'mesoscale'),
        'mesoscale_to_fem': ('mesoscale', 'fem'),
    }
    for entry in data['handoffs']:
        node = orm.load_node(entry['uuid'])
        assert (entry['from_scale'], entry['to_scale']) == scales[entry['bridge']]
        assert entry['quantities'] == node.base.attributes.get('quantities')
    pw = {
        node.uuid: node
        for node in _rungs(fast_chain)['dft'].called_descendants
        if isinstance(node, orm.CalcJobNode) and node.process_type == 'aiida.calculations:quantumespresso.pw'
    }
    assert {entry['uuid'] for entry in data['dft_calculations']} == set(pw)
    for entry in data['dft_calculations']:
        calc = pw[entry['uuid']]
        system = calc.inputs.parameters['SYSTEM']
        assert entry['ecutwfc'] == system['ecutwfc'] and entry['ecutrho'] == system['ecutrho']
        assert entry['smearing'] == {
            'occupations': system['occupations'], 'type': system.get('smearing'), 'degauss': system.get('degauss')
        }  # fmt: skip
        assert entry['kpoints_mesh'] == list(calc.inputs.kpoints.get_kpoints_mesh()[0])
        assert entry['structure_uuid'] == calc.inputs.structure.uuid and entry['formula'] == 'Al'
        assert entry['pseudos'] == {'Al': calc.inputs.pseudos['Al'].md5}
    # The variance budget: each budget's shares sum to 1, its std is the root of the summed term variances, and the
    # weakest handoff is the largest share of any budget, found here by scanning the JSON.
    budgets = data['variance_budget']
    assert {b['macro_quantity'] for b in budgets} >= {'youngs_modulus', 'yield_strength', 'mean_grain_size'}
    for entry_budget in budgets:
        shares = [e['share'] for e in entry_budget['entries'] if e['share'] is not None]
        assert sum(shares) == pytest.approx(1.0)
        variances = [e['amplitude'] ** 2 for e in entry_budget['entries'] if e['amplitude'] is not None]
        assert entry_budget['std'] == pytest.approx(np.sqrt(sum(variances)), rel=1e-12)
        macro_std = data['macro']['quantities'][entry_budget['macro_quantity']]['std']
        assert macro_std == pytest.approx(entry_budget['std'], rel=1e-12)
    best = max(
        (e['share'], b['macro_quantity'], e['quantity'])
        for b in budgets
        for e in b['entries']
        if e['share'] is not None
    )
    weakest = data['weakest_handoff']
    assert (weakest['share'], weakest['macro_quantity'], weakest['quantity']) == best
    # Every term names a node of the graph that holds the input (or none: the spread over realisations).
    for entry_budget in budgets:
        for e in entry_budget['entries']:
            assert e['uuid'] is None or orm.load_node(e['uuid']).uuid == e['uuid']
    # The elastic constants' budget: only the DFT Cij and the sampling; the mobility does not enter E.
    youngs = next(b for b in budgets if b['macro_quantity'] == 'youngs_modulus')
    assert {e['quantity'] for e in youngs['entries']} <= {'c11', 'c12', 'c44', 'realisations'}

    result = runner.invoke(cli, ['trace', str(fast_chain.pk)])
    assert result.exit_code == 0 and 'weakest handoff' in result.output and 'PwCalculation' in result.output

    target = tmp_path / 'chain.svg'
    result = runner.invoke(cli, ['graph', str(fast_chain.pk), '-o', str(target)])
    assert result.exit_code == 0, result.output
    svg = target.read_text()
    assert svg.lstrip().startswith('<?xml') and '<svg' in svg
    assert fast_chain.outputs.macro.uuid.split('-')[0] in svg and '#ffd23f' in svg  # handoffs highlighted

    result = runner.invoke(cli, ['status', str(fast_chain.outputs.macro.pk)])
    assert result.exit_code != 0 and 'not a MultiscaleWorkChain' in result.output


# -- archive round trip ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.daemon
def test_archive_round_trip_same_trace(fast_chain, tmp_path):
    """verdi archive create, import into a fresh profile on a second PostgreSQL database: same trace, same UUIDs."""
    from aiida.cmdline.commands.cmd_archive import create
    from click.testing import CliRunner

    from aiida_multiscale.provenance import trace, trace_json

    archive = tmp_path / 'chain.aiida'
    result = CliRunner().invoke(create, ['-N', str(fast_chain.pk), '--', str(archive)])
    assert result.exit_code == 0, result.output

    name = f'test_multiscale_import_{secrets.token_hex(4)}'
    _psql(f"CREATE DATABASE {name} OWNER {PG_SUPERUSER} ENCODING 'UTF8' TEMPLATE template0")
    env = dict(os.environ, AIIDA_PATH=str(tmp_path / 'config'))
    bin_dir = os.path.dirname(sys.executable)
    try:
        subprocess.run(
            [
                f'{bin_dir}/verdi', 'profile', 'setup', 'core.psql_dos', '-n', '--profile-name', 'imported',
                '--email', 'test@example.org', '--first-name', 'T', '--last-name', 'T', '--institution', 'T',
                '--broker', 'none', '--database-engine', 'postgresql_psycopg', '--database-hostname', PG_HOST,
                '--database-port', str(PG_PORT), '--database-username', PG_SUPERUSER, '--database-password', '',
                '--database-name', name, '--repository-uri', f'file://{tmp_path / "repository"}',
            ],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        subprocess.run(
            [f'{bin_dir}/verdi', '-p', 'imported', 'archive', 'import', str(archive)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        done = subprocess.run(
            [f'{bin_dir}/aiida-multiscale', '-p', 'imported', 'trace', fast_chain.uuid, '--format', 'json'],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        text = subprocess.run(
            [f'{bin_dir}/aiida-multiscale', '-p', 'imported', 'trace', fast_chain.uuid],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        _psql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')
    imported = json.loads(done.stdout)
    original = json.loads(json.dumps(trace_json(trace(fast_chain))))
    assert imported == original
    assert imported['macro']['uuid'] == fast_chain.outputs.macro.uuid
    from aiida_multiscale.provenance import render_text

    assert text.stdout.strip() == render_text(trace(fast_chain)).strip()
    assert 0 < imported['weakest_handoff']['share'] <= 1


@pytest.mark.parametrize(
    'args, expected',
    [
        (['--element', 'Xx'], "'Xx' is not a chemical symbol"),
        (['--element', 'Fe'], "element 'Fe' is bcc in its ground state; the MD rung builds fcc cells"),
        (['--element', 'W'], 'so only fcc metals (Al, Cu, Ni, Ag, Au ...)'),
        (['--element', 'Al', '--temperature', '2000'], 'melting point of Al'),
        (['--element', 'Al', '--anneal-time', '-1'], 'anneal time must be > 0'),
        (['--element', 'Al', '--initial-grain-size', '0'], 'the starting mean grain size must be >= 1e-08 m'),
    ],
)
def test_cli_launch_chain_bad_input(codes, pseudo_family, args, expected):
    """``launch chain`` refuses bad input with one line on stderr and exit status 1, nothing submitted."""
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    before = orm.QueryBuilder().append(orm.WorkflowNode).count()
    result = CliRunner().invoke(cli, ['launch', 'chain', '--protocol', 'fast', *args])
    assert result.exit_code == 1
    assert expected in result.output and 'Traceback' not in result.output
    assert orm.QueryBuilder().append(orm.WorkflowNode).count() == before


@pytest.mark.parametrize(
    'command', [['status'], ['status', '--watch'], ['trace'], ['trace', '--format', 'json'], ['graph']]
)
@pytest.mark.parametrize('identifier', ['999999999', 'ffffffff-0000'])
def test_cli_missing_node_is_one_line(aiida_profile, command, identifier):
    """``status``, ``trace`` and ``graph`` of a node that does not exist: one error line naming it, exit 1."""
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    result = CliRunner().invoke(cli, [command[0], identifier, *command[1:]])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: no node '{identifier}'"), result.output
    assert 'Traceback' not in result.output and isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ('command', 'expected'),
    [
        (['status'], 'is not a MultiscaleWorkChain (it is a Int)'),
        (['trace'], 'is a Int, not a MultiscaleWorkChain or a macro HandoffData'),
        (['graph'], 'is a Int, not a MultiscaleWorkChain'),
    ],
)
def test_cli_node_of_another_type_is_one_line(aiida_profile, command, expected):
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    node = orm.Int(1).store()
    result = CliRunner().invoke(cli, [*command, str(node.pk)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and 'Traceback' not in result.output
