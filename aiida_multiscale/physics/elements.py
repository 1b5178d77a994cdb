"""Reference data of the elements that the chain needs and no rung computes."""

from __future__ import annotations

__all__ = ('MELTING_POINTS',)

#: Melting points at 1 atm in K, CRC Handbook of Chemistry and Physics, 97th ed. (2016), "Melting, boiling, triple
#: and critical points of the elements".  Only the elements this chain can sensibly anneal (metals).
MELTING_POINTS = {
    'Ag': 1234.93, 'Al': 933.47, 'Au': 1337.33, 'Ca': 1115.0, 'Co': 1768.0, 'Cr': 2180.0, 'Cu': 1357.77,
    'Fe': 1811.0, 'Ir': 2719.0, 'Mg': 923.0, 'Mo': 2896.0, 'Nb': 2750.0, 'Ni': 1728.0, 'Pb': 600.61,
    'Pd': 1828.05, 'Pt': 2041.4, 'Rh': 2237.0, 'Sr': 1050.0, 'Ta': 3290.0, 'Ti': 1941.0, 'V': 2183.0,
    'W': 3695.0, 'Zr': 2128.0,
}  # fmt: skip
