#!/usr/bin/env bash
# Builds the libFuzzer targets of test/fuzz with clang (build/fuzz, LibTorch from
# scripts/setup-libtorch.sh) and runs each on a seed corpus made from our own files.
#   scripts/fuzz.sh [--quick | --seconds N]     (--quick: 60 s per target, what CI runs)
# Findings (crash-*, leak-*, timeout-* files) are left in build/fuzz/findings/<target>/ and the
# script exits 1; each one becomes a regression test (docs/development.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=300
case "${1:-}" in
  --quick) seconds=60 ;;
  --seconds) seconds="$2" ;;
  "") ;;
  *) echo "usage: scripts/fuzz.sh [--quick | --seconds N]" >&2; exit 2 ;;
esac
command -v clang++ >/dev/null || bash scripts/install-deps.sh
prefix=$(bash scripts/setup-libtorch.sh)
build=build/fuzz
if [ ! -f "$build/build.ninja" ]; then
  mkdir -p "$build"
  if ! CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_PREFIX_PATH="$prefix" -DWANRT_FUZZ=ON -DWANRT_BUILD_TESTS=OFF -DWANRT_USE_PCH=OFF \
      -DWANRT_CUDA_SYNTAX_CHECK=OFF >"$build/configure.log" 2>&1; then
    cat "$build/configure.log" >&2
    exit 1
  fi
fi
targets=(fuzz_safetensors_header fuzz_manifest fuzz_optim_config fuzz_request_parsers fuzz_text_clean
         fuzz_image_reader)
cmake --build "$build" --target "${targets[@]}"

# Seeds: headers of our own weights files (the tiny bundles' when a build exported them) and a
# few written here.
corpus="$build/corpus/fuzz_safetensors_header"
mkdir -p "$corpus"
for f in build/*/tiny-bundles/*/*.safetensors; do
  [ -f "$f" ] && head -c 65536 "$f" > "$corpus/$(basename "$(dirname "$f")")-$(basename "$f")"
done
python3 - "$corpus" <<'PY'
import json, struct, sys
def write(name, header, data=b""):
    raw = json.dumps(header).encode()
    open(f"{sys.argv[1]}/{name}", "wb").write(struct.pack("<Q", len(raw)) + raw + data)
write("two", {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
              "__metadata__": {"wanrt_component": "dit"}}, bytes(22))
write("empty", {})
write("scalar", {"s": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}}, bytes(8))
PY

# The manifest reader: our own manifests and profiles.
corpus="$build/corpus/fuzz_manifest"
mkdir -p "$corpus"
cp models/profiles/*.yaml "$corpus/"
for f in build/*/tiny-bundles/*/wanrt.yaml; do
  [ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$f")").yaml"
done

# The optimization config, the request parsers, prompt cleaning: our own examples.
mkdir -p "$build/corpus/fuzz_optim_config" "$build/corpus/fuzz_request_parsers" "$build/corpus/fuzz_text_clean"
printf 'performance_priority: balanced\nmax_chunk_size: 8\nvram_safety_margin_mb: 1024\n' > "$build/corpus/fuzz_optim_config/small"
i=0
for s in "\x00640x352" "\x011280x720" "\x016GiB" "\x0124000000" "\x02bf16" "\x03sequential" "\x04offload" "\x05sdpa"; do
  printf "$s" > "$build/corpus/fuzz_request_parsers/seed$i"; i=$((i + 1))
done
printf 'a red fox &amp;amp; a &#x3000;cat\t\n' > "$build/corpus/fuzz_text_clean/html"
printf '  ideographic\xe3\x80\x80space  ' > "$build/corpus/fuzz_text_clean/spaces"

# Small images in every format the reader names, written with Pillow (python3-pil).
mkdir -p "$build/corpus/fuzz_image_reader"
/usr/bin/python3 - "$build/corpus/fuzz_image_reader" <<'PY'
import sys
from PIL import Image
out = sys.argv[1]
rgb = Image.new("RGB", (7, 5))
rgb.putdata([(x * 30 % 256, y * 50 % 256, (x * y * 9) % 256) for y in range(5) for x in range(7)])
rgb.save(f"{out}/rgb.png")
rgb.convert("RGBA").save(f"{out}/rgba.png")
rgb.convert("L").save(f"{out}/gray.png")
rgb.convert("P").save(f"{out}/palette.png")
rgb.save(f"{out}/rgb.jpg", quality=80)
rgb.convert("L").save(f"{out}/gray.jpg")
rgb.save(f"{out}/rgb.bmp")
rgb.save(f"{out}/rgb.gif")
rgb.save(f"{out}/rgb.webp", lossless=True)
Image.new("I;16", (4, 3)).save(f"{out}/gray16.png")
PY

status=0
for t in "${targets[@]}"; do
  findings="$build/findings/$t"
  mkdir -p "$findings"
  echo "fuzz.sh: $t for ${seconds}s"
  if ! "$build/test/fuzz/$t" "$build/corpus/$t" -max_total_time="$seconds" -max_len=65536 \
       -artifact_prefix="$findings/" -print_final_stats=1 2>"$build/$t.log"; then
    status=1
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)" "$build/$t.log" || true
  grep -E "cov: [0-9]+" "$build/$t.log" | tail -1 || true
done
exit "$status"
