"""``MicrostructureData``: a 2-D periodic grain map with one crystal orientation (Bunge Euler angles) per grain."""

from __future__ import annotations

import io
import math
import pathlib

import numpy as np
from aiida import orm

from aiida_multiscale.physics.units import factor

__all__ = ('MicrostructureData', 'relabel_grains')


def relabel_grains(labels) -> tuple[np.ndarray, np.ndarray]:
    """Renumber an integer label map to contiguous ids ``0..n-1`` (in order of the old labels).

    :returns: ``(grain_ids, old_labels)`` where ``old_labels[new_id]`` is the label the grain had before, so per-grain
        data (Euler angles) can follow: ``euler_angles = old_euler[old_labels]``.
    """
    labels = np.asarray(labels)
    old_labels, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32), old_labels


def _bunge_rgb(euler_angles: np.ndarray) -> np.ndarray:
    """A colour per grain from its Euler angles (the usual EBSD 'Euler colouring': phi1, Phi, phi2 -> R, G, B)."""
    euler = np.asarray(euler_angles, dtype=float)
    rgb = np.column_stack(
        [np.mod(euler[:, 0], 360.0) / 360.0, np.clip(euler[:, 1], 0, 180) / 180.0, np.mod(euler[:, 2], 360.0) / 360.0]
    )
    return 0.15 + 0.85 * rgb  # keep grains distinguishable from the black boundaries


