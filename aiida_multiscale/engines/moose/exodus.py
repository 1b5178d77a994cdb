"""Exodus II files written by MOOSE: the one reader (and the restart writer) of the package, on netCDF4."""

from __future__ import annotations

import contextlib
import os
import shutil
import typing as t

import numpy as np

__all__ = (
    'read_element_variables',
    'read_exodus',
    'read_global_variables',
    'read_nodal_variables',
    'variable_names',
    'write_restart_exodus',
)

Source = str | os.PathLike | bytes


@contextlib.contextmanager
def open_dataset(source: Source):
    """Open ``source`` (a path, or the bytes of a file, e.g. read from a ``SinglefileData``) as a netCDF4 dataset.

    Masking is off: MOOSE writes no fill values that mean "missing", and masked arrays only get in the way.
    """
    import netCDF4

    if isinstance(source, (bytes, bytearray, memoryview)):
        dataset = netCDF4.Dataset('exodus.e', memory=bytes(source))
    else:
        dataset = netCDF4.Dataset(os.fspath(source))
    try:
        dataset.set_auto_mask(False)
        yield dataset
    finally:
        dataset.close()


def variable_names(dataset, key: str) -> list[str]:
    """Names stored in the Exodus name array ``key`` (``name_nod_var``, ``name_elem_var``, ``name_glo_var``, ...).

    Exodus name arrays are fixed-width chars; MOOSE leaves garbage after the first NUL, so cut there.
    """
    if key not in dataset.variables:
        return []
    out = []
    for row in dataset.variables[key][:]:
        # Unwritten chars come back as b'' (or masked): they end the name just like a NUL.
        raw = b''.join(
            (c if isinstance(c, bytes) else bytes(c)) or b'\x00' for c in np.ma.filled(row, b'\x00').tolist()
        )
        out.append(raw.split(b'\x00', 1)[0].decode('ascii', 'replace').strip())
    return out


def read_exodus(source: Source) -> dict:
    """Read a 2-D MOOSE Exodus file on a structured periodic mesh (nodal fields and global variables).

    The periodic duplicate row and column (``x = Lx``, ``y = Ly``) are dropped, so fields have shape ``(ny, nx)``
    and node ``(j, i)`` sits at ``(i * dx, j * dy)``.

    :returns: ``{'times': (n_t,), 'x', 'y': node coordinates, 'nx', 'ny', 'dx', 'dy', 'order': node index of each
        grid point (ny, nx), 'fields': {name: (n_t, ny, nx)}, 'globals': {name: (n_t,)}}``.
    """
    with open_dataset(source) as data:
        times = np.array(data.variables['time_whole'][:], dtype=float)
        x = np.array(data.variables['coordx'][:], dtype=float)
        y = np.array(data.variables['coordy'][:], dtype=float)
        names = variable_names(data, 'name_nod_var')
        raw = {}
        for k, name in enumerate(names):
            key = f'vals_nod_var{k + 1}'
            raw[name] = (
                np.array(data.variables[key][:], dtype=float)
                if key in data.variables
                else (np.array(data.variables['vals_nod_var'][:, k, :], dtype=float))
            )
        global_names = variable_names(data, 'name_glo_var')
        globals_ = {}
        if global_names and 'vals_glo_var' in data.variables:
            values = np.array(data.variables['vals_glo_var'][:], dtype=float)
            globals_ = {name: values[:, k] for k, name in enumerate(global_names)}
    xs = np.unique(np.round(x, 9))
    ys = np.unique(np.round(y, 9))
    nx, ny = len(xs) - 1, len(ys) - 1
    dx = (xs[-1] - xs[0]) / nx
    dy = (ys[-1] - ys[0]) / ny
    i = np.rint((x - xs[0]) / dx).astype(int)
    j = np.rint((y - ys[0]) / dy).astype(int)
    order = np.full((ny + 1, nx + 1), -1, dtype=np.int64)
    order[j, i] = np.arange(len(x))
    order = order[:ny, :nx]  # drop the periodic duplicates
    fields = {name: values[:, order] for name, values in raw.items()}
    return {
        'times': times,
        'x': x,
        'y': y,
        'nx': nx,
        'ny': ny,
        'dx': dx,
        'dy': dy,
        'order': order,
        'fields': fields,
        'globals': globals_,
    }


