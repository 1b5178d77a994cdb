"""Resources per rung: protocol ``options`` < builder ``options`` < CLI flags, checked against the code before submit.

The checks are proved on the real codes of the test profile (pw with ``with_mpi`` open, lmp and MOOSE serial), the
job scripts a real Slurm computer would get (CalcJob dry runs, nothing queued), and one real pw.x SCF on two MPI
ranks.
"""

from __future__ import annotations

import io
import json
import pathlib
import re
from importlib import resources as package_files

import pytest
import yaml
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage.caching import disable_caching
from click.testing import CliRunner

from aiida_multiscale.cli import cli
from aiida_multiscale.resources import (
    ResourceError,
    builder_options,
    merge_options,
    normalise_options,
    options_from_flags,
    resolve_options,
    split_chain_options,
)

PROTOCOL = {
    'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
    'max_wallclock_seconds': 3600,
    'withmpi': False,
}


# ---------------------------------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_options_from_flags_keeps_only_given_flags():
    assert options_from_flags() == {}
    assert options_from_flags(num_mpiprocs_per_machine=4, queue='debug', account='p1', withmpi=False) == {
        'resources': {'num_mpiprocs_per_machine': 4},
        'queue_name': 'debug',
        'account': 'p1',
        'withmpi': False,
    }


@pytest.mark.unit
def test_normalise_aliases_and_caller_dict_untouched():
    given = {'queue': 'short', 'num_machines': 2, 'resources': {'num_mpiprocs_per_machine': 8}}
    before = json.dumps(given, sort_keys=True)
    assert normalise_options(given) == {
        'queue_name': 'short',
        'resources': {'num_machines': 2, 'num_mpiprocs_per_machine': 8},
    }
    assert json.dumps(given, sort_keys=True) == before
    with pytest.raises(ResourceError, match='MD rung: options must be a dict'):
        normalise_options(['num_machines', 2], 'md')


@pytest.mark.unit
def test_merge_resources_key_by_key_and_none_removes():
    merged = merge_options(PROTOCOL, {'resources': {'num_mpiprocs_per_machine': 4}, 'max_wallclock_seconds': None})
    assert merged == {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 4}, 'withmpi': False}
    assert PROTOCOL['max_wallclock_seconds'] == 3600  # the protocol dict is not mutated


@pytest.mark.unit
def test_split_chain_options_common_and_per_rung():
    split = split_chain_options({'max_wallclock_seconds': 600, 'queue': 'q', 'dft': {'withmpi': True, 'queue': 'big'}})
    assert split['dft'] == {'max_wallclock_seconds': 600, 'queue_name': 'big', 'withmpi': True}
    assert split['md'] == split['fem'] == split['phase_field'] == {'max_wallclock_seconds': 600, 'queue_name': 'q'}
    assert split_chain_options(None) == {rung: {} for rung in ('dft', 'md', 'phase_field', 'fem')}
    with pytest.raises(ResourceError, match=r"chain: options\['md'\] must be a dict"):
        split_chain_options({'md': 4})


# ---------------------------------------------------------------------------------------------------------------------
# Checks against the real codes of the profile
# ---------------------------------------------------------------------------------------------------------------------
def test_protocol_withmpi_yields_to_the_code(codes):
    # lmp@localhost fixes with_mpi=False, pw leaves it open: the protocol's False is used for pw only as a default.
    assert codes['lmp'].with_mpi is False and codes['pw'].with_mpi is None
    assert resolve_options('md', codes['lmp'], {**PROTOCOL, 'withmpi': True})['withmpi'] is False
    assert resolve_options('dft', codes['pw'], PROTOCOL)['withmpi'] is False
    resolved = resolve_options('dft', codes['pw'], PROTOCOL, {'withmpi': True, 'num_mpiprocs_per_machine': 2})
    assert resolved == {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2},
        'max_wallclock_seconds': 3600,
        'withmpi': True,
    }


