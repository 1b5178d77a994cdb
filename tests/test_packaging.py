"""Packaging: setup.json agrees with pyproject.toml, every entry point loads, docker-compose matches the docs."""

import json
import pathlib
import re
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.unit


def test_setup_json_matches_pyproject():
    """setup.json (AiiDA plugin registry) must carry the same name, version, description and entry points."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('sync', ROOT / 'scripts' / 'sync_setup_json.py')
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    actual = json.loads((ROOT / 'setup.json').read_text())
    expected = sync.expected_setup_json()
    for key in ('name', 'version', 'description', 'entry_points', 'install_requires', 'classifiers'):
        assert actual[key] == expected[key], (
            f'setup.json {key!r} differs from pyproject.toml: run scripts/sync_setup_json.py'
        )


def test_pyproject_basics():
    data = tomllib.loads((ROOT / 'pyproject.toml').read_text())
    assert data['build-system']['build-backend'] == 'hatchling.build'
    project = data['project']
    assert project['name'] == 'aiida-multiscale'
    assert 'Framework :: AiiDA' in project['classifiers']
    for dependency in (
        'aiida-core',
        'aiida-quantumespresso',
        'aiida-lammps',
        'aiida-pseudo',
        'ase',
        'numpy',
        'scipy',
        'pint',
        'netCDF4',
    ):
        assert any(d.startswith(dependency) for d in project['dependencies']), dependency
    assert set(project['optional-dependencies']) >= {'codes', 'tests', 'docs'}
    assert any(d.startswith('lammps[mpi]') for d in project['optional-dependencies']['codes'])
    assert data['tool']['ruff']['format']['quote-style'] == 'single'


def test_every_entry_point_loads():
    """Each registered entry point resolves to a class of the right AiiDA kind (so `verdi plugin list` works)."""
    from aiida import engine, orm, parsers
    from aiida.plugins import entry_point

    kinds = {
        'aiida.calculations': engine.CalcJob,
        'aiida.parsers': parsers.Parser,
        'aiida.data': orm.Data,
        'aiida.workflows': engine.WorkChain,
    }
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    for group, points in project['entry-points'].items():
        for name in points:
            cls = entry_point.load_entry_point(group, name)
            assert issubclass(cls, kinds[group]), f'{group}:{name} -> {cls}'


def test_docker_compose_matches_profile_setup_and_docs():
    """No Docker engine runs here: check the compose file against scripts/profile.sh and docs/docker.md instead."""
    compose = yaml.safe_load((ROOT / 'docker-compose.yml').read_text())
    services = compose['services']
    assert set(services) == {'postgres', 'rabbitmq', 'aiida'}
    assert '5432:5432' in services['postgres']['ports']
    assert '5672:5672' in services['rabbitmq']['ports']
    assert services['rabbitmq']['environment'] == {'RABBITMQ_DEFAULT_USER': 'guest', 'RABBITMQ_DEFAULT_PASS': 'guest'}
    mounted = ' '.join(services['rabbitmq']['volumes'])
    config = (ROOT / 'docker' / 'rabbitmq-advanced.config').read_text()
    assert 'advanced.config' in mounted and '{consumer_timeout, undefined}' in config

    env = services['aiida']['environment']
    assert env['AIIDA_MULTISCALE_PGHOST'] == 'postgres' and env['AIIDA_MULTISCALE_BROKER_HOST'] == 'rabbitmq'
    assert env['AIIDA_MULTISCALE_PGPORT'] == '5432' and env['AIIDA_MULTISCALE_BROKER_PORT'] == '5672'

    # Every variable the compose file sets is one that scripts/profile.sh reads, with the same default credentials.
    profile_sh = (ROOT / 'scripts' / 'profile.sh').read_text()
    for key, value in env.items():
        assert f'{key}:-' in profile_sh, f'{key} is not read by scripts/profile.sh'
        if key in (
            'AIIDA_MULTISCALE_DBUSER',
            'AIIDA_MULTISCALE_DBPASS',
            'AIIDA_MULTISCALE_BROKER_USER',
            'AIIDA_MULTISCALE_BROKER_PASS',
            'AIIDA_MULTISCALE_PGSUPERUSER',
            'AIIDA_MULTISCALE_PROFILE',
        ):
            assert f'{key}:-{value}}}' in profile_sh, f'{key} default differs from docker-compose.yml'

    docs = (ROOT / 'docs' / 'docker.md').read_text()
    for name in services:
        assert f'`{name}`' in docs
    assert 'aiida_multiscale' in docs and 'guest' in docs and '5432' in docs and '5672' in docs
    installation = (ROOT / 'docs' / 'installation.md').read_text()
    assert '`aiida_multiscale` (password `aiida_multiscale`)' in installation


def test_ci_runs_the_lint_then_the_readme_test_command():
    readme = (ROOT / 'README.md').read_text()
    assert 'make demo' in readme and 'make test' in readme
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'make lint' in ci and 'make test' in ci and ci.index('make lint') < ci.index('make test')
    lint = (ROOT / 'Makefile').read_text().split('\nlint:', 1)[1].split('\n\n', 1)[0]
    assert 'ruff check' in lint and 'ruff format --check' in lint


def test_make_demo_runs_the_demo_command():
    """`make demo` runs `aiida-multiscale demo`, and `make setup` passes the checkout's MOOSE launcher explicitly."""
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    makefile = (ROOT / 'Makefile').read_text()
    demo = makefile.split('\ndemo:', 1)[1].split('\n\n', 1)[0]
    assert 'aiida-multiscale -p $(PROFILE) demo' in demo
    setup = makefile.split('\nsetup:', 1)[1].split('\n\n', 1)[0]
    assert 'setup --moose $(ROOT)/.codes/bin/moose' in setup
    # What the docs promise `make demo` runs: the fast Al chain, output written to demo_output.
    result = CliRunner().invoke(cli, ['demo', '--help'])
    assert result.exit_code == 0, result.output
    text = ' '.join(result.output.split())
    assert '--element TEXT Chemical symbol of the cubic metal. [default: Al]' in text
    assert 'Protocol of every rung. [default: fast]' in text and '[default: demo_output]' in text
    result = CliRunner().invoke(cli, ['demo', '--timeout', '-1'])
    assert result.exit_code == 2 and "'--timeout': -1.0 is not in the range x>=0." in ' '.join(result.output.split())


def test_package_does_not_reach_into_the_checkout():
    """An installed package has no source checkout around it: no module may look for `.codes/` next to itself."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / 'aiida_multiscale').rglob('*.py')
        if re.search(r"""\.codes['"/]""", path.read_text())
    ]
    assert not offenders


def _imported_top_level_modules(folder: pathlib.Path) -> set[str]:
    import ast
    import sys

    names = set()
    for path in folder.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split('.')[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != folder.name}


def test_every_imported_package_is_declared():
    """Each third-party package the plugin imports is a dependency in pyproject.toml, not a transitive accident."""
    import importlib.metadata

    def normalize(name: str) -> str:
        return re.sub(r'[-_.]+', '-', name).lower()

    dependencies = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']
    declared = {normalize(re.split(r'[\s\[<>=~!;]', requirement, maxsplit=1)[0]) for requirement in dependencies}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module in _imported_top_level_modules(ROOT / 'aiida_multiscale'):
        provided_by = {normalize(name) for name in distributions.get(module, [module])}
        if not provided_by & declared:
            missing[module] = sorted(provided_by)
    assert not missing, f'imported but not declared in [project] dependencies: {missing}'
