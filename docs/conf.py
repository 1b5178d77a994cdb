"""Sphinx configuration for aiida-multiscale (MyST markdown, aiida.sphinxext for process specs, sphinx-click)."""

from aiida import load_profile
from aiida.storage.sqlite_temp import SqliteTempBackend

import aiida_multiscale

# aiida.sphinxext's process directives call load_profile() to build each spec (port defaults are nodes).  A throw-away
# in-memory profile keeps the build independent of the machine's AiiDA configuration: it needs no config.json, no
# PostgreSQL and no RabbitMQ, and it never touches a user's profile.
load_profile(SqliteTempBackend.create_profile('aiida-multiscale-docs'), allow_switch=True)

project = 'aiida-multiscale'
author = 'The aiida-multiscale developers'
copyright = '2026, The aiida-multiscale developers'  # noqa: A001
version = release = aiida_multiscale.__version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx_click',
    'aiida.sphinxext',
]
myst_enable_extensions = ['colon_fence', 'deflist', 'dollarmath']
myst_heading_anchors = 3
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
exclude_patterns = ['_build']
html_theme = 'furo'
html_title = 'aiida-multiscale'
nitpicky = False
suppress_warnings = ['myst.header']

# aiida-core's own deprecation notices (Model, objects) surface while autodoc inspects Data classes; they are not ours.
import warnings  # noqa: E402

from aiida.common.warnings import AiidaDeprecationWarning  # noqa: E402

warnings.filterwarnings('ignore', category=AiidaDeprecationWarning)
