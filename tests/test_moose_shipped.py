"""MooseCalculation on MOOSE inputs nobody here wrote: the simulations shipped in rabbit-fem (``rabbit/sims``).

Each runnable input runs twice, through ``MooseCalculation`` (its whole directory as an ``input_folder``, with the
``!include`` files, meshes and ``data/`` tables beside it) and by hand (``moose -i NAME.i`` in a copy of the same
directory), and the two Exodus files must agree to 1e-10: postprocessors (the Exodus globals, which the parser also
reports) and nodal fields at the last step.  Inputs that cannot run on this MOOSE build are skipped with the reason,
found in the input itself: a mesh that Gmsh must make from a ``.geo`` file, the hypre preconditioner, MFEM objects.
The hypre inputs run a second time with the replacement that docs/howto_moose_input.md gives (LU from PETSc, by
command-line override), so that they are covered too.

Cost: the cheap inputs (the thermo-mechanical cube in six element types, 1 to 8 elements, 20 steps) run by default, in
about a minute; the 3-D dogbone (17k second-order DOFs, about 10 min per run) and the shield-tile thermal model (62k
DOFs, a few minutes per run) run only with ``AIIDA_MULTISCALE_SHIPPED_ALL=1``.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_multiscale.calculations.moose import MooseCalculation
from aiida_multiscale.engines.moose.exodus import read_global_variables, read_nodal_variables

pytestmark = [pytest.mark.real_code, pytest.mark.timeout(1800)]

#: Relative tolerance of the comparison with the direct run (the same binary on the same input: bit-identical).
RTOL = 1e-10
#: The solver replacement for hypre on this build (see docs/howto_moose_input.md): LU from PETSc for small problems,
#: ILU (with MOOSE's default GMRES) for the large ones, where LU's fill-in costs too much memory.
WITHOUT_HYPRE = ('Executioner/petsc_options_iname=-pc_type', 'Executioner/petsc_options_value=lu')
WITHOUT_HYPRE_LARGE = ('Executioner/petsc_options_iname=-pc_type', 'Executioner/petsc_options_value=ilu')
#: Inputs whose runs cost minutes each on two cores: only with AIIDA_MULTISCALE_SHIPPED_ALL=1.
EXPENSIVE = {
    'dogbone/dogbone3d_elas.i': '3-D second-order mesh, 17k DOFs with LU, 10 steps: about 10 min per run on 2 cores',
    'dogbone/dogbone3d_plas_ad.i': '3-D second-order mesh with AD plasticity: several minutes of CPU per run',
    'stc/stc_therm_unifhf_wrad_std_ad.i': '62k second-order DOFs with ILU/LU: minutes per run',
    'stc/stc_therm_unifhf_wrad_trans_ad.i': '62k second-order DOFs, transient: minutes per run',
    'stc/stc_therm_funchf_wrad_std_ad.i': '62k second-order DOFs: minutes per run',
    'stc/stc_therm_funchf_wrad_trans_ad.i': '62k second-order DOFs, transient: minutes per run',
    'stc/stc_therm_funchs_wrad_std_ad.i': '62k second-order DOFs: minutes per run',
    'stc/stc_therm_funchs_wrad_trans_ad.i': '62k second-order DOFs, transient: minutes per run',
}
RUN_ALL = os.environ.get('AIIDA_MULTISCALE_SHIPPED_ALL', '') not in ('', '0')


def _sims_from_launcher(executable: pathlib.Path) -> pathlib.Path | None:
    """``rabbit/sims`` of the rabbit-fem package that ``executable`` runs (the app itself or a launcher script)."""
    candidates = [executable.resolve()]
    try:
        text = executable.read_text(errors='replace')
    except (OSError, UnicodeDecodeError):
        text = ''
    candidates += [pathlib.Path(path) for path in re.findall(r'(/[^"\'\s]+/bin/rabbit)\b', text)]
    for app in candidates:
        sims = app.parent.parent / 'sims'
        if sims.is_dir():
            return sims
    return None


def find_sims(executable: str) -> pathlib.Path | None:
    """The shipped simulations: ``$AIIDA_MULTISCALE_RABBIT_SIMS``, else beside the code's app, else an installed one."""
    if os.environ.get('AIIDA_MULTISCALE_RABBIT_SIMS'):
        return pathlib.Path(os.environ['AIIDA_MULTISCALE_RABBIT_SIMS'])
    sims = _sims_from_launcher(pathlib.Path(executable))
    if sims is not None:
        return sims
    try:
        import importlib.resources

        path = pathlib.Path(str(importlib.resources.files('rabbit.sims')))
        return path if path.is_dir() else None
    except ModuleNotFoundError:
        return None


