"""Pseudopotential families with recommended cutoffs: the convergence work chain, the rung's use of the cutoffs, PBE.

The references are independent of the code under test: the variational principle (the total energy can only fall
as the plane-wave basis grows), the criteria re-applied here to the stored history, the shipped table read with yaml,
and UPF header flags read here with a regular expression of the test's own.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest
import yaml
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_multiscale.cli import cli
from aiida_multiscale.engines.qe import cutoffs as cutoff_rules
from aiida_multiscale.setup.pseudos import DEFAULT_PSEUDO_FOLDER
from aiida_multiscale.workflows.dft import DftWorkChain

TABLE = yaml.safe_load((resources.files('aiida_multiscale.setup') / 'cutoffs.yaml').read_text())['families']


def _validation_error(builder):
    error = DftWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    return None if error is None else error.message


def _within(values, reference, tolerance):
    return [abs(v - reference) <= tolerance for v in values]


# -- pure rules --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ('filename', 'dual'),
    [('Al.pz-vbc.UPF', 4.0), ('Cu.pz-d-rrkjus.UPF', 8.0), ('Cu.pbe-kjpaw.UPF', 8.0), ('Ni.pbe-nd-rrkjus.UPF', 8.0)],
)
def test_dual_from_the_upf_header(filename, dual):
    """NC -> 4, US/PAW -> 8; the expectation is checked against the header's own flags, read here."""
    content = (DEFAULT_PSEUDO_FOLDER / filename).read_text(errors='replace')
    is_paw = re.search(r'is_paw\s*=\s*"\s*(T|\.?true\.?)\s*"', content, re.IGNORECASE) is not None
    is_ultrasoft = re.search(r'is_ultrasoft\s*=\s*"\s*(T|\.?true\.?)\s*"', content, re.IGNORECASE) is not None
    assert (dual == 8.0) == (is_paw or is_ultrasoft or 'rrkjus' in filename)
    assert cutoff_rules.recommended_dual(content) == dual


def _converged_index_brute_force(energies, pressures, e_tol, p_tol):
    """The definition, written out: the lowest i such that every j >= i is within both tolerances of the last."""
    for i in range(len(energies) - 1):
        if all(
            abs(energies[j] - energies[-1]) <= e_tol and abs(pressures[j] - pressures[-1]) <= p_tol
            for j in range(i, len(energies))
        ):
            return i
    return None


@pytest.mark.parametrize(
    ('energies', 'pressures'),
    [
        ([10.0, 3.0, 0.9, 0.2, 0.0], [2.0, 0.6, 0.4, 0.1, 0.0]),  # converged at index 2
        ([10.0, 0.5, 3.0, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]),  # a non-monotonic excursion: index 3
        ([10.0, 5.0, 2.0], [0.0, 0.0, 0.0]),  # only the highest qualifies: None
        ([0.5, 0.2, 0.0], [0.1, 0.7, 0.0]),  # the pressure decides
    ],
)
def test_converged_index_is_the_definition(energies, pressures):
    expected = _converged_index_brute_force(energies, pressures, 1.0, 0.5)
    assert cutoff_rules.converged_index(energies, pressures, 1.0, 0.5) == expected


def test_shipped_table_records_what_setup_needs():
    """Every entry names its file, md5 (checked here against Debian's file), cutoffs, criteria, command, code, date."""
    assert {'multiscale/lda', 'multiscale/pbe'} <= set(TABLE)
    assert {'Al', 'Cu'} <= set(TABLE['multiscale/lda']['elements'])
    assert 'Cu' in TABLE['multiscale/pbe']['elements']
    for family in TABLE.values():
        for element, entry in family['elements'].items():
            path = DEFAULT_PSEUDO_FOLDER / entry['filename']
            assert entry['filename'].startswith(f'{element}.')
            assert hashlib.md5(path.read_bytes()).hexdigest() == entry['md5']
            assert entry['criteria'] == {'energy_per_atom_mev': 1.0, 'pressure_gpa': 0.5}
            assert entry['ecutrho'] / entry['ecutwfc'] == cutoff_rules.recommended_dual(
                path.read_text(errors='replace')
            )
            assert entry['command'].startswith('aiida-multiscale pseudos converge --element ' + element)
            assert entry['code'].startswith('pw.x') and entry['date']
            # The recorded series shows the criteria met from the chosen cutoff up, and not below it.
            series = entry['series_ecutwfc_dE_meV_per_atom_dP_GPa']
            ok = [abs(de) <= 1.0 and abs(dp) <= 0.5 for _, de, dp in series]
            chosen = [w for w, _, _ in series].index(entry['ecutwfc'])
            assert all(ok[chosen:]) and not ok[chosen - 1]


