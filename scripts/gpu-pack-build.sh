#!/usr/bin/env bash
# Packs the programs of a wanrt build made here against the pinned LibTorch 2.11 (the release
# preset) for the GPU machine, whose PyTorch is the same torch 2.11.0+cu130: the device then
# runs them against its own LibTorch (scripts/gpu-check.sh --prebuilt DIR) instead of compiling
# there, which saves minutes of device time. See docs/gpu.md.
set -euo pipefail

usage() {
  cat <<'EOF2'
Usage: scripts/gpu-pack-build.sh [--build DIR] [--out DIR] [-h|--help]

Packs from the build tree (default: build/release) into DIR (default: .gpu-build):
  build.tar.xz   bin/wanrun, lib/libwanrt*.so*, test/test_* (the C++ test executables) and
                 bench/micro_bench (about 3 MiB; the device tool carries at most 64 MiB and
                 the packed dependencies take about 48)
  BUILD_INFO     the LibTorch version, wanrun --version, the commit
Refuses a build without the CUDA backend or against another LibTorch than the pinned one.
The folder must be ignored by git and named in the device tool's `carry`:
  echo /.gpu-build/ >> .git/info/exclude
EOF2
}

BUILD=build/release
OUT_DIR=.gpu-build
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=${2:?--build needs a directory}; shift 2 ;;
    --out) OUT_DIR=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-pack-build: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "gpu-pack-build: $*" >&2; exit 1; }
[ -x "$BUILD/bin/wanrun" ] || die "$BUILD/bin/wanrun not found: build first (make build)"
version=$(grep -m1 '^WANRT_TORCH_VERSION:' "$BUILD/CMakeCache.txt" | cut -d= -f2)
[ "$version" = 2.11.0 ] || die "$BUILD was configured against LibTorch '${version:-unknown}', not the pinned 2.11.0"
info=$("$BUILD/bin/wanrun" --version)
[[ $info == *"CUDA backend: yes"* ]] || die "$BUILD has no CUDA backend ($info)"

rm -rf "$OUT_DIR"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$OUT_DIR" "$stage/bin" "$stage/lib" "$stage/test" "$stage/bench"
cp -a "$BUILD/bin/wanrun" "$stage/bin/"
cp -a "$BUILD"/lib/libwanrt*.so* "$stage/lib/" 2>/dev/null || true
for exe in "$BUILD"/test/test_*; do
  if [ -f "$exe" ] && [ -x "$exe" ]; then cp -a "$exe" "$stage/test/"; fi
done
if [ -x "$BUILD/bench/micro_bench" ]; then cp -a "$BUILD/bench/micro_bench" "$stage/bench/"; fi
tar -cJf "$OUT_DIR/build.tar.xz" -C "$stage" .
{
  echo "torch_version=$version"
  echo "wanrun=$info"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$OUT_DIR/BUILD_INFO"
echo "gpu-pack-build: $(du -sh "$OUT_DIR" | cut -f1) in $OUT_DIR ($info)"
