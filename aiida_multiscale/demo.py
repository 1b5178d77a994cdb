"""``make demo``: until the chain lands, a small real calculation through the daemon (fcc Al SCF with pw.x)."""

from __future__ import annotations

import sys
import time

__all__ = ('build_al_scf', 'main')


def build_al_scf(code, family, lattice_constant: float = 4.05, ecutwfc: float = 20.0, kmesh: int = 6):
    """Builder for a ``PwBaseWorkChain`` SCF of one-atom fcc Al: coarse settings, a few seconds of pw.x."""
    from aiida import orm
    from aiida.plugins import WorkflowFactory
    from ase.build import bulk

    PwBaseWorkChain = WorkflowFactory('quantumespresso.pw.base')  # noqa: N806
    structure = orm.StructureData(ase=bulk('Al', 'fcc', a=lattice_constant))
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([kmesh] * 3)
    builder = PwBaseWorkChain.get_builder()
    builder.pw.code = code
    builder.pw.structure = structure
    builder.pw.pseudos = family.get_pseudos(structure=structure)
    builder.pw.parameters = orm.Dict(
        {
            'CONTROL': {'calculation': 'scf', 'tprnfor': True, 'tstress': True},
            'SYSTEM': {
                'ecutwfc': ecutwfc,
                'ecutrho': 4 * ecutwfc,
                'occupations': 'smearing',
                'smearing': 'mv',
                'degauss': 0.02,
            },
            'ELECTRONS': {'conv_thr': 1e-8},
        }
    )
    builder.kpoints = kpoints
    builder.pw.metadata.options = {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'withmpi': False,
        'max_wallclock_seconds': 600,
    }
    builder.metadata.label = 'demo: fcc Al SCF'
    return builder


def main(timeout: float = 600) -> int:
    """Submit the SCF to the daemon, wait, print the PK and a one-line result; exit status 0 only on success."""
    from aiida import load_profile, orm
    from aiida.engine import submit

    load_profile()
    code = orm.load_code('pw@localhost')
    family = orm.Group.collection.get(label='multiscale/lda')
    node = submit(build_al_scf(code, family))
    print(f'Submitted PwBaseWorkChain<{node.pk}> (fcc Al SCF) to the daemon; waiting ...', flush=True)
    start = time.monotonic()
    while not node.is_terminated:
        if time.monotonic() - start > timeout:
            print(f'PwBaseWorkChain<{node.pk}> did not finish in {timeout:.0f} s; is the daemon running?')
            return 1
        time.sleep(1)
    if not node.is_finished_ok:
        print(f'PwBaseWorkChain<{node.pk}> failed: exit status {node.exit_status} {node.exit_message}')
        return 1
    energy = node.outputs.output_parameters['energy']
    print(
        f'PwBaseWorkChain<{node.pk}> finished OK: E = {energy:.4f} eV/atom for fcc Al at a = 4.05 A '
        f'(inspect: verdi process show {node.pk})'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
