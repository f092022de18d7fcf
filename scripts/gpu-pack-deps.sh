#!/usr/bin/env bash
# Packs wanrt's non-LibTorch dependencies, taken from this Debian machine's installed packages,
# into one folder that can travel to a machine with no Debian packages (a GPU box with CUDA
# PyTorch): headers, CMake package files, pkg-config files, the shared libraries and the
# shared libraries they need (minus glibc and libstdc++, which the target has), plus pkgconf
# and spm_train with wrappers. scripts/gpu-check.sh unpacks and uses it. See docs/gpu.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/gpu-pack-deps.sh [--out DIR] [--no-archive] [--keep-stage] [-h|--help]

Collects the files of wanrt's dependency packages (dpkg -L) and the shared libraries they load
(ldd) into DIR (default: .gpu-deps):

  DIR/deps.tar.xz   the packed tree (usr/..., bin/ wrappers), unpacked by gpu-check.sh
  DIR/MANIFEST.txt  packages with versions, libraries, sizes
  DIR/README.txt    what this is

With --no-archive the tree stays unpacked in DIR (larger; for inspection).
--keep-stage keeps the unpacked tree in DIR/stage next to the archive.

The folder must be ignored by git and named in the device tool's `carry`:
  echo /.gpu-deps/ >> .git/info/exclude
EOF
}

OUT_DIR=.gpu-deps
ARCHIVE=1
KEEP_STAGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=${2:?--out needs a directory}; shift 2 ;;
    --no-archive) ARCHIVE=0; shift ;;
    --keep-stage) KEEP_STAGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-pack-deps: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "gpu-pack-deps: error: $*" >&2; exit 1; }
say() { echo "gpu-pack-deps: $*" >&2; }