def _text_with_includes(path: pathlib.Path, seen: set | None = None) -> str:
    """The input at ``path`` with every ``!include`` file appended, comments removed."""
    seen = seen if seen is not None else set()
    if path in seen or not path.is_file():
        return ''
    seen.add(path)
    text = '\n'.join(line.split('#', 1)[0] for line in path.read_text().splitlines())
    for name in re.findall(r'^\s*!include\s+(\S+)', text, re.MULTILINE):
        text += '\n' + _text_with_includes(path.parent / name, seen)
    return text


def obstacles(path: pathlib.Path) -> dict[str, str]:
    """What keeps the input at ``path`` from running as shipped on this MOOSE build: ``{kind: reason}``."""
    text = _text_with_includes(path)
    found = {}
    missing = sorted({name for name in re.findall(r'[\w./-]+\.msh\b', text) if not (path.parent / name).exists()})
    if missing:
        geos = sorted(geo.name for geo in path.parent.glob('*.geo'))
        found['gmsh'] = (
            f'needs the mesh {", ".join(missing)}, which is not shipped: Gmsh makes it from one of the .geo files '
            f'beside the input ({", ".join(geos) or "none"}), and there is no Gmsh here'
        )
    if re.search(r'petsc_options_value\s*=\s*[\'"]?\s*hypre\b', text):
        found['hypre'] = 'asks for the hypre preconditioner (-pc_type hypre), which this MOOSE build lacks'
    if re.search(r'type\s*=\s*MFEM\w*', text):
        found['mfem'] = 'uses MFEM objects (MFEMProblem ...), which this MOOSE build does not include'
    return found


def _shipped_inputs(sims: pathlib.Path | None) -> list[str]:
    """The main inputs under ``rabbit/sims`` (files that others ``!include`` are named ``common_*.i``)."""
    if sims is None:
        return []
    return sorted(str(path.relative_to(sims)) for path in sims.rglob('*.i') if not path.name.startswith('common_'))


# Found at collection from the launcher that conftest.py names, for the test ids; the `sims` fixture finds them again
# from the MOOSE code of the test profile.
_SIMS = find_sims(os.environ.get('AIIDA_MULTISCALE_MOOSE', ''))
SHIPPED = _shipped_inputs(_SIMS)
#: The inputs that only lack hypre: they also run with LU instead.
HYPRE_ONLY = [relative for relative in SHIPPED if set(obstacles(_SIMS / relative)) == {'hypre'}]
NO_SIMS = 'no rabbit-fem simulations found (rabbit/sims beside the MOOSE app, or $AIIDA_MULTISCALE_RABBIT_SIMS)'


@pytest.fixture(scope='module')
def sims(codes):
    path = find_sims(str(codes['moose'].get_executable()))
    if path is None:
        pytest.skip(NO_SIMS)
    return path


@pytest.fixture(scope='module')
def shipped_run(codes, sims, tmp_path_factory):
    """``run(relative input path, overrides) -> (CalcJobNode, direct run's folder)``, each pair run once per module.

    The two runs of one input go one after the other (the machine is shared), each with its own time limit.
    """
    cache = {}

    def run(relative: str, overrides: tuple[str, ...] = ()):
        key = (relative, overrides)
        if key in cache:
            return cache[key]
        source = sims / relative
        builder = MooseCalculation.get_builder()
        builder.code = codes['moose']
        builder.input_folder = orm.FolderData(tree=source.parent)
        if overrides:
            builder.cmdline = orm.List(list(overrides))
        builder.metadata.label = f'rabbit-fem {relative}'
        builder.metadata.options.input_filename = source.name
        builder.metadata.options.require_csv = False
        builder.metadata.options.max_wallclock_seconds = 1800
        _, node = run_get_node(builder)

        folder = tmp_path_factory.mktemp(source.stem)
        shutil.copytree(source.parent, folder, dirs_exist_ok=True)
        with open(folder / 'direct.log', 'w') as log:
            subprocess.run(
                [str(codes['moose'].get_executable()), '-i', source.name, '--color', 'off', *overrides],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=1800,
                check=False,
            )
        cache[key] = (node, folder)
        return cache[key]

    return run


