#!/usr/bin/env bash
# Install a single-node Slurm (slurmctld, slurmd, the client tools) and munge from Debian, only what is missing
# (idempotent: no apt-get update when everything is there).  Never removes anything: removing Debian packages can
# cascade through libopenmpi and take pw.x with it.
#
# Then, optionally, what job accounting (sacct) needs: slurmdbd and a MariaDB server.  Only the server binaries
# (mariadb-server-core, not mariadb-server, whose scripts would set up and start a system database on port 3306) and the
# client: scripts/slurm.sh runs a private instance under .codes/slurm/.  If these cannot be installed, Slurm still works
# without accounting, so that failure is a warning, not an error.
set -euo pipefail
PACKAGES=(slurmctld slurmd slurm-client munge)
ACCOUNTING_PACKAGES=(slurmdbd mariadb-server-core mariadb-client-core)
source "$(dirname "$0")/apt_missing.sh"
# There is no systemd: the daemons are started by scripts/slurm.sh with a generated configuration.
apt_install_missing slurm "${PACKAGES[@]}"
for exe in slurmctld slurmd sbatch squeue scancel sinfo munged; do
    command -v "$exe" >/dev/null || [ -x "/usr/sbin/$exe" ] \
        || { echo "slurm: $exe is still missing after installing ${PACKAGES[*]}" >&2; exit 1; }
done
if [ "${SLURM_ACCOUNTING:-1}" != 0 ]; then
    apt_install_missing slurm-accounting "${ACCOUNTING_PACKAGES[@]}" \
        || echo "slurm: warning: could not install ${ACCOUNTING_PACKAGES[*]}: Slurm will run without accounting" >&2
fi
command -v pw.x >/dev/null || echo "slurm: warning: pw.x is missing (run scripts/install_system.sh)" >&2
