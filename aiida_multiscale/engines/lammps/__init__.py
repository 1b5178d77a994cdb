"""Pure helpers of the MD rung: potentials, LAMMPS input scripts, the Sigma5 bicrystal and output parsing."""
