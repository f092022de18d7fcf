#!/usr/bin/env bash
# Installs the pinned LibTorch once per machine: PyPI's torch wheel (LibTorch built with CUDA
# 13.0, with its CMake package) into a versioned directory outside the checkout, so every clone
# reuses it. Idempotent; the install goes to a temporary directory renamed into place when
# complete, so an interrupted download never leaves a half-installed LibTorch behind.
# Prints the LibTorch prefix (…/torch, holding lib/, include/ and share/cmake/Torch) on stdout,
# for -DCMAKE_PREFIX_PATH; progress goes to stderr. (Not torch.utils.cmake_prefix_path, which
# is …/torch/share/cmake: with it CMake finds the Torch package but TorchConfig's find_library
# looks in the system directories first and picks up Debian's libtorch.so.)
#   WANRT_TORCH_HOME   where versions live (default: ${XDG_CACHE_HOME:-$HOME/.cache}/wanrt)
set -euo pipefail

VERSION=2.11.0
ROOT=${WANRT_TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wanrt}
DEST=$ROOT/torch-$VERSION

if [[ ! -f $DEST/.complete ]]; then
  mkdir -p "$ROOT"
  TMP=$(mktemp -d "$ROOT/.torch-$VERSION.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  echo "setup-libtorch: installing torch==$VERSION (LibTorch + CUDA 13.0 libraries, ~4.6 GB," \
       "about a minute on a fast link) into $DEST" >&2
  /usr/bin/python3 -m pip install --progress-bar on --no-warn-script-location \
    --disable-pip-version-check --target "$TMP" "torch==$VERSION" >&2
  rm -rf "$DEST"
  mv "$TMP" "$DEST"
  trap - EXIT
  touch "$DEST/.complete"
  echo "setup-libtorch: done ($(du -sh "$DEST" | cut -f1))" >&2
fi
echo "$DEST/torch"