# -- the families made by setup ----------------------------------------------------------------------------------------
def test_setup_families_are_cutoffs_families_with_the_table(multiscale_setup):
    from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily

    for label, family in multiscale_setup['families'].items():
        assert isinstance(family, CutoffsPseudoPotentialFamily)
        assert set(family.elements) == set(TABLE[label]['elements'])
        for element, entry in TABLE[label]['elements'].items():
            assert family.get_pseudo(element).md5 == entry['md5']
            assert family.get_recommended_cutoffs(elements=(element,), unit='Ry') == (
                entry['ecutwfc'],
                entry['ecutrho'],
            )


def test_plain_family_of_an_older_setup_is_migrated_fake_table(multiscale_setup, monkeypatch, tmp_path):
    """A plain pseudo.family with a local family's label is relabelled (kept) and made again with cutoffs."""
    from aiida.plugins import DataFactory, GroupFactory

    from aiida_multiscale.setup import plan as setup_plan
    from aiida_multiscale.setup import pseudos

    entry = TABLE['multiscale/lda']['elements']['Al']
    fake = {'test/migrate': {'functional': 'lda', 'elements': {'Al': entry}}}
    monkeypatch.setattr(pseudos, 'load_cutoffs_table', lambda: fake)
    upf = DataFactory('pseudo.upf').get_or_create(DEFAULT_PSEUDO_FOLDER / entry['filename'])
    old = GroupFactory('pseudo.family')(label='test/migrate').store()
    old.add_nodes(upf.store())
    log = []
    plan = setup_plan.SetupPlan(pseudo_files={'test/migrate': {'Al': DEFAULT_PSEUDO_FOLDER / entry['filename']}})
    families = pseudos.get_or_create_families(plan, [], log.append)
    new = families['test/migrate']
    assert new.pk != old.pk and new.get_recommended_cutoffs(elements=('Al',), unit='Ry') == (
        entry['ecutwfc'],
        entry['ecutrho'],
    )
    assert orm.load_group(old.pk).label == f'test/migrate-without-cutoffs-{old.pk}'
    assert any('older setup has no recommended cutoffs' in line for line in log)


# -- the rung: recommended cutoffs, explicit ones, missing elements, families without cutoffs -----------------------
@pytest.fixture(scope='module')
def al_cutoffs_family(multiscale_setup):
    """A cutoffs family of its own with Al at cutoffs no protocol or table uses (21/84 Ry), to see them arrive."""
    from aiida.plugins import GroupFactory

    family = GroupFactory('pseudo.family.cutoffs')(label='test/al-21-84').store()
    family.add_nodes(multiscale_setup['families']['multiscale/lda'].get_pseudo('Al'))
    family.set_cutoffs({'Al': {'cutoff_wfc': 21.0, 'cutoff_rho': 84.0}}, 'normal', unit='Ry')
    return family


@pytest.fixture(scope='module')
def al_plain_family(multiscale_setup):
    from aiida.plugins import GroupFactory

    family = GroupFactory('pseudo.family')(label='test/al-plain').store()
    family.add_nodes(multiscale_setup['families']['multiscale/lda'].get_pseudo('Al'))
    return family


