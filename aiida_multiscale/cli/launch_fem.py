"""``aiida-multiscale launch fem``: effective elastic constants and (with --element) yield strength with MOOSE."""

from __future__ import annotations

import click

from aiida_multiscale.cli import cmd_launch
from aiida_multiscale.cli.utils import DRY_RUN, echo_error, launch, load_input_node, resource_options

__all__ = ('cmd_launch_fem',)


@cmd_launch.command('fem')
@click.option(
    '--microstructure',
    'microstructure_pk',
    required=True,
    help='PK/UUID of a MicrostructureData, or of a finished PhaseFieldWorkChain (its `microstructure`).',
)
@click.option(
    '--dft',
    'dft_pk',
    default=None,
    help='PK/UUID of an elastic HandoffData (c11, c12, c44), or of a finished DftWorkChain (its `elastic`).',
)
@click.option('--c11', type=float, default=None, help='C11 in GPa (instead of --dft).')
@click.option('--c12', type=float, default=None, help='C12 in GPa (instead of --dft).')
@click.option('--c44', type=float, default=None, help='C44 in GPa (instead of --dft).')
@click.option(
    '--protocol',
    type=click.Choice(['fast', 'moderate', 'precise']),
    default=None,
    help='Mesh resolution: 0.5, 1 or 2 elements per pixel of the grain map [default: moderate].',
)
@click.option('--applied-strain', type=float, default=None, help='Tensile strain along x [default: 1e-3].')
@click.option(
    '--element',
    default=None,
    help='Chemical symbol of the fcc metal (stored assumptions: Al, Cu): also run the crystal-plasticity RVE for the '
    'yield strength [default: elastic constants only].',
)
@click.option('--code', 'code_label', default='moose@localhost', show_default=True, help='Label of the MOOSE code.')
@click.option('--wait', is_flag=True, help='Wait for the work chain to finish; exit non-zero if it failed.')
@click.option('--json', 'as_json', is_flag=True, help='Print the result as one JSON line at the end.')
@resource_options()
@DRY_RUN
def cmd_launch_fem(
    microstructure_pk, dft_pk, c11, c12, c44, protocol, applied_strain, element, code_label, wait, as_json, options,
    dry_run,
):  # fmt: skip
    """Launch FemWorkChain: the periodic RVE of the grain map (effective Cij, E, nu) and, with --element, its yield
    strength by crystal plasticity."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_multiscale.data.handoff import HandoffData
    from aiida_multiscale.data.microstructure import MicrostructureData
    from aiida_multiscale.workflows.fem import FemWorkChain

    constants = {'c11': c11, 'c12': c12, 'c44': c44}
    given = [name for name, value in constants.items() if value is not None]
    if dft_pk is not None and given:
        echo_error('give either --dft or --c11/--c12/--c44, not both')
    if dft_pk is None and len(given) != 3:
        echo_error('elastic constants missing: give --dft PK, or all of --c11, --c12 and --c44 (GPa)')
    try:
        code = orm.load_code(code_label)
    except (NotExistent, MultipleObjectsError) as exc:
        echo_error(f'--code: {exc}; run `aiida-multiscale setup` first')
    microstructure = load_input_node(microstructure_pk, MicrostructureData, ('microstructure',), '--microstructure')
    if dft_pk is not None:
        elastic = load_input_node(dft_pk, HandoffData, ('elastic',), '--dft')
    else:
        elastic = HandoffData(
            {name: {'value': value, 'unit': 'GPa', 'std': None, 'note': 'given on the command line'}
             for name, value in constants.items()},
            producer='user', from_scale='user', to_scale='fem',
        )  # fmt: skip
    overrides = {} if applied_strain is None else {'parameters': {'applied_strain': applied_strain}}
    try:
        builder = FemWorkChain.get_builder_from_protocol(
            code, microstructure, elastic, protocol=protocol, overrides=overrides, options=options, element=element
        )
    except ValueError as exc:
        echo_error(str(exc).replace('invalid attribute value ', ''))
    # The same validation that submit() runs, but as one line without a traceback.
    error = FemWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        echo_error(error.message)
    launch(builder, wait, as_json, dry_run=dry_run)
