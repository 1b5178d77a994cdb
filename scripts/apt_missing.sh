# Sourced by the install scripts: `apt_install_missing TAG PACKAGE...` installs, from Debian, only the packages that
# are missing (no apt-get update when nothing is).  Never removes anything: removing Debian packages can cascade
# through libopenmpi and take pw.x with it.
apt_install_missing() {
    local tag="$1"
    shift
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "$tag: Debian packages present"
        return 0
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "$tag: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
