"""Pure helpers per simulation code (no database): Quantum ESPRESSO, LAMMPS and MOOSE input builders, readers, fits."""