def test_explicit_cutoffs_win(codes, al_cutoffs_family):
    overrides = {'scf': {'pw': {'parameters': {'SYSTEM': {'ecutwfc': 25.0, 'ecutrho': 150.0}}}}}
    builder = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Al', pseudo_family=al_cutoffs_family.label, overrides=overrides
    )
    system = builder.scf.pw.parameters['SYSTEM']
    assert (system['ecutwfc'], system['ecutrho']) == (25.0, 150.0)
    # ecutwfc alone: ecutrho keeps the family's ratio (84/21 = 4, a norm-conserving dual).
    overrides = {'scf': {'pw': {'parameters': {'SYSTEM': {'ecutwfc': 30.0}}}}}
    builder = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Al', pseudo_family=al_cutoffs_family.label, overrides=overrides
    )
    assert builder.scf.pw.parameters['SYSTEM']['ecutrho'] == pytest.approx(30.0 * 84.0 / 21.0)
    # precise scales the family's cutoffs by its cutoff_scale, read here from the protocol file.
    protocol = yaml.safe_load((resources.files('aiida_multiscale.workflows.protocols') / 'dft.yaml').read_text())
    scale = protocol['protocols']['precise']['cutoff_scale']
    builder = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Al', pseudo_family=al_cutoffs_family.label, protocol='precise'
    )
    assert builder.scf.pw.parameters['SYSTEM']['ecutwfc'] == pytest.approx(21.0 * scale)


def test_element_missing_from_a_cutoffs_family(codes, al_cutoffs_family):
    builder = DftWorkChain.get_builder_from_protocol(codes['pw'], element='Cu', pseudo_family=al_cutoffs_family.label)
    error = _validation_error(builder)
    assert "family 'test/al-21-84' has no pseudopotential for Cu (it has Al)" in error
    assert 'aiida-multiscale pseudos converge --element Cu' in error


def test_family_without_cutoffs_refused_before_submission(codes, al_plain_family):
    from aiida import engine

    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match='recommends none') as info:
        DftWorkChain.get_builder_from_protocol(codes['pw'], element='Al', pseudo_family=al_plain_family.label)
    assert 'SYSTEM' in str(info.value) and 'ecutwfc' in str(info.value) and 'SSSP' in str(info.value)
    # Built by hand without cutoffs: the port validator names both fixes, and nothing is submitted.
    overrides = {'scf': {'pw': {'parameters': {'SYSTEM': {'ecutwfc': 20.0}}}}}
    builder = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Al', pseudo_family=al_plain_family.label, overrides=overrides
    )
    assert _validation_error(builder) is None  # explicit cutoffs: a family without cutoffs is fine
    parameters = builder.scf.pw.parameters.get_dict()
    del parameters['SYSTEM']['ecutwfc']
    builder.scf.pw.parameters = orm.Dict(parameters)
    error = _validation_error(builder)
    assert "family 'test/al-plain' recommends no cutoffs" in error
    assert 'give SYSTEM.ecutwfc and ecutrho' in error and 'aiida-pseudo install' in error
    with pytest.raises(ValueError, match='recommends no cutoffs'):
        engine.submit(builder)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_pbe_by_default_and_the_lda_fallback_is_stated(codes, multiscale_setup):
    """Cu: multiscale/pbe.  Al (no PBE file in Debian): multiscale/lda, said in the builder and by the CLI."""
    cu = DftWorkChain.get_builder_from_protocol(codes['pw'], element='Cu')
    assert cu.pseudo_family.value == 'multiscale/pbe'
    expected = TABLE['multiscale/pbe']['elements']['Cu']
    system = cu.scf.pw.parameters['SYSTEM']
    assert (system['ecutwfc'], system['ecutrho']) == (expected['ecutwfc'], expected['ecutrho'])
    assert not cu.metadata.get('description')

    al = DftWorkChain.get_builder_from_protocol(codes['pw'], element='Al')
    assert al.pseudo_family.value == 'multiscale/lda'
    assert "'multiscale/pbe' has no pseudopotential for Al" in al.metadata.description
    assert 'LDA overbinds' in al.metadata.description and 'Phys. Rev. B 79, 085104' in al.metadata.description

    for command in (['launch', 'dft'], ['launch', 'chain']):
        result = CliRunner().invoke(cli, [*command, '--element', 'Al', '--dry-run'])
        assert result.exit_code == 0, result.output
        assert "Note: 'multiscale/pbe' has no pseudopotential for Al: using the LDA family" in result.output
        assert 'LDA overbinds' in result.output


