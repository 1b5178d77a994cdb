"""``aiida-multiscale launch phase-field``: 2-D grain growth from a GB energy (given or from MD) and an anneal."""

from __future__ import annotations

import click

from aiida_multiscale.cli import cmd_launch
from aiida_multiscale.cli.utils import DRY_RUN, echo_error, launch, load_input_node, resource_options
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = ('cmd_launch_phase_field',)


def _defaults() -> dict:
    """The stand-alone interface of the protocol file (the one home of these assumptions): ``{name: quantity}``."""
    from aiida_multiscale.workflows.protocols.anneal import standalone_interface

    return standalone_interface()


def _default(name: str) -> str:
    """``value unit, assumed`` of a default, for the option help (read when the help is built)."""
    quantity = _defaults()[name]
    return f'default {quantity["value"]:.4g} {quantity["unit"]}, assumed (protocol file phase_field.yaml)'


@cmd_launch.command('phase-field')
@click.option('--gb-energy', type=float, default=None, help=f'GB energy sigma in J/m^2 ({_default("gb_energy")}).')
@click.option(
    '--md',
    'md',
    default=None,
    help='PK of an md_properties HandoffData or of a finished MdWorkChain: '
    'its gb_energy is used (excludes --gb-energy).',
)
@click.option(
    '--mobility-prefactor',
    type=float,
    default=None,
    help=f'GB mobility prefactor M0 in m^4/(J s) ({_default("mobility_prefactor")}).',
)
@click.option(
    '--activation-energy',
    type=float,
    default=None,
    help=f'Activation energy Q of the GB mobility in eV ({_default("activation_energy")}).',
)
@click.option('--temperature', type=float, default=None, help=f'Anneal temperature in K ({_default("temperature")}).')
@click.option('--anneal-time', type=float, default=None, help=f'Anneal time in s ({_default("anneal_time")}).')
@click.option(
    '--initial-grain-size',
    type=float,
    default=None,
    help=f'Starting mean grain size d0 in m, e.g. a recrystallised grain size ({_default("initial_grain_size")}).',
)
@click.option('--grains', type=int, default=None, help="Number of initial Voronoi grains (default: the protocol's).")
@click.option(
    '--realisations', type=int, default=None, help="Realisations with different seeds (default: the protocol's)."
)
@click.option(
    '--protocol',
    type=click.Choice(['fast', 'moderate', 'precise']),
    default=None,
    help=f'Grid, domain and cycles (default: {load_protocol_file("phase_field")["default_protocol"]}).',
)
@click.option('--code', 'code_label', default='moose@localhost', show_default=True, help='Label of the MOOSE code.')
@click.option('--wait', is_flag=True, help='Wait for the work chain to finish; exit non-zero if it failed.')
@click.option('--json', 'as_json', is_flag=True, help='Print the result as one JSON line at the end.')
@resource_options()
@DRY_RUN
def cmd_launch_phase_field(
    gb_energy,
    md,
    mobility_prefactor,
    activation_energy,
    temperature,
    anneal_time,
    initial_grain_size,
    grains,
    realisations,
    protocol,
    code_label,
    wait,
    as_json,
    options,
    dry_run,
):
    """Launch a PhaseFieldWorkChain (MOOSE grain growth) through the daemon."""
    from aiida.common.exceptions import MultipleObjectsError, NotExistent
    from aiida.orm import load_code

    from aiida_multiscale.data.handoff import HandoffData
    from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

    if gb_energy is not None and md is not None:
        echo_error('give either --gb-energy or --md, not both')
    given = {
        'gb_energy': gb_energy,
        'mobility_prefactor': mobility_prefactor,
        'activation_energy': activation_energy,
        'temperature': temperature,
        'anneal_time': anneal_time,
        'initial_grain_size': initial_grain_size,
    }
    quantities = _defaults()
    for name, value in given.items():
        if value is not None:
            unit = quantities[name]['unit']
            quantities[name] = {'value': value, 'unit': unit, 'std': None, 'note': 'user input (CLI)'}
    if md is not None:
        md_properties = load_input_node(md, HandoffData, ('md_properties',), '--md')
        if 'gb_energy' not in md_properties:
            echo_error(f'--md: node {md} has no gb_energy (quantities: {", ".join(md_properties.names)})')
        sigma = md_properties.get_quantity('gb_energy', 'J/m**2')
        quantities['gb_energy'] = {
            'value': sigma.value,
            'unit': 'J/m**2',
            'std': sigma.std,
            'note': f'MD gb_energy from HandoffData<{md_properties.pk}>',
        }
    try:
        code = load_code(code_label)
    except (NotExistent, MultipleObjectsError) as exc:
        echo_error(f'--code: {exc}; run `aiida-multiscale setup` first')
    try:
        interface = HandoffData(quantities, producer='cli', from_scale='user', to_scale='mesoscale')
        parameters = {'grains': grains, 'realisations': realisations}
        overrides = {'parameters': {k: v for k, v in parameters.items() if v is not None}}
        builder = PhaseFieldWorkChain.get_builder_from_protocol(
            code, interface=interface, protocol=protocol, overrides=overrides, options=options
        )
    except ValueError as exc:
        echo_error(str(exc))
    launch(builder, wait, as_json, dry_run=dry_run)
