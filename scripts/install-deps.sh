#!/usr/bin/env bash
# Installs wanrt's build and test dependencies from Debian's archive (apt-get only).
# Idempotent: packages already present are skipped, and apt-get runs only when
# something is missing. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev python3-torch libssl-dev libgloo-dev
  libopenblas0-openmp
  libfmt-dev libyaml-cpp-dev catch2 libspdlog-dev libcli11-dev nlohmann-json3-dev
  libsentencepiece-dev sentencepiece
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
  python3-pytest python3-numpy python3-matplotlib python3-yaml python3-sentencepiece
  binutils python3-dev pybind11-dev python3-pybind11 python3-pip python3-pil
  clang
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