@pytest.mark.parametrize(
    ('rung', 'code', 'options', 'threads', 'message'),
    [
        (
            'md',
            'lmp',
            {'withmpi': True},
            1,
            'MD rung: withmpi=True but code lmp@localhost is set up with with_mpi=False',
        ),
        ('md', 'lmp', {'num_mpiprocs_per_machine': 2}, 1, 'code lmp@localhost is serial (with_mpi=False)'),
        ('dft', 'pw', {'num_mpiprocs_per_machine': 2}, 1, 'DFT rung: 2 MPI processes requested but withmpi is False'),
        ('dft', 'pw', {'num_machines': 2}, 1, 'pass withmpi=True (--withmpi)'),
        ('fem', 'moose', {'withmpi': True}, 1, 'setup --mpi-code'),
        ('phase_field', 'moose', {'num_cores_per_mpiproc': 1}, 2, 'phase-field rung: the code runs 2 threads per MPI'),
        ('dft', 'pw', {'max_wallclock_seconds': 0}, 1, 'DFT rung: max_wallclock_seconds=0 must be a positive'),
        ('dft', 'pw', {'withmpi': 'yes'}, 1, "DFT rung: option withmpi='yes' is not valid; give True or False"),
        ('dft', 'pw', {'queue_nmae': 'x'}, 1, "DFT rung: unknown option 'queue_nmae'; PwCalculation accepts:"),
        ('fem', 'moose', {'resources': {'num_machines': 0}}, 1, 'FEM rung: resources {'),
    ],
)
def test_bad_combinations_name_rung_problem_and_fix(codes, rung, code, options, threads, message):
    with pytest.raises(ResourceError) as excinfo:
        resolve_options(rung, codes[code], PROTOCOL, options, threads=threads)
    assert message in str(excinfo.value)


def test_cores_of_the_computer_not_exceeded(codes):
    available = codes['pw'].computer.get_default_mpiprocs_per_machine()
    too_many = {'withmpi': True, 'num_mpiprocs_per_machine': available + 1}
    with pytest.raises(ResourceError, match=f'has {available} per machine'):
        resolve_options('dft', codes['pw'], PROTOCOL, too_many)
    # MOOSE threads count too: threads x ranks is what the job occupies.
    with pytest.raises(ResourceError, match=rf'1 MPI processes x {available + 1} threads per machine'):
        resolve_options('phase_field', codes['moose'], PROTOCOL, None, threads=available + 1)


def test_threads_set_cores_per_mpiproc(codes):
    resolved = resolve_options('fem', codes['moose'], PROTOCOL, {'queue': 'q', 'account': 'acc'}, threads=2)
    assert resolved['resources'] == {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 2}
    assert resolved['queue_name'] == 'q' and resolved['account'] == 'acc'


# ---------------------------------------------------------------------------------------------------------------------
# Builders: protocol options, overrides, options=
# ---------------------------------------------------------------------------------------------------------------------
def test_builders_use_protocol_options_and_options_override(codes, pseudo_family):
    from aiida_multiscale.workflows.dft import DftWorkChain
    from aiida_multiscale.workflows.fem import FemWorkChain
    from aiida_multiscale.workflows.md import MdWorkChain
    from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

    dft = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Al', protocol='fast', options={'withmpi': True, 'num_mpiprocs_per_machine': 2}
    )
    assert dft.scf.pw.metadata.options.resources == {'num_machines': 1, 'num_mpiprocs_per_machine': 2}
    assert dft.scf.pw.metadata.options.max_wallclock_seconds == 3600  # from dft.yaml
    md = MdWorkChain.get_builder_from_protocol(
        codes['lmp'], 'Al', protocol='fast', overrides={'options': {'max_wallclock_seconds': 900}}
    )
    assert builder_options(md)['md'] == {
        **PROTOCOL,
        'max_wallclock_seconds': 900,
        'environment_variables': {'OMP_NUM_THREADS': '1'},
    }
    with pytest.raises(ResourceError, match='MD rung'):
        MdWorkChain.get_builder_from_protocol(codes['lmp'], 'Al', options={'num_mpiprocs_per_machine': 2})
    phase_field = PhaseFieldWorkChain.get_builder_from_protocol(
        codes['moose'], protocol='fast', overrides={'parameters': {'threads': 2}}, options={'queue': 'pf'}
    )
    options = phase_field.moose.metadata.options
    assert options.resources['num_cores_per_mpiproc'] == 2 and options.queue_name == 'pf'
    assert options.max_wallclock_seconds == 7200  # from phase_field.yaml
    fem = FemWorkChain.get_builder_from_protocol(codes['moose'], protocol='fast', options={'account': 'a'})
    assert fem.moose.metadata.options.account == 'a' and fem.moose.metadata.options.withmpi is False


