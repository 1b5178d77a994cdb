"""Bad input to MdWorkChain and ``launch md`` is refused before submission, with a message naming the fix (no lmp).

Also the workaround of the aiida-lammps 1.0.2 ``get_or_create`` class-attribute bug: creating our potentials leaves
``LammpsPotentialData``'s properties intact, so two potentials report their own pair styles.
"""

from __future__ import annotations

import io
import math

import pytest
from aiida import orm
from aiida.common.warnings import AiidaDeprecationWarning
from aiida.engine import run
from click.testing import CliRunner

from aiida_multiscale.cli import cli
from aiida_multiscale.engines.lammps.potentials import _class_tags, get_or_create_potential, potentials_folder
from aiida_multiscale.workflows.md import MdWorkChain


def _raw_potential(content: bytes, filename: str, pair_style: str, species: list[str]):
    """A LammpsPotentialData made without our validation (as a user of aiida-lammps could make it)."""
    from aiida_lammps.data.potential import LammpsPotentialData

    stream = io.BytesIO(content)
    tags = {'pair_style': pair_style, 'species': species, 'atom_style': 'atomic', 'units': 'metal', 'extra_tags': {}}
    with _class_tags(LammpsPotentialData, tags):
        return LammpsPotentialData(stream, filename=filename).store()


def _builder(codes, potential, element='Al', **extra):
    builder = MdWorkChain.get_builder()
    builder.code = codes['lmp']
    builder.element = orm.Str(element)
    builder.potential = potential
    for key, value in extra.items():
        setattr(builder, key, value)
    return builder


def _al_mm():
    return get_or_create_potential(potentials_folder() / 'Al_mm.eam.fs', 'Al').store()


def test_species_mismatch_rejected(codes):
    cu = (potentials_folder() / 'Cu_zhou.eam.alloy').read_bytes()
    potential = _raw_potential(cu, 'Cu_zhou.eam.alloy', 'eam/alloy', ['Al'])  # wrongly declared species
    with pytest.raises(ValueError, match=r"provides species \['Cu'\], not 'Al'"):
        run(_builder(codes, potential))


def test_unknown_pair_style_rejected(codes):
    al = (potentials_folder() / 'Al_mm.eam.fs').read_bytes()
    potential = _raw_potential(al, 'Al_mm.eam.fs', 'lj/cut', ['Al'])
    with pytest.raises(ValueError, match="unknown or unsupported pair style 'lj/cut'"):
        run(_builder(codes, potential))


def test_meam_library_node_rejected(codes):
    """A MEAM library made into a node without our validation is refused by the port validator before submission."""
    library = (potentials_folder() / 'library.meam').read_bytes()
    potential = _raw_potential(library, 'library.meam', 'meam', ['Cu'])
    with pytest.raises(ValueError, match="'library.meam' is a MEAM library, which LAMMPS needs together with"):
        run(_builder(codes, potential, element='Cu'))


def test_corrupt_potential_rejected(codes):
    al = (potentials_folder() / 'Al_mm.eam.fs').read_bytes()[:30000]
    potential = _raw_potential(al, 'Al_cut.eam.fs', 'eam/fs', ['Al'])
    with pytest.raises(ValueError, match="'Al_cut.eam.fs' is not a valid eam/fs file"):
        run(_builder(codes, potential))


@pytest.mark.parametrize('value', [0, -0.1, float('nan')])
def test_threshold_not_positive_rejected(codes, value):
    with pytest.raises(ValueError, match='thresholds: a0 = .* must be a relative error > 0'):
        run(_builder(codes, _al_mm(), thresholds=orm.Dict({'a0': value})))


def test_bcc_element_rejected(codes):
    with pytest.raises(ValueError, match="element 'Fe' is bcc.*only fcc metals"):
        run(_builder(codes, _al_mm(), element='Fe'))


def test_bad_parameters_rejected(codes):
    with pytest.raises(ValueError, match='strains must be symmetric'):
        run(_builder(codes, _al_mm(), parameters=orm.Dict({'bulk': {'strains': [0.01, 0.02]}})))
    with pytest.raises(ValueError, match="unknown keys \\['shift'\\]"):
        run(_builder(codes, _al_mm(), parameters=orm.Dict({'gb': {'shift': [2, 2]}})))


