"""The one physics core: units and constants (pint), elasticity, equations of state; pure functions, no database."""
