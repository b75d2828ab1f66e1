#!/usr/bin/env bash
# Install everything testbed needs on Debian 12 or Ubuntu 22.04+, idempotently:
# the Debian packages, a virtualenv in .venv/ and the package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: needs root to install packages: run it with sudo" >&2
  exit 3
fi

PACKAGES=(mininet bird2 nftables iptables iproute2 util-linux procps tcpdump iperf3 conntrack
          dnsutils arping curl iputils-ping socat ethtool graphviz python3 python3-venv python3-pip)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
PY=/usr/bin/python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  # Ubuntu 22.04 ships 3.10: take Debian/Ubuntu's python3.11 beside it
  PY=/usr/bin/python3.11
  for p in python3.11 python3.11-venv; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's mininet Python module is not on PyPI: the venv sees the system site-packages.
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: .venv has a Python older than 3.11: making it again"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv --system-site-packages .venv
fi
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! .venv/bin/python -c 'import mininet.node' 2>/dev/null; then
  # the system python is another minor version than the one mininet was packaged for
  # (Ubuntu 22.04: 3.10): link only the mininet package, never all of 3.10's dist-packages
  ln -sfn /usr/lib/python3/dist-packages/mininet "$SITE/mininet"
fi

STAMP=.venv/.installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "bootstrap: installing the testbed package into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$STAMP"
fi
