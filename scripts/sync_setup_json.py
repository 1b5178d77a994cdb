"""Write setup.json (for the AiiDA plugin registry) from pyproject.toml, so the two never disagree.

Run after changing the name, version, description, dependencies or entry points:
`.venv/bin/python scripts/sync_setup_json.py`.
tests/test_packaging.py fails when they disagree.
"""

import json
import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def expected_setup_json() -> dict:
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    version = re.search(r"__version__ = '([^']+)'", (ROOT / 'aiida_multiscale' / '__init__.py').read_text()).group(1)
    entry_points = {
        group: [f'{name} = {target}' for name, target in points.items()]
        for group, points in project.get('entry-points', {}).items()
    }
    entry_points['console_scripts'] = [f'{name} = {target}' for name, target in project.get('scripts', {}).items()]
    return {
        'name': project['name'],
        'version': version,
        'description': project['description'],
        'author': ', '.join(a['name'] for a in project.get('authors', [])),
        'license': project['license']['text'],
        'classifiers': project['classifiers'],
        'python_requires': project['requires-python'],
        'install_requires': project['dependencies'],
        'extras_require': project.get('optional-dependencies', {}),
        'entry_points': entry_points,
        'reentry_register': True,
    }


if __name__ == '__main__':
    (ROOT / 'setup.json').write_text(json.dumps(expected_setup_json(), indent=4) + '\n')
    print('setup.json written')
