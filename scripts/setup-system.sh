#!/usr/bin/env bash
# System packages gensemble uses: Fashion-MNIST (Debian's dataset-fashion-mnist) and, for the
# browser test of the HTML report, Chromium with its driver. Pass the packages to install.
set -euo pipefail
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "gensemble setup: cannot install ${missing[*]} here (no apt-get, or not root)." >&2
  echo "  Fashion-MNIST: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz" >&2
  echo "  and t10k-labels-idx1-ubyte.gz in a folder and export GENSEMBLE_FASHION_MNIST=/that/folder." >&2
  echo "  Browser test: install Chromium and chromedriver, or it is skipped." >&2
fi
