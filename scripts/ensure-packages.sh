#!/usr/bin/env bash
# Installs the Debian packages named on the command line that are not installed yet
# (`bash scripts/ensure-packages.sh mosquitto nats-server`): `apt-get update` once, then
# `apt-get install -y` the missing ones. Does nothing when every one is present. Installing does not
# start their services; the tests and benchmarks start their own processes.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 <debian-package>..." >&2; exit 2; }

missing=()
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -gt 0 ] || exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-packages: ${missing[*]} missing and there is no apt-get to install them" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "ensure-packages: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "ensure-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