@pytest.mark.parametrize(
    ('mobility', 'words'),
    [
        ({'u0': 0.5}, r'u0 must be a driving energy in \(0, 0.1\] eV/atom'),
        ({'u0': 0}, 'u0 must be a driving energy'),
        ({'homologous_temperatures': [0.8]}, 'two or more distinct fractions of the melting point'),
        ({'homologous_temperatures': [0.8, 1.05]}, r'in \[0.3, 1\)'),
        ({'homologous_temperatures': [0.8, 0.8]}, 'distinct'),
        ({'melting_point': -900}, 'melting_point must be null'),
        ({'repeats': [2, 4, 2]}, 'nz >= 3'),
        ({'replicas': 0}, 'replicas must be an integer >= 1'),
        ({'lattice_steps': 100}, 'lattice_steps must be >= 150'),
        ({'blocks': 2}, 'blocks must be >= 3'),
        ({'steps': 50}, 'steps must cover at least 3 samples per block'),
        ({'discard': 100.0}, 'discard .* must be shorter than the driven run'),
        ({'timestep': 0.01}, 'timestep must be <= 0.005 ps'),
        ({'compute': 'yes'}, 'compute must be true or false'),
        ({'speed': 1}, r"parameters.mobility: unknown keys \['speed'\]"),
    ],
)
def test_bad_mobility_parameters_rejected(codes, mobility, words):
    """The mobility stage's settings are refused before submission, each with the fix named."""
    with pytest.raises(ValueError, match=words):
        run(_builder(codes, _al_mm(), parameters=orm.Dict({'mobility': mobility})))


def test_melting_point_of_the_mobility_runs():
    """The potential's own melting point where it is known (matched by md5), the element's with a 15 % std where not,
    and a clear error where neither is known (the work chain's validator returns it before submission)."""
    import hashlib

    from aiida_multiscale.engines.lammps.potentials import potential_melting_point

    path = potentials_folder() / 'Al_mm.eam.fs'
    own = potential_melting_point({'md5': hashlib.md5(path.read_bytes()).hexdigest()}, 'Al')
    assert own['own'] is True and own['value'] == 926.0 and 'Mendelev' in own['source']
    other = potential_melting_point({'md5': 'not-a-known-file'}, 'Al')
    assert (
        other['own'] is False
        and other['value'] == pytest.approx(933.47)
        and other['std'] == pytest.approx(0.15 * 933.47)
    )
    with pytest.raises(ValueError, match=r'melting point of Ar is not known.*parameters.mobility.melting_point'):
        potential_melting_point({'md5': None}, 'Ar')


def test_protocol_overrides_validated(codes):
    with pytest.raises(ValueError, match="unknown override key 'thresholds.a00'"):
        MdWorkChain.get_builder_from_protocol(codes['lmp'], 'Al', overrides={'thresholds': {'a00': 0.1}})
    builder = MdWorkChain.get_builder_from_protocol(codes['lmp'], 'Al', protocol='fast',
                                                    overrides={'thresholds': {'c44': None}})  # fmt: skip
    assert 'c44' not in builder.thresholds.get_dict()
    assert builder.parameters['gb']['shifts'] == [2, 2]
    assert set(MdWorkChain.get_available_protocols()) == {'fast', 'moderate', 'precise'}


def test_potential_class_attributes_intact(codes):
    """Workaround of the aiida-lammps get_or_create bug: each node keeps its own pair_style via the property."""
    from aiida_lammps.data.potential import LammpsPotentialData

    first = get_or_create_potential(potentials_folder() / 'Al_mm.eam.fs', 'Al')
    second = get_or_create_potential(potentials_folder() / 'Al_zhou.eam.alloy', 'Al')
    assert isinstance(LammpsPotentialData.__dict__['pair_style'], property)
    assert (first.pair_style, second.pair_style) == ('eam/fs', 'eam/alloy')
    assert second.base.attributes.get('title')


