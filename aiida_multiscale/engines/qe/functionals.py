"""The known systematic errors of the exchange-correlation functionals, stated with every DFT result that uses them."""

from __future__ import annotations

__all__ = ('FUNCTIONAL_BIAS',)

#: Functional -> its known bias against experiment, with the primary source.  Only LDA is stated: it is the fallback
#: the chain takes silently otherwise (Debian has no PBE pseudopotential for Al, Ag, Au, Pd).
FUNCTIONAL_BIAS = {
    'lda': (
        'LDA overbinds: lattice constants typically 1-2 % too small, bulk moduli and elastic constants typically '
        '10-20 % (and more) too large for the late transition metals (Haas, Tran and Blaha, Phys. Rev. B 79, 085104 '
        '(2009), LDA against experiment for 60 solids).'
    ),
}
