"""The ``aiida-multiscale`` command line: set-up, launching rungs and the chain, status, tracing."""

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import options, types


@click.group('aiida-multiscale', cls=VerdiCommandGroup, context_settings={'help_option_names': ['-h', '--help']})
@options.PROFILE(type=types.ProfileParamType(load_profile=True), expose_value=False)
def cli():
    """Run and trace the DFT -> MD -> phase-field -> FEM multi-scale chain with AiiDA."""


@cli.group('launch')
def cmd_launch():
    """Launch one rung, or the whole chain."""


# The subcommands register themselves on `cli` / `cmd_launch` when imported, so they must come after both exist.
from aiida_multiscale.cli import (  # noqa: E402,F401
    chain,
    demo,
    launch_dft,
    launch_fem,
    launch_md,
    launch_moose,
    launch_phase_field,
    pseudos,
    reproduce,
    serve,
    setup,
)