def test_chain_builder_per_rung_options(codes, pseudo_family):
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    builder = MultiscaleWorkChain.get_builder_from_protocol(
        'Al',
        protocol='fast',
        codes=codes,
        options={'max_wallclock_seconds': 1200, 'dft': {'withmpi': True, 'num_mpiprocs_per_machine': 2}},
    )
    options = builder_options(builder)
    assert options['dft']['resources']['num_mpiprocs_per_machine'] == 2 and options['dft']['withmpi'] is True
    for rung in ('md', 'phase_field', 'fem'):
        assert options[rung]['resources']['num_mpiprocs_per_machine'] == 1, rung
        assert options[rung]['withmpi'] is False, rung
    assert {rung: value['max_wallclock_seconds'] for rung, value in options.items()} == dict.fromkeys(options, 1200)
    # The same MPI request for the serial lmp is refused, naming the rung.
    with pytest.raises(ResourceError, match='MD rung'):
        MultiscaleWorkChain.get_builder_from_protocol(
            'Al', protocol='fast', codes=codes, options={'withmpi': True, 'num_mpiprocs_per_machine': 2}
        )


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------
def _invoke(*arguments):
    return CliRunner().invoke(cli, ['launch', *arguments])


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['dft', '--element', 'Al', '--num-mpiprocs-per-machine', '2'], 'DFT rung: 2 MPI processes requested'),
        (['md', '--element', 'Al', '--withmpi'], 'MD rung: withmpi=True but code lmp@localhost'),
        (['md', '--element', 'Al', '--num-mpiprocs-per-machine', '4'], 'code lmp@localhost is serial (with_mpi=False)'),
        (['phase-field', '--num-machines', '2'], 'phase-field rung: 2 MPI processes requested'),
        (
            ['dft', '--element', 'Al', '--max-wallclock-seconds', '0'],
            "'--max-wallclock-seconds': 0 is not in the range",
        ),
        (['chain', '--element', 'Al', '--md-num-mpiprocs-per-machine', '2'], 'MD rung: 2 MPI processes requested'),
        (['chain', '--element', 'Al', '--fem-withmpi'], 'FEM rung: withmpi=True but code moose@localhost'),
    ],
)
def test_cli_rejects_bad_combinations(codes, pseudo_family, arguments, message):
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = _invoke(*arguments)
    assert result.exit_code != 0
    assert message in result.output
    assert 'Traceback' not in result.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_cli_help_states_the_flags_and_their_defaults_per_rung():
    """Every resource flag says it defaults to the protocol and shows its range; the chain's protocol and anneal
    temperature defaults are the ones of chain.yaml and phase_field.yaml (read here with yaml)."""
    folder = package_files.files('aiida_multiscale.workflows.protocols')
    chain_file = yaml.safe_load((folder / 'chain.yaml').read_text())
    anneal = yaml.safe_load((folder / 'phase_field.yaml').read_text())['default_inputs']['anneal']

    single = ' '.join(_invoke('md', '--help').output.split())
    for flag in ('num-machines', 'num-mpiprocs-per-machine', 'max-wallclock-seconds'):
        assert re.search(rf'--{flag} INTEGER RANGE [^\[]*\[default: protocol\] \[x>=1\]', single), flag
    for flag in ('queue', 'account'):
        assert re.search(rf'--{flag} TEXT [^\[]*\[default: protocol\]', single), flag
    assert '--withmpi / --no-withmpi' in single and "[default: the code's with_mpi, else the protocol's]" in single
    chain = ' '.join(_invoke('chain', '--help').output.split())
    for prefix in ('dft', 'md', 'phase-field', 'fem'):
        for flag in ('num-machines', 'num-mpiprocs-per-machine', 'max-wallclock-seconds'):
            assert re.search(rf'--{prefix}-{flag} INTEGER RANGE [^\[]*\[default: protocol\] \[x>=1\]', chain)
        for flag in ('queue', 'account'):
            assert re.search(rf'--{prefix}-{flag} TEXT [^\[]*\[default: protocol\]', chain)
        assert f'--{prefix}-withmpi / --no-{prefix}-withmpi' in chain
    assert f'Protocol of every rung (default: {chain_file["default_protocol"]}).' in chain
    assert f'Anneal temperature in K (default: {anneal["temperature"]["homologous"]} T_melt).' in chain


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['--md-num-machines', '0'], "'--md-num-machines': 0 is not in the range x>=1."),
        (['--fem-num-mpiprocs-per-machine', '-1'], "'--fem-num-mpiprocs-per-machine': -1 is not in the range x>=1."),
        (['--dft-max-wallclock-seconds', 'soon'], "'soon' is not a valid integer range."),
    ],
)
def test_cli_bad_flag_values_are_refused_by_the_parser(arguments, message):
    """Out-of-range resource values stop at the command line (usage error, exit 2) with click's message."""
    result = _invoke('chain', '--element', 'Al', *arguments)
    assert result.exit_code == 2
    assert message in ' '.join(result.output.split())