# -- real pw.x ---------------------------------------------------------------------------------------------------------
@pytest.mark.real_code
def test_cutoffs_convergence_al_lda(codes, multiscale_setup):
    """Al LDA over four cutoffs (4^3 k): E falls monotonically; the chosen cutoff is the criteria's."""
    from aiida_multiscale.workflows.cutoffs import CutoffsConvergenceWorkChain

    pseudo = multiscale_setup['families']['multiscale/lda'].get_pseudo('Al')
    builder = CutoffsConvergenceWorkChain.get_builder(
        codes['pw'], element='Al', pseudo=pseudo, ecutwfc=[14, 18, 26, 40], kpoints_mesh=4
    )
    # Loose enough that this short series converges inside itself (the shipped table uses 1 meV and 0.5 GPa).
    builder.criteria = orm.Dict({'energy_per_atom_mev': 20.0, 'pressure_gpa': 0.5})
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    history = node.outputs.history.get_dict()
    energies, pressures, cutoffs = history['energy_per_atom_ev'], history['pressure_gpa'], history['ecutwfc']
    assert cutoffs == [14.0, 18.0, 26.0, 40.0] and history['ecutrho'] == [4 * w for w in cutoffs]  # NC: dual 4
    # Variational principle: a larger basis can only lower the (free) energy.
    assert all(later < earlier for earlier, later in zip(energies, energies[1:]))
    chosen = cutoffs.index(node.outputs.ecutwfc.value)
    e_ok = _within([1000 * e for e in energies], 1000 * energies[-1], 20.0)
    p_ok = _within(pressures, pressures[-1], 0.5)
    ok = [a and b for a, b in zip(e_ok, p_ok)]
    assert all(ok[chosen:]) and chosen < len(cutoffs) - 1
    assert chosen == 0 or not ok[chosen - 1]
    assert history['pseudo_md5'] == pseudo.md5 and history['kpoints_mesh'] == [4, 4, 4]
    assert history['code_version'].startswith('pw.x 6.')
    assert node.outputs.ecutrho.value == 4 * node.outputs.ecutwfc.value


@pytest.mark.real_code
def test_rung_runs_on_the_family_cutoffs(codes, al_cutoffs_family):
    """The PwCalculations of the DFT rung get the family's 21/84 Ry, and the handoff says where they came from."""
    # Small: one 4^3 mesh for every SCF, no k-point error estimate (this test is about the cutoffs only).
    parameters = {
        'eos_points': 5, 'kpoints_mesh': [4, 4, 4], 'kpoints_distance': None, 'elastic_kpoints_distance': None,
        'kpoints_convergence': False, 'kpoints_error_estimate': False, 'strains': [-0.01, 0.0, 0.01],
        'bulk_modulus_tolerance': 0.9,
    }  # fmt: skip
    overrides = {'parameters': parameters}
    builder = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Al', protocol='fast', pseudo_family=al_cutoffs_family.label, overrides=overrides
    )
    _, node = run_get_node(builder)
    calculations = [n for n in node.called_descendants if n.process_type == 'aiida.calculations:quantumespresso.pw']
    assert calculations
    for calculation in calculations:
        system = calculation.inputs.parameters['SYSTEM']
        assert (system['ecutwfc'], system['ecutrho']) == (21.0, 84.0)
    assert 'eos' in node.outputs, node.exit_message
    metadata = node.outputs.eos.metadata
    assert metadata['cutoffs_source'] == "recommended by family 'test/al-21-84' (stringency normal)"
    assert 'LDA overbinds' in metadata['functional_bias']
