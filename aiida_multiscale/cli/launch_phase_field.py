"""``aiida-multiscale launch phase-field``: 2-D grain growth from a GB energy (given or from MD) and an anneal."""

from __future__ import annotations

import click

from aiida_multiscale.cli import cmd_launch
from aiida_multiscale.cli.utils import DRY_RUN, echo_error, launch, load_input_node, resource_options

__all__ = ('cmd_launch_phase_field',)

#: Stand-alone defaults for Al; every one is an assumption, and the stored interface node says so.
DEFAULTS = {
    'gb_energy': (0.36, 'J/m**2', 'assumed; Al Sigma5 GB energy from EAM MD (FACTS.md)'),
    'mobility_prefactor': (2.5e-6, 'm**4/(J*s)', 'assumed; MOOSE Cu grain-growth example, orders of magnitude'),
    'activation_energy': (0.23, 'eV', 'assumed; MOOSE Cu grain-growth example, MD 0.2-0.3 eV'),
    'temperature': (560.0, 'K', 'assumed; 0.6 T_melt of Al'),
    'anneal_time': (1.0e-4, 's', 'assumed anneal time'),
}


@cmd_launch.command('phase-field')
@click.option('--gb-energy', type=float, default=None, help='GB energy sigma in J/m^2 (default 0.36, Al, assumed).')
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
    help='GB mobility prefactor M0 in m^4/(J s) (default 2.5e-6, assumed).',
)
@click.option(
    '--activation-energy',
    type=float,
    default=None,
    help='Activation energy Q of the GB mobility in eV (default 0.23, assumed).',
)
@click.option('--temperature', type=float, default=None, help='Anneal temperature in K (default 560 K = 0.6 T_melt).')
@click.option('--anneal-time', type=float, default=None, help='Anneal time in s (default 1e-4 s).')
@click.option('--grains', type=int, default=None, help="Number of initial Voronoi grains (default: the protocol's).")
@click.option(
    '--protocol',
    type=click.Choice(['fast', 'moderate', 'precise']),
    default=None,
    help='Grid, domain and cycles (default: moderate).',
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
    grains,
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
    }
    quantities = {}
    for name, (value, unit, note) in DEFAULTS.items():
        if given[name] is not None:
            quantities[name] = {'value': given[name], 'unit': unit, 'std': None, 'note': 'user input (CLI)'}
        else:
            quantities[name] = {'value': value, 'unit': unit, 'std': None, 'note': note}
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
        interface = HandoffData(quantities, bridge='cli', from_scale='user', to_scale='mesoscale')
        overrides = {'parameters': {'grains': grains}} if grains is not None else None
        builder = PhaseFieldWorkChain.get_builder_from_protocol(
            code, interface=interface, protocol=protocol, overrides=overrides, options=options
        )
    except ValueError as exc:
        echo_error(str(exc))
    launch(builder, wait, as_json, dry_run=dry_run)