def _compare_with_direct(node, folder: pathlib.Path) -> None:
    """Postprocessors (all output times) and nodal fields (last step) of the AiiDA run equal the direct run's."""
    assert node.exit_status == 0, f'{node.label}: [{node.exit_status}] {node.exit_message}'
    parameters = node.outputs.output_parameters.get_dict()
    direct_exodus = folder / parameters['exodus_file']
    assert direct_exodus.is_file(), f'the direct run wrote no {direct_exodus.name}: see {folder / "direct.log"}'
    with node.outputs.exodus.as_path() as path:
        ours = read_global_variables(path)
        our_fields = read_nodal_variables(path)
    theirs = read_global_variables(direct_exodus)
    their_fields = read_nodal_variables(direct_exodus)
    assert list(ours) == list(theirs)
    for name, values in theirs.items():
        scale = float(np.max(np.abs(values))) if values.size else 0.0
        np.testing.assert_allclose(ours[name], values, rtol=RTOL, atol=RTOL * scale, err_msg=name)
    assert sorted(our_fields) == sorted(their_fields)
    for name, values in their_fields.items():
        scale = float(np.max(np.abs(values))) if values.size else 0.0
        np.testing.assert_allclose(our_fields[name], values, rtol=RTOL, atol=RTOL * scale, err_msg=name)
    # what the parser reports: the final postprocessors, from the Exodus globals (these inputs write no CSV)
    assert parameters['postprocessors_source'] == 'exodus'
    assert parameters['time'] == pytest.approx(theirs['time'][-1], rel=RTOL)
    for name, value in parameters['postprocessors'].items():
        assert value == pytest.approx(theirs[name][-1], rel=RTOL, abs=RTOL * abs(theirs[name]).max()), name


@pytest.mark.parametrize('relative', SHIPPED or [pytest.param('none', marks=pytest.mark.skip(reason=NO_SIMS))])
def test_shipped_input_as_shipped(sims, shipped_run, relative):
    """Every shipped input that this build can run, unchanged, against its direct run."""
    found = obstacles(sims / relative)
    if found:
        pytest.skip(f'{relative}: ' + '; '.join(found.values()))
    if relative in EXPENSIVE and not RUN_ALL:
        pytest.skip(f'{relative}: {EXPENSIVE[relative]} (set AIIDA_MULTISCALE_SHIPPED_ALL=1 to run it)')
    _compare_with_direct(*shipped_run(relative))


@pytest.mark.parametrize('relative', HYPRE_ONLY or [pytest.param('none', marks=pytest.mark.skip(reason=NO_SIMS))])
def test_shipped_input_with_lu_instead_of_hypre(sims, shipped_run, relative):
    """The inputs that only lack hypre, with LU (or ILU) from PETSc by command-line override (no file changed)."""
    if relative in EXPENSIVE and not RUN_ALL:
        pytest.skip(f'{relative}: {EXPENSIVE[relative]} (set AIIDA_MULTISCALE_SHIPPED_ALL=1 to run it)')
    _compare_with_direct(*shipped_run(relative, WITHOUT_HYPRE_LARGE if relative in EXPENSIVE else WITHOUT_HYPRE))


def test_hypre_abort_names_the_cause(sims, codes):
    """As shipped, the cube asks for hypre: the exit message carries PETSc's reason, not only 'Aborted'."""
    relative = 'cube_thermomech/cube_thermomech_HEX8.i'
    if not (sims / relative).is_file():
        pytest.skip(f'{relative} is not shipped with this rabbit-fem')
    builder = MooseCalculation.get_builder()
    builder.code = codes['moose']
    builder.input_folder = orm.FolderData(tree=(sims / relative).parent)
    builder.metadata.options.input_filename = pathlib.Path(relative).name
    builder.metadata.options.max_wallclock_seconds = 600
    _, node = run_get_node(builder)
    assert node.exit_status == MooseCalculation.exit_codes.ERROR_ABNORMAL_TERMINATION.status
    assert 'Unable to find requested PC type hypre' in node.exit_message
    # the initial state (time 0) was written before the first solve: reported, not lost
    assert node.outputs.output_parameters['time'] == 0.0


def test_obstacles_are_read_from_the_inputs_fake(tmp_path):
    """The skip reasons come from the input and its includes: a missing .msh, hypre, MFEM."""
    (tmp_path / 'common_solver.i').write_text("[Executioner]\n  petsc_options_value = ' hypre boomeramg'\n[]\n")
    (tmp_path / 'a.i').write_text("mesh = 'm.msh'  # made by gmsh\n!include common_solver.i\n")
    (tmp_path / 'm.geo').write_text('')
    found = obstacles(tmp_path / 'a.i')
    assert set(found) == {'gmsh', 'hypre'} and 'm.geo' in found['gmsh']
    (tmp_path / 'm.msh').write_text('')
    assert set(obstacles(tmp_path / 'a.i')) == {'hypre'}
    (tmp_path / 'b.i').write_text('[Problem]\n  type = MFEMProblem\n[]\n# hypre in a comment only\n')
    assert set(obstacles(tmp_path / 'b.i')) == {'mfem'}