def test_default_potential_recorded(codes):
    """The default Al potential carries title, file name, md5 and the (honestly unknown) citation note."""
    builder = MdWorkChain.get_builder_from_protocol(codes['lmp'], 'Al')
    potential = builder.potential
    attributes = potential.base.attributes
    assert attributes.get('filename') == 'Al_mm.eam.fs'
    assert len(attributes.get('md5')) == 32
    assert 'Mendelev' in attributes.get('title')
    assert 'CITATION: Unknown' in attributes.get('description')


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (['--element', 'Al', '--potential', '/nonexistent/Al.eam.fs'], 'cannot be read'),
        (['--element', 'Al', '--potential', str(potentials_folder() / 'Cu_zhou.eam.alloy')], "provides species ['Cu']"),
        (['--element', 'Al', '--potential', str(potentials_folder() / 'README')], 'cannot tell the pair style'),
        (['--element', 'Fe'], "element 'Fe' is bcc"),
        (['--element', 'Cu', '--potential', str(potentials_folder() / 'library.meam')], 'is a MEAM library'),
        (['--element', 'Cu', '--potential', str(potentials_folder() / 'Cu.meam')], 'is a MEAM parameter file'),
        (['--element', 'Al', '--potential', str(potentials_folder() / 'CuNi.eam.alloy')],
         "provides species ['Ni', 'Cu'], not 'Al'"),
        (['--element', 'Al', '--dft', '999999999'], '--dft: no node'),
    ],
)  # fmt: skip
def test_cli_bad_input(codes, args, message):
    result = CliRunner().invoke(cli, ['launch', 'md', *args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert 'Traceback' not in result.output


def test_cli_dft_option_mock_dft_workchain(codes):
    """``--dft`` resolves a finished work chain, or one of its outputs, to its ``eos`` and ``elastic`` (a workfunction
    stands in for DftWorkChain here; the real one is exercised by the chain tests)."""
    from aiida.engine import workfunction

    from aiida_multiscale.cli.launch_md import load_dft_handoff
    from aiida_multiscale.data.handoff import HandoffData

    eos = HandoffData({'a0': {'value': 3.96, 'unit': 'angstrom'}}).store()
    elastic = HandoffData({n: {'value': v, 'unit': 'GPa'} for n, v in (('c11', 110), ('c12', 60), ('c44', 30))}).store()

    @workfunction
    def mock_dft(eos, elastic):
        return {'eos': eos, 'elastic': elastic}

    _, node = mock_dft.run_get_node(eos=eos, elastic=elastic)
    for identifier in (node.pk, node.uuid, eos.pk):
        found = load_dft_handoff(str(identifier))
        assert [n.uuid for n in found] == [eos.uuid, elastic.uuid]
    result = CliRunner().invoke(cli, ['launch', 'md', '--element', 'Al', '--dft', str(codes['lmp'].pk)])
    assert result.exit_code == 1 and 'not returned by a DftWorkChain' in result.output


def _handoff(quantities: dict, unit: str, **kwargs):
    from aiida_multiscale.data.handoff import HandoffData

    return HandoffData({n: {'value': v, 'unit': unit, 'std': s} for n, (v, s) in quantities.items()}, **kwargs).store()


@pytest.mark.parametrize(
    ('dft_a0', 'dft_c44', 'accept', 'verdict', 'failed'),
    [
        (3.959, 37.0, False, 'pass', []),  # pw.x 6.7, LDA Al.pz-vbc.UPF, 30 Ry: a0 3.959 A; C44 37 GPa at 32^3 k
        (3.959, 27.0, False, 'fail', ['c44']),  # C44 27 GPa at 24^3: Al_mm's 32.6 is 21 % above
        (3.959 * 1.3, 37.0, True, 'accepted_by_user', ['a0']),
    ],
)  # fmt: skip
def test_compare_potential_with_dft_calcfunction(codes, dft_a0, dft_c44, accept, verdict, failed):
    """Relative errors, first-order std and the verdict of the DFT check (no lmp: the MD numbers are given)."""
    from aiida_multiscale.data.handoff import HandoffData
    from aiida_multiscale.workflows.functions.md import compare_potential_with_dft

    md = HandoffData({
        'a0_md': {'value': 4.0453, 'unit': 'angstrom'},
        **{name: {'value': value, 'unit': 'GPa', 'std': std}
           for name, value, std in (('c11_md', 110.1, 0.8), ('c12_md', 61.4, 0.3), ('c44_md', 32.6, 0.1),
                                    ('bulk_modulus_md', 77.6, None))},
    }).store()  # fmt: skip
    eos = HandoffData({'a0': {'value': dft_a0, 'unit': 'angstrom', 'std': 0.002},
                       'bulk_modulus': {'value': 82.9, 'unit': 'GPa', 'std': 1.0}}).store()  # fmt: skip
    elastic = _handoff({'c11': (126.0, 2.0), 'c12': (61.0, 2.0), 'c44': (dft_c44, 2.0)}, 'GPa')
    check = compare_potential_with_dft(md, eos, elastic, orm.Dict({'a0': 0.03, 'c44': 0.15}), orm.Bool(accept))
    assert check.metadata['verdict'] == verdict
    assert [entry.split()[0] for entry in check.metadata['failed']] == failed
    assert check.value('a0_relative_error') == pytest.approx(4.0453 / dft_a0 - 1)
    c44 = check['c44_relative_error']
    assert c44.value == pytest.approx(32.6 / dft_c44 - 1)
    assert c44.std == pytest.approx(32.6 / dft_c44 * math.hypot(0.1 / 32.6, 2.0 / dft_c44))
    assert 'not checked' in check['bulk_modulus_relative_error'].note  # no threshold given for it
    assert check.creator.inputs.accept_potential.value is accept


def test_analyse_grain_boundary_on_recorded_runs(codes):
    """The calcfunction on recorded Al_zhou runs (FolderData as lammps.raw retrieves it): 0.357 J/m^2, std and the
    size difference; a second size that disagrees by 5 % shows in the metadata that drives exit 410."""
    import pathlib

    from aiida_multiscale.data.handoff import HandoffData
    from aiida_multiscale.workflows.functions.md import analyse_grain_boundary

    folder = pathlib.Path(__file__).parent / 'fixtures' / 'lammps' / 'gb_scan_al_zhou'
    scan = orm.FolderData(tree=folder).store()
    bulk = HandoffData({
        'a0_md': {'value': 4.08165490078, 'unit': 'angstrom'},
        'cohesive_energy': {'value': 3.57999865993, 'unit': 'eV'},
        **{f'{n}_md': {'value': v, 'unit': 'GPa', 'std': 0.1} for n, v in (('c11', 127.1), ('c12', 81.4), ('c44', 36))},
    }).store()  # fmt: skip
    parameters = orm.Dict({'gb': {'repeats': [1, 2, 3], 'size_check_repeats': [1, 3, 4]}})
    outputs = analyse_grain_boundary(bulk, parameters, scan, scan)
    md = outputs['md_properties']
    assert md.value('gb_energy', 'J/m^2') == pytest.approx(0.357, abs=0.003)
    assert md['gb_energy'].std == pytest.approx(0.0, abs=1e-6)  # two starts reached the minimum, same size twice
    assert md.metadata['gb']['relative_size_difference'] == 0.0
    assert set(md.names) == {'a0_md', 'cohesive_energy', 'c11_md', 'c12_md', 'c44_md', 'gb_energy'}
    assert (md.from_scale, md.to_scale) == ('md', 'mesoscale')
    assert len(outputs['gb_scan']['energies_small']) == 8

    # A "larger cell" whose energies are 5 % higher: the size difference is reported and exceeds the 2 % tolerance.
    lines = []
    for line in (folder / 'results.dat').read_text().splitlines():
        parts = line.split()
        natoms, energy = int(parts[2]), float(parts[3])
        parts[3] = repr(energy + 0.05 * (energy + natoms * 3.57999865993))
        lines.append(' '.join(parts))
    large = orm.FolderData()
    large.base.repository.put_object_from_bytes(('\n'.join(lines) + '\n').encode(), 'results.dat')
    large.base.repository.put_object_from_file(str(folder / 'lammps.out'), 'lammps.out')
    md = analyse_grain_boundary(bulk, parameters, scan, large.store())['md_properties']
    assert md.metadata['gb']['relative_size_difference'] == pytest.approx(0.05 / 1.05, rel=1e-3)
    assert md['gb_energy'].std == pytest.approx(0.05 * 0.357, rel=0.01)


# -- the restart layer and the inputs it replaced ----------------------------------------------------------------------
def test_builder_keeps_options_in_the_lammps_namespace(codes):
    """The protocol's options land at lammps.metadata.options (the restart chain's namespace), max_iterations too."""
    builder = MdWorkChain.get_builder_from_protocol(
        codes['lmp'], 'Al', protocol='fast', overrides={'options': {'max_wallclock_seconds': 900}}
    )
    options = builder.lammps.metadata.options
    assert options.max_wallclock_seconds == 900 and options.withmpi is False
    assert options.resources == {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    assert options.environment_variables == {'OMP_NUM_THREADS': '1'}
    assert builder.max_iterations.value == 3
    assert 'options' not in builder and 'max_walltime_restarts' not in builder


def _instantiate(builder):
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    return instantiate_process(get_manager().get_runner(), builder.process_class, **builder._inputs(prune=True))


def test_deprecated_inputs_mapped_with_a_warning(codes, caplog):
    """``max_walltime_restarts`` N -> ``max_iterations`` N + 1 and ``options`` -> ``lammps.metadata.options``, with a
    deprecation warning and a report naming the new input; options left out come from the protocol as before."""
    builder = _builder(codes, _al_mm(), max_walltime_restarts=orm.Int(1), options={'max_wallclock_seconds': 60})
    process = _instantiate(builder)
    with pytest.warns(AiidaDeprecationWarning) as caught:
        process.setup()
    assert {str(w.message).split('`')[1] for w in caught} == {'max_walltime_restarts', 'options'}
    assert process.ctx.max_iterations == 2
    assert process.ctx.options['max_wallclock_seconds'] == 60
    assert process.ctx.options['resources'] == {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    assert process.ctx.options['environment_variables'] == {'OMP_NUM_THREADS': '1'}
    reports = [record.getMessage() for record in caplog.records]
    assert any('use max_iterations = 2' in message for message in reports)
    assert any('use lammps.metadata.options' in message for message in reports)


def test_max_walltime_restarts_validated():
    """A negative number of restarts is refused when the deprecated input is set, before anything is submitted."""
    builder = MdWorkChain.get_builder()
    with pytest.raises(ValueError, match='max_walltime_restarts must be >= 0'):
        builder.max_walltime_restarts = orm.Int(-1)


@pytest.mark.parametrize(
    ('seconds', 'limit', 'iteration', 'expected'),
    [(60, 86400, 1, 120), (1000, 1500, 1, 1500), (120, 120, 1, 320), (60, 86400, 3, 401)],
)
def test_walltime_handler_fake_killed_calculation(codes, seconds, limit, iteration, expected):
    """The handler of ``LammpsRawBaseWorkChain`` on a faked killed run (a stored node with exit status 120): twice the
    time, capped at ``max_wallclock_seconds_limit``; 320 when the limit is reached, 401 when max_iterations (3) is."""
    from aiida_multiscale.workflows.base.lammps import PARSER_NAME, LammpsRawBaseWorkChain

    builder = LammpsRawBaseWorkChain.get_builder()
    builder.lammps.code = codes['lmp']
    builder.lammps.script = orm.SinglefileData(io.BytesIO(b'print "hello"\n'), filename='input.in')
    builder.lammps.metadata.options = {'resources': {'num_machines': 1}, 'max_wallclock_seconds': seconds}
    builder.max_iterations = orm.Int(3)
    builder.max_wallclock_seconds_limit = orm.Int(limit)
    process = _instantiate(builder)
    process.setup()
    assert process.ctx.inputs.metadata['options']['parser_name'] == PARSER_NAME
    process.ctx.iteration = iteration

    node = orm.CalcJobNode(computer=codes['lmp'].computer, process_type='aiida.calculations:lammps.raw')
    node.set_option('resources', {'num_machines': 1})
    node.set_option('max_wallclock_seconds', seconds)
    node.store()
    node.set_exit_status(120)
    report = process.handle_out_of_walltime(node)
    assert report.do_break
    if expected in (320, 401):
        assert report.exit_code.status == expected
        assert process.ctx.inputs.metadata['options']['max_wallclock_seconds'] == seconds
    else:
        assert report.exit_code.status == 0
        assert process.ctx.inputs.metadata['options']['max_wallclock_seconds'] == expected
