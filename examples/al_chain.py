"""The Al chain on the fast protocol: ``verdi run examples/al_chain.py [--protocol fast] [--element Al]``.

Submits a MultiscaleWorkChain to the daemon (start it first: ``verdi daemon start 2``) and prints how to follow it.
Nothing here is specific to Al except the default of ``--element``.
"""

import argparse

from aiida.engine import submit

from aiida_multiscale.workflows.chain import MultiscaleWorkChain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--element', default='Al')
parser.add_argument('--protocol', default='fast', choices=['fast', 'moderate', 'precise'])
parser.add_argument('--temperature', type=float, default=None, help='anneal temperature in K')
parser.add_argument('--anneal-time', type=float, default=None, help='anneal time in s')
args = parser.parse_args()

builder = MultiscaleWorkChain.get_builder_from_protocol(
    args.element, protocol=args.protocol, temperature=args.temperature, anneal_time=args.anneal_time
)
node = submit(builder)
print(f'Submitted MultiscaleWorkChain<{node.pk}> for {args.element} ({args.protocol})')
print(f'  follow:  aiida-multiscale status {node.pk}')
print(f'  then:    aiida-multiscale trace {node.pk}   and   aiida-multiscale graph {node.pk} -o chain.svg')