def test_cli_chain_dry_run_options_per_rung(codes, pseudo_family):
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = _invoke(
        'chain', '--element', 'Al', '--protocol', 'fast', '--dry-run',
        '--dft-num-mpiprocs-per-machine', '2', '--dft-withmpi', '--dft-queue', 'big', '--dft-account', 'proj',
        '--md-max-wallclock-seconds', '600', '--no-fem-withmpi',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary['process_label'] == 'MultiscaleWorkChain'
    dft, md = summary['options']['dft'], summary['options']['md']
    assert dft['resources'] == {'num_machines': 1, 'num_mpiprocs_per_machine': 2}
    assert (dft['withmpi'], dft['queue_name'], dft['account']) == (True, 'big', 'proj')
    assert md['max_wallclock_seconds'] == 600 and 'queue_name' not in md
    assert summary['options']['fem']['withmpi'] is False
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before  # nothing submitted


# ---------------------------------------------------------------------------------------------------------------------
# What reaches the scheduler: Slurm job scripts from CalcJob dry runs (nothing is queued)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def slurm_moose(codes, tmp_path_factory):
    """The MOOSE executable on a ``core.slurm`` computer (4 cores per machine); only used for dry runs."""
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.load_computer('resources-slurm')
    except NotExistent:
        computer = orm.Computer(
            label='resources-slurm',
            hostname='localhost',
            transport_type='core.local',
            scheduler_type='core.slurm',
            workdir=str(tmp_path_factory.mktemp('resources_slurm')),
        ).store()
        computer.set_default_mpiprocs_per_machine(4)
        computer.configure(safe_interval=0.0)
    code = orm.InstalledCode(
        computer=computer,
        filepath_executable=str(codes['moose'].filepath_executable),
        default_calc_job_plugin='multiscale.moose',
        with_mpi=None,
        label='moose-resources',
    )
    return code.store()


def test_slurm_script_from_phase_field_options(slurm_moose):
    from aiida_multiscale.calculations.moose import MooseCalculation
    from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

    builder = PhaseFieldWorkChain.get_builder_from_protocol(
        slurm_moose,
        protocol='fast',
        overrides={'parameters': {'threads': 2}},
        options={'withmpi': True, 'num_mpiprocs_per_machine': 2, 'queue': 'debug', 'account': 'proj'},
    )
    calculation = MooseCalculation.get_builder()
    calculation.code = slurm_moose
    calculation.input_file = orm.SinglefileData(io.BytesIO(b'[Mesh]\n[]\n'), filename='moose.i')
    calculation.threads = orm.Int(2)  # what the work chain passes from parameters.threads
    calculation.metadata.options = dict(builder.moose.metadata.options)
    calculation.metadata.dry_run = True
    calculation.metadata.store_provenance = False
    _, node = run_get_node(calculation)
    script = (pathlib.Path(node.dry_run_info['folder']) / '_aiidasubmit.sh').read_text()
    for line in ('#SBATCH --partition=debug', '#SBATCH --account=proj', '#SBATCH --nodes=1',
                 '#SBATCH --ntasks-per-node=2', '#SBATCH --cpus-per-task=2', '#SBATCH --time=02:00:00'):  # fmt: skip
        assert line in script, script
    assert "'--n-threads=2'" in script
    # 2 ranks x 2 threads = 4 cores of the 4; one more thread does not fit.
    with pytest.raises(ResourceError, match='2 MPI processes x 3 threads per machine need 6 cores'):
        PhaseFieldWorkChain.get_builder_from_protocol(
            slurm_moose,
            protocol='fast',
            overrides={'parameters': {'threads': 3}},
            options={'withmpi': True, 'num_mpiprocs_per_machine': 2},
        )


# ---------------------------------------------------------------------------------------------------------------------
# A real pw.x SCF on two MPI ranks
# ---------------------------------------------------------------------------------------------------------------------
#: pw.x >= 7 prints 'Number of MPI processes: N'; Debian's 6.7 prints 'Parallel version (MPI), running on N processors'.
MPI_PROCESSES = re.compile(r'(?:Number of MPI processes:|Parallel version \(MPI\), running on)\s+(\d+)')


def _al_scf(build_al_scf, code, family, options):
    from aiida.plugins import CalculationFactory

    base = build_al_scf(code, family, lattice_constant=4.05, ecutwfc=20.0, kmesh=6)
    builder = CalculationFactory('quantumespresso.pw').get_builder()
    for key in ('code', 'structure', 'pseudos', 'parameters'):
        setattr(builder, key, base.pw[key])
    builder.kpoints = base.kpoints
    builder.metadata.options = options
    return run_get_node(builder)


@pytest.mark.real_code
def test_real_pw_scf_on_two_mpi_ranks(codes, pseudo_family, build_al_scf):
    """The options of ``launch dft --num-mpiprocs-per-machine 2 --withmpi`` run pw.x on 2 ranks, same energy as 1."""
    result = _invoke(
        'dft', '--element', 'Al', '--protocol', 'fast', '--num-mpiprocs-per-machine', '2', '--withmpi',
        '--max-wallclock-seconds', '600', '--dry-run',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    options = json.loads(result.output.strip().splitlines()[-1])['options']['dft']
    assert options == {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2},
        'max_wallclock_seconds': 600,
        'withmpi': True,
    }
    energies = {}
    # Caching off: a cached node would not prove that this run used two ranks.
    for ranks, run_options in ((2, options), (1, resolve_options('dft', codes['pw'], PROTOCOL))):
        with disable_caching():
            results, node = _al_scf(build_al_scf, codes['pw'], pseudo_family, run_options)
        assert node.is_finished_ok, node.exit_message
        assert node.get_option('resources')['num_mpiprocs_per_machine'] == ranks
        assert node.get_option('withmpi') is (ranks > 1)
        output = node.outputs.retrieved.base.repository.get_object_content('aiida.out')
        # Two serial copies started by a foreign mpirun would each say 1 (as the venv's MPICH mpirun did).
        found = MPI_PROCESSES.search(output)
        script = node.base.repository.get_object_content('_aiidasubmit.sh')
        assert (int(found.group(1)) if found else 1) == ranks, script + output[:1000]
        energies[ranks] = results['output_parameters']['energy']
    # Distributing the plane waves over two ranks must not change the physics.
    assert abs(energies[2] - energies[1]) < 1e-5  # eV


def test_moose_calculation_port_validator(codes):
    """A MooseCalculation built by hand is checked at submission too, before anything is stored."""
    from aiida_multiscale.calculations.moose import MooseCalculation

    def builder(threads, **options):
        calculation = MooseCalculation.get_builder()
        calculation.code = codes['moose']
        calculation.input_file = orm.Str('[Mesh]\n[]\n')
        calculation.threads = orm.Int(threads)
        calculation.metadata.options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, **options}
        return calculation

    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match='MooseCalculation: the code runs 2 threads per MPI process'):
        run_get_node(
            builder(2, resources={'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 1})
        )
    with pytest.raises(ValueError, match='code moose@localhost is serial'):
        run_get_node(builder(1, resources={'num_machines': 1, 'num_mpiprocs_per_machine': 2}))
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before