command -v dpkg-query >/dev/null || die "dpkg-query not found: run this on the Debian build machine"
command -v ldd >/dev/null || die "ldd not found"
ARCH_DIR=usr/lib/x86_64-linux-gnu
[ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 is supported (GPU machines are x86-64)"

# The -dev packages wanrt builds against (scripts/install-deps.sh), what their pkg-config files
# require, and the tools the GPU run calls: pkgconf (CMake's pkg_check_modules) and spm_train
# (the exporter trains its tiny tokenizer with it).
PACKAGES=(
  libfmt-dev libspdlog-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev catch2
  libsentencepiece-dev sentencepiece
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libswresample-dev
  libssl-dev
  pkgconf-bin libpkgconf3
)
# Provided by any glibc-based target; carrying them would break it.
SYSTEM_LIBS='^(ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libnsl|libstdc\+\+|libgcc_s)\.so'

for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    die "package $p is not installed (bash scripts/install-deps.sh)"
done

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
STAGE="$OUT_DIR/stage"
rm -rf "${STAGE:?}" "${OUT_DIR:?}/deps.tar.xz" "${OUT_DIR:?}/usr" "${OUT_DIR:?}/bin"
mkdir -p "$STAGE/$ARCH_DIR" "$STAGE/bin"

# 1. The packages' own files that a build needs (no docs or manuals).
say "copying the files of ${#PACKAGES[@]} packages"
for p in "${PACKAGES[@]}"; do
  dpkg -L "$p" | while IFS= read -r f; do
    case "$f" in
      /usr/include/*|/usr/lib/*|/usr/share/cmake/*|/usr/share/pkgconfig/*|/usr/bin/pkgconf|/usr/bin/spm_train) ;;
      *) continue ;;
    esac
    # Static libraries only where CMake files name them (Catch2's main); FFmpeg's are large.
    case "$p:$f" in catch2:*.a) ;; *.a|*/lintian/*) continue ;; esac
    if [ -L "$f" ] || [ -f "$f" ]; then
      mkdir -p "$STAGE$(dirname "$f")"
      cp -a "$f" "$STAGE$f"
    fi
  done
done

# 2. Shared libraries: the targets of the packages' .so links, and everything they (and the two
# programs) load, each under its real name and its soname link, in one directory.
copy_lib() {  # copy_lib PATH-AS-LINKED
  local path=$1 real name
  real=$(readlink -f "$path")
  name=$(basename "$path")
  [ -e "$STAGE/$ARCH_DIR/$(basename "$real")" ] || cp "$real" "$STAGE/$ARCH_DIR/"
  if [ "$name" != "$(basename "$real")" ] && [ ! -e "$STAGE/$ARCH_DIR/$name" ]; then
    ln -s "$(basename "$real")" "$STAGE/$ARCH_DIR/$name"
  fi
}
roots=()
while IFS= read -r link; do
  original="/${link#"$STAGE"/}"
  # Every hop of the chain (libfoo.so -> libfoo.so.1 -> libfoo.so.1.2.3) must exist.
  hop=$original
  while [ -L "$hop" ]; do
    next=$(readlink "$hop")
    case "$next" in /*) hop=$next ;; *) hop="$(dirname "$hop")/$next" ;; esac
    copy_lib "$hop"
  done
  roots+=("$(readlink -f "$original")")
done < <(find "$STAGE" -name '*.so' -type l)
roots+=(/usr/bin/pkgconf /usr/bin/spm_train)
say "resolving the shared libraries of ${#roots[@]} libraries and programs"
ldd "${roots[@]}" 2>/dev/null | awk '/=> \//{print $1, $3}' | sort -u |
  while read -r soname path; do
    if [[ "$soname" =~ $SYSTEM_LIBS ]]; then continue; fi
    copy_lib "$(dirname "$path")/$soname"
  done
# Anything ldd could not resolve would fail on the target too.
if ldd "${roots[@]}" 2>/dev/null | grep -q 'not found'; then
  die "unresolved libraries: $(ldd "${roots[@]}" 2>/dev/null | grep 'not found' | sort -u | tr '\n' ' ')"
fi

# 3. pkg-config files: make every /usr path relative to the file itself (${pcfiledir}).
while IFS= read -r pc; do
  rel=$(realpath --relative-to="$(dirname "$pc")" "$STAGE/usr")
  sed -i -e "s#^prefix=/usr\$#prefix=\${pcfiledir}/$rel#" \
         -e "s#=/usr/#=\${pcfiledir}/$rel/#g" \
         -e "s#\([ =]\)-\([IL]\)/usr/#\1-\2\${pcfiledir}/$rel/#g" "$pc"
  if grep -v '^#' "$pc" | grep -q '/usr/'; then die "$pc still names /usr after rewriting"; fi
done < <(find "$STAGE" -name '*.pc')

# 4. Wrappers that find the packed libraries without exporting LD_LIBRARY_PATH to everything.
write_wrapper() {  # write_wrapper NAME PROGRAM [ENV...]
  local name=$1 program=$2
  shift 2
  {
    echo '#!/bin/sh'
    echo '# Generated by scripts/gpu-pack-deps.sh: runs the packed program with the packed libraries.'
    # shellcheck disable=SC2016  # expanded by the wrapper, not here
    echo 'root=$(cd "$(dirname "$0")/.." && pwd)'
    echo "LD_LIBRARY_PATH=\"\$root/$ARCH_DIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\"; export LD_LIBRARY_PATH"
    for assignment in "$@"; do echo "$assignment"; done
    echo "exec \"\$root/$program\" \"\$@\""
  } >"$STAGE/bin/$name"
  chmod +x "$STAGE/bin/$name"
}
pc_dirs="\$root/$ARCH_DIR/pkgconfig:\$root/usr/share/pkgconfig"
write_wrapper pkg-config usr/bin/pkgconf \
  "PKG_CONFIG_LIBDIR=\"\${PKG_CONFIG_LIBDIR:-$pc_dirs}\"; export PKG_CONFIG_LIBDIR"
write_wrapper spm_train usr/bin/spm_train

# 5. Check the packed tree on its own: no dangling links, pkg-config answers from it, the
# programs start.
say "checking the packed tree"
dangling=$(find "$STAGE" -xtype l)
[ -z "$dangling" ] || die "dangling links in the packed tree: $dangling"
flags=$("$STAGE/bin/pkg-config" --cflags --libs libavformat libavcodec libswscale libavutil sentencepiece libcrypto) ||
  die "the packed pkg-config cannot resolve the FFmpeg/SentencePiece/libcrypto modules"
for word in $flags; do
  case "$word" in
    -I*|-L*)
      dir=${word:2}
      if [ ! -d "$dir" ] || [[ "$(cd "$dir" && pwd)" != "$STAGE"* ]]; then
        die "pkg-config flag $word points outside the packed tree"
      fi ;;
  esac
done
"$STAGE/bin/spm_train" --help >/dev/null 2>&1 || die "the packed spm_train does not start"
for f in fmt/fmt-config.cmake spdlog/spdlogConfig.cmake yaml-cpp/yaml-cpp-config.cmake; do
  [ -f "$STAGE/$ARCH_DIR/cmake/$f" ] || die "missing $ARCH_DIR/cmake/$f"
done
[ -f "$STAGE/usr/lib/cmake/Catch2/Catch2Config.cmake" ] || die "missing Catch2's CMake files"
[ -f "$STAGE/usr/share/cmake/CLI11/CLI11Config.cmake" ] || die "missing CLI11's CMake files"
[ -f "$STAGE/usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake" ] || die "missing nlohmann_json's CMake files"

# 6. Manifest and archive.
os_name=$(grep -m1 '^PRETTY_NAME=' /etc/os-release | cut -d= -f2- | tr -d '"')
{
  echo "# wanrt GPU dependencies, packed $(date -u +%Y-%m-%dT%H:%M:%SZ) on $os_name"
  echo "# glibc $(getconf GNU_LIBC_VERSION | cut -d' ' -f2) (the target needs this version or newer)"
  echo "## packages"
  dpkg-query -W -f='${Package} ${Version}\n' "${PACKAGES[@]}"
  echo "## libraries"
  (cd "$STAGE/$ARCH_DIR" && find . -maxdepth 1 -type f -name '*.so*' -printf '%f %s\n' | sort)
} >"$OUT_DIR/MANIFEST.txt"
cat >"$OUT_DIR/README.txt" <<'EOF'
Dependencies of wanrt for a machine without Debian packages, made by scripts/gpu-pack-deps.sh
and used by scripts/gpu-check.sh (docs/gpu.md). Not part of the repository.
EOF
stage_bytes=$(du -sb "$STAGE" | cut -f1)
if [ "$ARCHIVE" = 1 ]; then
  say "compressing $((stage_bytes / 1048576)) MiB (xz; takes a few minutes)"
  tar -C "$STAGE" -cf - . | xz -T0 -8 >"$OUT_DIR/deps.tar.xz"
  [ "$KEEP_STAGE" = 1 ] || rm -rf "$STAGE"
  archive_bytes=$(stat -c %s "$OUT_DIR/deps.tar.xz")
  say "wrote $OUT_DIR/deps.tar.xz ($((archive_bytes / 1048576)) MiB)"
  if [ "$archive_bytes" -gt $((56 * 1048576)) ]; then
    say "warning: over 56 MiB; the device tool carries at most 64 MiB with the working tree"
  fi
else
  mv "$STAGE/usr" "$STAGE/bin" "$OUT_DIR/"
  rmdir "$STAGE"
  say "wrote $OUT_DIR/ ($((stage_bytes / 1048576)) MiB, unpacked)"
fi