def read_element_variables(source: Source, names: t.Iterable[str], step: int = -1, block: int = 1) -> dict:
    """Element (cell) variables ``names`` of element block ``block`` at time step ``step``, in element order.

    :returns: ``{name: (n_elements,)}``.
    """
    with open_dataset(source) as data:
        stored = variable_names(data, 'name_elem_var')
        out = {}
        for name in names:
            if name not in stored:
                raise KeyError(f'element variable {name!r} is not in the Exodus file (has {stored})')
            key = f'vals_elem_var{stored.index(name) + 1}eb{block}'
            out[name] = np.asarray(data.variables[key][step], dtype=float)
    return out


def read_global_variables(source: Source) -> dict[str, np.ndarray]:
    """The global variables of a MOOSE Exodus file (its postprocessors, one value per output time), with ``time``.

    MOOSE writes every scalar postprocessor as an Exodus global variable at the same times as its CSV rows, in full
    double precision, so an input that writes Exodus only still has its postprocessor time series here.

    :returns: ``{'time': (n_t,), name: (n_t,), ...}``; only ``time`` when the file has no global variables.
    """
    with open_dataset(source) as data:
        times = np.array(data.variables['time_whole'][:], dtype=float) if 'time_whole' in data.variables else None
        names = variable_names(data, 'name_glo_var')
        values = (
            np.array(data.variables['vals_glo_var'][:], dtype=float).reshape(-1, len(names))
            if names and 'vals_glo_var' in data.variables
            else np.zeros((0, len(names)))
        )
    if times is None:
        times = np.zeros(len(values))
    steps = min(len(times), len(values)) if names else len(times)
    out = {'time': times[:steps]}
    out.update({name: values[:steps, k] for k, name in enumerate(names) if name != 'time'})
    return out


def read_nodal_variables(source: Source, step: int = -1) -> dict[str, np.ndarray]:
    """Every nodal variable of a MOOSE Exodus file at time step ``step``, in the file's node order (any mesh).

    :returns: ``{name: (n_nodes,)}``.
    """
    with open_dataset(source) as data:
        out = {}
        for k, name in enumerate(variable_names(data, 'name_nod_var')):
            key = f'vals_nod_var{k + 1}'
            if key in data.variables:
                out[name] = np.array(data.variables[key][step], dtype=float)
            else:
                out[name] = np.array(data.variables['vals_nod_var'][step, k, :], dtype=float)
    return out


def write_restart_exodus(template: str, target: str, fields: t.Mapping[str, np.ndarray], step: int = -1) -> None:
    """Write ``target``: a copy of MOOSE's own Exodus ``template`` with the nodal ``fields`` replaced at ``step``.

    Why clone rather than write a mesh from scratch: libMesh in this build reads only netCDF-3 Exodus, and files
    written by other tools come back as zeros through ``SolutionUserObject``; a clone keeps MOOSE's exact layout.
    Only the chosen step is kept (``SolutionUserObject`` then reads it as the latest).  The periodic duplicate nodes
    get the values of their images.

    :param fields: ``{variable name: (ny, nx)}`` values on the grid of :func:`read_exodus`.
    """
    import netCDF4

    grid = read_exodus(template)
    nx, ny = grid['nx'], grid['ny']
    x, y = grid['x'], grid['y']
    xs, ys = np.unique(np.round(x, 9)), np.unique(np.round(y, 9))
    i = np.rint((x - xs[0]) / grid['dx']).astype(int) % nx
    j = np.rint((y - ys[0]) / grid['dy']).astype(int) % ny
    n_steps = len(grid['times'])
    step = step % n_steps
    with netCDF4.Dataset(template) as src, netCDF4.Dataset(target, 'w', format='NETCDF3_64BIT_OFFSET') as dst:
        src.set_auto_mask(False)
        dst.set_auto_mask(False)
        dst.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
        for name, dim in src.dimensions.items():
            dst.createDimension(name, None if dim.isunlimited() else len(dim))
        names = variable_names(src, 'name_nod_var')
        for name, var in src.variables.items():
            out = dst.createVariable(name, var.datatype, var.dimensions)
            out.setncatts({k: var.getncattr(k) for k in var.ncattrs()})
            if var.dimensions and var.dimensions[0] == 'time_step':
                out[0:1] = var[step : step + 1]
            else:
                out[:] = var[:]
        for name, values in fields.items():
            if name not in names:
                raise KeyError(f'variable {name!r} is not in {template} (has {names})')
            values = np.asarray(values, dtype=float)
            if values.shape != (ny, nx):
                raise ValueError(f'field {name!r} has shape {values.shape}, the mesh needs {(ny, nx)}')
            key = f'vals_nod_var{names.index(name) + 1}'
            dst.variables[key][0, :] = values[j, i]
    shutil.copymode(template, target)