class MicrostructureData(orm.ArrayData):
    """A 2-D periodic grain map with one crystal orientation per grain: the mesoscale -> FEM handoff.

    * ``grain_ids``: integer array of shape ``(ny, nx)``; ``grain_ids[j, i]`` is the grain of the pixel whose centre is
      at ``x = (i + 1/2) * pixel_size``, ``y = (j + 1/2) * pixel_size``.  Ids are contiguous, ``0..n-1``, and every id
      occurs (use :func:`relabel_grains` after grains vanish).  The map is periodic in x and y.
    * ``pixel_size``: edge of one square pixel in metres (SI, as everywhere on the continuum side of the chain).
    * ``euler_angles``: array ``(n, 3)`` of Bunge angles ``(phi1, Phi, phi2)`` in DEGREES, the crystal -> sample
      convention of EBSD and of the MD/DFT crystal frames; row ``k`` belongs to grain ``k``.

    Why its own type rather than a plain ``ArrayData``: the FEM rung needs the invariants above (contiguous ids, one
    orientation per grain, a physical pixel size) and checks them once, here, instead of in every consumer.  The
    arrays live in the repository (``.npy``, as in ``ArrayData``); pixel size and counts are attributes so they can be
    queried.
    """

    def __init__(self, grain_ids=None, pixel_size=None, euler_angles=None, **kwargs):
        super().__init__(**kwargs)
        if grain_ids is None and pixel_size is None and euler_angles is None:
            return  # loading from the database
        if grain_ids is None or pixel_size is None or euler_angles is None:
            raise ValueError('MicrostructureData needs grain_ids, pixel_size (m) and euler_angles (degrees, Bunge)')
        ids = np.asarray(grain_ids)
        if ids.ndim != 2 or min(ids.shape) < 1:
            raise ValueError(f'grain_ids must be a 2-D array of shape (ny, nx), got shape {ids.shape}')
        if not np.issubdtype(ids.dtype, np.integer):
            if not np.issubdtype(ids.dtype, np.number) or not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
                raise ValueError('grain_ids must hold integers')
        ids = ids.astype(np.int32)
        euler = np.asarray(euler_angles, dtype=float)
        if euler.ndim != 2 or euler.shape[1] != 3:
            raise ValueError(
                f'euler_angles must have shape (n_grains, 3) (phi1, Phi, phi2 in degrees), got {euler.shape}'
            )
        count = euler.shape[0]
        if ids.min() < 0 or ids.max() != count - 1:
            raise ValueError(
                f'grain_ids must run from 0 to n_grains - 1 = {count - 1} (one row of euler_angles per grain), got '
                f'{ids.min()}..{ids.max()}; renumber with relabel_grains()'
            )
        present = np.bincount(ids.ravel(), minlength=count)
        if np.any(present == 0):
            missing = np.flatnonzero(present == 0)[:10].tolist()
            raise ValueError(f'grain ids {missing} do not occur in grain_ids; renumber with relabel_grains()')
        if not np.all(np.isfinite(euler)):
            raise ValueError('euler_angles must be finite numbers (degrees)')
        if np.any(np.abs(euler) > 720.0):
            raise ValueError('euler_angles look wrong: |angle| > 720 degrees (they must be in degrees, Bunge)')
        if np.any(euler[:, 1] < -1e-9) or np.any(euler[:, 1] > 180.0 + 1e-9):
            raise ValueError('euler_angles: Phi (second column) must lie in [0, 180] degrees (Bunge convention)')
        try:
            size = float(pixel_size)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'pixel_size must be a length in metres, got {pixel_size!r}') from exc
        if not math.isfinite(size) or size <= 0:
            raise ValueError(f'pixel_size must be a positive length in metres, got {pixel_size!r}')
        if size > 1.0:
            raise ValueError(f'pixel_size = {size} m is larger than 1 m: it must be given in metres')
        self.set_array('grain_ids', ids)
        self.set_array('euler_angles', euler)
        self.base.attributes.set('pixel_size', size)
        self.base.attributes.set('pixel_size_unit', 'm')
        self.base.attributes.set('euler_convention', 'Bunge ZXZ, degrees, crystal -> sample')
        self.base.attributes.set('grain_count', int(count))
        self.base.attributes.set('grid_shape', [int(n) for n in ids.shape])
        self.base.attributes.set('mean_grain_size', self._mean_ecd(present.astype(float) * size**2))

    @staticmethod
    def _mean_ecd(areas: np.ndarray) -> float:
        return float(np.mean(np.sqrt(4.0 * areas / math.pi)))

    @property
    def grain_ids(self) -> np.ndarray:
        """Grain id per pixel, shape ``(ny, nx)``."""
        return self.get_array('grain_ids')

    @property
    def euler_angles(self) -> np.ndarray:
        """Bunge ``(phi1, Phi, phi2)`` per grain in degrees, shape ``(n_grains, 3)``."""
        return self.get_array('euler_angles')

    @property
    def pixel_size(self) -> float:
        """Pixel edge in metres."""
        return self.base.attributes.get('pixel_size')

    @property
    def grain_count(self) -> int:
        return self.base.attributes.get('grain_count')

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return tuple(self.base.attributes.get('grid_shape'))

    @property
    def domain_size(self) -> tuple[float, float]:
        """``(Lx, Ly)`` in metres."""
        ny, nx = self.grid_shape
        return nx * self.pixel_size, ny * self.pixel_size

    @property
    def grain_areas(self) -> np.ndarray:
        """Area of each grain in m^2 (pixel count times pixel area), shape ``(n_grains,)``."""
        counts = np.bincount(self.grain_ids.ravel(), minlength=self.grain_count)
        return counts.astype(float) * self.pixel_size**2

    @property
    def area_fractions(self) -> np.ndarray:
        """Area fraction of each grain (sums to 1): the weights of the Voigt/Reuss averages."""
        areas = self.grain_areas
        return areas / areas.sum()

    @property
    def mean_grain_size(self) -> float:
        """Mean equivalent-circle diameter ``<sqrt(4 A / pi)>`` over the grains, in metres."""
        return self.base.attributes.get('mean_grain_size')

    def get_png(self, dpi: int = 100) -> bytes:
        """A PNG preview: grains coloured by Euler angles, boundaries in black, axes in micrometres."""
        import matplotlib

        matplotlib.use('Agg')
        from matplotlib import pyplot as plt

        ids = self.grain_ids
        rgb = _bunge_rgb(self.euler_angles)[ids]
        boundary = (ids != np.roll(ids, 1, axis=0)) | (ids != np.roll(ids, 1, axis=1))
        rgb[boundary] = 0.0
        um = factor('m', 'um')
        lx, ly = (length * um for length in self.domain_size)
        figure, axes = plt.subplots(figsize=(5, 5 * ly / lx + 0.4))
        axes.imshow(rgb, origin='lower', extent=(0, lx, 0, ly), interpolation='nearest')
        axes.set_xlabel('x (um)')
        axes.set_ylabel('y (um)')
        axes.set_title(f'{self.grain_count} grains, mean ECD {self.mean_grain_size * um:.3g} um')
        buffer = io.BytesIO()
        figure.savefig(buffer, format='png', dpi=dpi, bbox_inches='tight')
        plt.close(figure)
        return buffer.getvalue()

    def write_png(self, path) -> pathlib.Path:
        """Write :meth:`get_png` to ``path`` and return it."""
        path = pathlib.Path(path)
        path.write_bytes(self.get_png())
        return path
