#!/usr/bin/env bash
# Installs the Debian packages the build needs. Idempotent: when everything is present it only
# checks (one dpkg query) and returns in well under a second.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libeigen3-dev catch2 libstb-dev libbenchmark-dev
  zlib1g-dev libtiff-dev libspng-dev libturbojpeg0-dev libjpeg-dev libboost-context-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all dependencies present"
