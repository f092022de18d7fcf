#!/usr/bin/env bash
# The GPU check: builds wanrt against the LibTorch bundled with a CUDA build of PyTorch, runs
# the [gpu] tests, exports a random-weight bundle (TI2V-5B size by default), then times
# `wanrun plan` and `wanrun generate` under several --offload settings, and writes a Markdown
# and a JSON report. Made for a GPU machine without Debian packages: the other dependencies
# come from scripts/gpu-pack-deps.sh. See docs/gpu.md.
# The stage_* functions are called indirectly ("stage_$name"):
# shellcheck disable=SC2317
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/gpu-check.sh [options]

Stages (all by default, in this order):
  check     tools, GPU, PyTorch (CUDA, C++ ABI), glibc, disk
  deps      unpack the packed dependencies (--deps)
  build     configure + build against the LibTorch inside the installed torch
  test      the [gpu] test cases of every C++ test executable (and the whole suite with --all-tests)
  export    python3 -m wanrt_export export --random-weights --config CONFIG --dtype DTYPE
  plan      wanrun plan for each --offload setting (and once with the planner's choice)
  generate  wanrun generate for each --offload setting, timed
  bench     wanrun bench (plan matrix: CUDA allocator peaks, ledger, estimate, deviation) into
            OUT/bench, and micro_bench --only transfer (pinned/pageable bandwidth) when built
Each stage is timed; a failed stage skips the stages that need it. The report covers every
stage recorded in the work directory, so a run split over several calls reports them all.

Options:
  --out DIR          report directory (default: $OUT when set, else ./gpu-report)
  --work DIR         build tree, bundle, logs (default: /tmp/wanrt-gpu); kept between calls
  --deps DIR         packed dependencies (default: .gpu-deps; deps.tar.xz or an unpacked tree)
  --stages LIST      comma-separated stages to run (default: all of them)
  --config NAME      exporter configuration (default: ti2v-5b; mid-ti2v or tiny-ti2v are quicker)
  --dtype D          stored dtype of the exported text encoder and DiT (default: bf16)
  --bundle DIR       use this bundle instead of exporting one
  --prebuilt DIR     run the programs packed by scripts/gpu-pack-build.sh (built on the
                     development machine against the same torch 2.11) instead of building:
                     the build stage then only checks them against this PyTorch
  --offload LIST     comma-separated --offload settings (default: none,model,sequential,full)
  --device D         device for plan/generate (default: cuda)
  --size WxH         generate size (default: 320x192)
  --frames N         generate frames, 4n+1 (default: 5)
  --steps N          generate steps (default: 2)
  --jobs N           build jobs (default: all cores)
  --targets LIST     comma-separated build targets (default: all)
  --python PY        Python with CUDA PyTorch (default: python3)
  --all-tests        also run the whole ctest suite
  --werror           keep -Werror (default: off, so that a new compiler's warnings do not stop the run)
  --allow-cpu-torch  accept a LibTorch without CUDA (to try this script on a CPU machine)
  --deadline S       start no stage (and no further plan/generate run) after S seconds; the
                     report is rewritten after every stage, so a run killed at a time limit
                     still leaves one (device tool: 10 minutes per command)
  --fresh            forget the stages and runs recorded by earlier calls (keeps build and bundle)
  --dry-run          print the commands instead of running them
  -h, --help         this text

Exit status: 0 when every stage that ran passed, 1 otherwise, 2 on usage errors.
EOF
}

# ---------------------------------------------------------------------------------------------
# Options

OUT_DIR=${OUT:-./gpu-report}
WORK=/tmp/wanrt-gpu
DEPS_DIR=.gpu-deps
STAGES=check,deps,build,test,export,plan,generate,bench
CONFIG=ti2v-5b
DTYPE=bf16
BUNDLE=
OFFLOADS=none,model,sequential,full
DEVICE=cuda
SIZE=320x192
FRAMES=5
STEPS=2
JOBS=$(nproc)
TARGETS=
PY=python3
ALL_TESTS=0
WERROR=OFF
ALLOW_CPU=0
DRY_RUN=0
BUNDLE_GIVEN=
PREBUILT=
DEADLINE=
FRESH=0

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=${2:?}; shift 2 ;;
    --work) WORK=${2:?}; shift 2 ;;
    --deps) DEPS_DIR=${2:?}; shift 2 ;;
    --stages) STAGES=${2:?}; shift 2 ;;
    --config) CONFIG=${2:?}; shift 2 ;;
    --dtype) DTYPE=${2:?}; shift 2 ;;
    --bundle) BUNDLE=${2:?}; BUNDLE_GIVEN=1; shift 2 ;;
    --prebuilt) PREBUILT=$(cd "${2:?}" && pwd); shift 2 ;;
    --offload) OFFLOADS=${2:?}; shift 2 ;;
    --device) DEVICE=${2:?}; shift 2 ;;
    --size) SIZE=${2:?}; shift 2 ;;
    --frames) FRAMES=${2:?}; shift 2 ;;
    --steps) STEPS=${2:?}; shift 2 ;;
    --jobs) JOBS=${2:?}; shift 2 ;;
    --targets) TARGETS=${2:?}; shift 2 ;;
    --python) PY=${2:?}; shift 2 ;;
    --all-tests) ALL_TESTS=1; shift ;;
    --werror) WERROR=ON; shift ;;
    --allow-cpu-torch) ALLOW_CPU=1; shift ;;
    --deadline) DEADLINE=${2:?}; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for s in ${STAGES//,/ }; do
  case "$s" in check|deps|build|test|export|plan|generate|bench) ;;
    *) echo "gpu-check: unknown stage '$s' (see --help)" >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT_DIR" "$WORK"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(cd "$WORK" && pwd)
BUILD="$WORK/build"
[ -z "$PREBUILT" ] || BUILD="$WORK/prebuilt"   # unpacked from $PREBUILT/build.tar.xz
if [ -n "$PREBUILT" ] && [ "$ALL_TESTS" = 1 ]; then
  echo "gpu-check: --all-tests needs a build tree (ctest); not with --prebuilt" >&2
  exit 2
fi
TORCH_LIB=                      # set by the build stage with --prebuilt: PyTorch's lib/
DEPS_ROOT="$WORK/deps"          # unpacked dependencies (usr/, bin/)
STEPS_FILE="$WORK/steps.tsv"    # stage<TAB>status<TAB>seconds<TAB>note<TAB>call, one line per stage run
RUNS_FILE="$WORK/runs.tsv"      # kind<TAB>offload<TAB>rc<TAB>seconds<TAB>json file<TAB>call
CALL=$(date -u +%H:%M:%S)       # tells this call's records from earlier calls' in the report
LOG="$OUT_DIR/gpu-check.log"
[ -n "$BUNDLE" ] || BUNDLE="$WORK/bundle-$CONFIG-$DTYPE"
if [ "$DRY_RUN" = 1 ]; then  # a dry run leaves the record of earlier runs alone
  STEPS_FILE=/dev/null
  RUNS_FILE=/dev/null
elif [ "$FRESH" = 1 ]; then
  rm -f "$STEPS_FILE" "$RUNS_FILE" "$WORK"/*-gpu.xml "$WORK/ctest-all.xml"
fi
PROMPT="a red fox running through fresh snow"

# ---------------------------------------------------------------------------------------------
# Helpers

log() { echo "gpu-check: $*" | tee -a "$LOG" >&2; }
# run CMD...: echo it, and run it unless --dry-run; output goes to the log too.
run() {
  echo "+ $*" | tee -a "$LOG" >&2
  [ "$DRY_RUN" = 1 ] && return 0
  "$@" 2>&1 | tee -a "$LOG"
}
# query CMD...: the output of a command the plan depends on (a placeholder with --dry-run).
query() {
  if [ "$DRY_RUN" = 1 ]; then echo "<$*>"; else "$@"; fi
}
now() { date +%s.%N; }
T0=$(now)
# past_deadline: whether --deadline seconds have gone by since the script started.
past_deadline() {
  [ -n "$DEADLINE" ] && awk -v a="$T0" -v b="$(now)" -v d="$DEADLINE" 'BEGIN { exit !(b - a > d) }'
}
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" "$CALL" >>"$STEPS_FILE"; }
wants() { [[ ",$STAGES," == *",$1,"* ]]; }
# passed STAGE: whether STAGE's last recorded run passed (an existing bundle stands for export).
passed() {
  if [ "$1" = export ] && [ -f "$BUNDLE/wanrt.yaml" ]; then return 0; fi
  [ -f "$STEPS_FILE" ] && awk -F'\t' -v s="$1" '$1 == s { st = $2 } END { exit st == "ok" ? 0 : 1 }' "$STEPS_FILE"
}
die_stage() { log "$*"; exit 1; }

# stage NAME NEEDS...: runs stage_NAME in a subshell with `set -e`, timed and recorded; skipped
# (and recorded so) when a stage it needs has not passed in this or an earlier call.
FAILED=0
stage() {
  local name=$1 need start rc
  shift
  wants "$name" || return 0
  if past_deadline; then
    log "skipping $name: past the --deadline of $DEADLINE s"
    record "$name" skipped 0 "deadline"
    return 0
  fi
  for need in "$@"; do
    if [ "$DRY_RUN" = 0 ] && ! passed "$need"; then
      log "skipping $name: stage $need has not passed"
      record "$name" skipped 0 "needs $need"
      return 0
    fi
  done
  log "=== $name"
  start=$(now)
  set +e
  (set -e; "stage_$name")
  rc=$?
  set -e
  if [ "$rc" = 0 ]; then
    record "$name" ok "$(elapsed "$start")"
  else
    record "$name" failed "$(elapsed "$start")" "exit $rc; see gpu-check.log"
    FAILED=1
  fi
  write_report
}

# The environment for programs that load the packed libraries (wanrun, tests, spm_train).
# With --prebuilt, also this PyTorch's LibTorch: the programs' RUNPATH names the development
# machine's copy, which is not here.
with_deps_env() {
  PATH="$DEPS_ROOT/bin:$PATH" \
    LD_LIBRARY_PATH="${TORCH_LIB:+$TORCH_LIB:}$DEPS_ROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$@"
}
if [ -n "$PREBUILT" ]; then
  TORCH_LIB=$(query "$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
fi

# ---------------------------------------------------------------------------------------------
# Stages

stage_check() {
  local tool abi glibc need_gb free_gb
  for tool in cmake ninja ctest "$PY"; do
    command -v "$tool" >/dev/null || die_stage "$tool not found"
  done
  command -v c++ >/dev/null || command -v g++ >/dev/null || die_stage "no C++ compiler (c++ or g++)"
  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || [ "$ALLOW_CPU" = 1 ] ||
    die_stage "nvcc not found (PyTorch's CMake files need the CUDA toolkit)"
  run cmake --version
  run "$(command -v c++ || command -v g++)" --version
  if command -v nvidia-smi >/dev/null; then run nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
  run "$PY" -c 'import sys, torch; print("python", sys.version.split()[0]); print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); print("cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI); print("cmake prefix", torch.utils.cmake_prefix_path)'
  [ "$DRY_RUN" = 1 ] && return 0
  abi=$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  if [ "$abi" != 1 ]; then
    die_stage "this PyTorch's LibTorch uses the old C++ ABI (_GLIBCXX_USE_CXX11_ABI=0), but the
packed Debian libraries (fmt, spdlog, yaml-cpp, SentencePiece, ...) use the new one: std::string
arguments would not link. Use a PyTorch built with the new ABI (the PyTorch 2.x wheels on
manylinux_2_28, or 'cxx11-abi' LibTorch downloads)."
  fi
  if [ "$ALLOW_CPU" = 0 ] && [ "$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')" != 1 ]; then
    die_stage "torch.cuda.is_available() is False: no GPU visible to this PyTorch"
  fi
  glibc=$(getconf GNU_LIBC_VERSION | cut -d' ' -f2)
  if ! printf '2.36\n%s\n' "$glibc" | sort -V -C; then
    die_stage "glibc $glibc is older than 2.36, which the packed Debian 12 libraries need"
  fi
  # A bf16 bundle takes 2 bytes per parameter: about 22 GB for TI2V-5B with its text encoder.
  need_gb=$(case "$CONFIG" in ti2v-5b) echo 30 ;; t2v-a14b|i2v-a14b) echo 75 ;; *) echo 2 ;; esac)
  free_gb=$(df -Pk "$WORK" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
  log "free disk at $WORK: ${free_gb} GB (the bundle and build need about ${need_gb} GB)"
  [ "$free_gb" -ge "$need_gb" ] || [ -n "$BUNDLE_GIVEN" ] || die_stage "not enough disk for a $CONFIG bundle"
}

stage_deps() {
  if [ -d "$DEPS_DIR/usr" ]; then
    run ln -sfn "$(cd "$DEPS_DIR" && pwd)" "$DEPS_ROOT"
  elif [ -f "$DEPS_DIR/deps.tar.xz" ]; then
    if [ -f "$DEPS_ROOT/.unpacked" ] && [ "$DEPS_ROOT/.unpacked" -nt "$DEPS_DIR/deps.tar.xz" ]; then
      log "dependencies already unpacked in $DEPS_ROOT"
      return 0
    fi
    run rm -rf "$DEPS_ROOT"
    # Python's tarfile rather than tar -J: xz is not on every image, Python is.
    run "$PY" -c 'import sys, tarfile
with tarfile.open(sys.argv[1]) as t:  # the "data" filter where Python has it (3.12+)
    t.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))' \
      "$DEPS_DIR/deps.tar.xz" "$DEPS_ROOT"
    run touch "$DEPS_ROOT/.unpacked"
  elif [ "$DRY_RUN" = 1 ]; then
    log "(no $DEPS_DIR/deps.tar.xz here; on the GPU machine it is unpacked into $DEPS_ROOT)"
  else
    die_stage "no packed dependencies in $DEPS_DIR: run scripts/gpu-pack-deps.sh on the Debian machine and carry the folder"
  fi
  [ "$DRY_RUN" = 1 ] || [ -x "$DEPS_ROOT/bin/pkg-config" ] || die_stage "$DEPS_ROOT/bin/pkg-config missing"
}

stage_build() {
  local torch_cmake lib="$DEPS_ROOT/usr/lib/x86_64-linux-gnu" want have
  if [ -n "$PREBUILT" ]; then
    [ -f "$PREBUILT/BUILD_INFO" ] || die_stage "$PREBUILT has no BUILD_INFO: make it with scripts/gpu-pack-build.sh"
    want=$(sed -n 's/^torch_version=//p' "$PREBUILT/BUILD_INFO")
    have=$(query "$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
    [ "$DRY_RUN" = 1 ] || [ "$want" = "$have" ] ||
      die_stage "the prebuilt programs need LibTorch $want; this PyTorch is $have (build here instead: drop --prebuilt)"
    log "prebuilt: $(tr '\n' ' ' <"$PREBUILT/BUILD_INFO")"
    run rm -rf "$BUILD"
    run "$PY" -c 'import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    t.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))' \
      "$PREBUILT/build.tar.xz" "$BUILD"
    run with_deps_env "$BUILD/bin/wanrun" --version
    return 0
  fi
  # The LibTorch prefix (…/torch), not torch.utils.cmake_prefix_path: TorchConfig's
  # find_library then finds LibTorch's own libraries first (docs/development.md).
  torch_cmake=$(query "$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"
  # Packed packages first in the prefix path, so that a fmt or spdlog inside PyTorch's tree does
  # not shadow them; rpath-link lets the linker find the libraries the packed ones load.
  run cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_PREFIX_PATH=$DEPS_ROOT/usr;$torch_cmake" \
    "-DPKG_CONFIG_EXECUTABLE=$DEPS_ROOT/bin/pkg-config" \
    "-DWANRT_PYTHON=$(command -v "$PY")" \
    "-DWANRT_WERROR=$WERROR" \
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$lib" \
    "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,-rpath-link,$lib" \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 | tee "$WORK/configure.log"
  if [ "$DRY_RUN" = 0 ] && ! grep -q 'wanrt: LibTorch .*CUDA: ON' "$WORK/configure.log"; then
    if [ "$ALLOW_CPU" = 1 ]; then
      log "LibTorch has no CUDA: building the CPU-only variant (--allow-cpu-torch)"
    else
      die_stage "CMake found a LibTorch without CUDA (see 'wanrt: LibTorch ... CUDA:' in the log)"
    fi
  fi
  # shellcheck disable=SC2086  # TARGETS: a word list
  run cmake --build "$BUILD" -j "$JOBS" ${TARGETS:+--target ${TARGETS//,/ }}
  run with_deps_env "$BUILD/bin/wanrun" --version
}

stage_test() {
  local exe name rc=0
  rm -f "$WORK"/*-gpu.xml "$WORK/ctest-all.xml"
  # The tiny bundles the C++ tests read, written by the exporter under this PyTorch.
  if [ -n "$PREBUILT" ]; then
    (cd "$SRC/models/export" &&
      run with_deps_env "$PY" -m wanrt_export tiny-bundles --out "$WORK/tiny-bundles" --force)
    export WANRT_TINY_BUNDLES="$WORK/tiny-bundles"
  else
    run with_deps_env ctest --test-dir "$BUILD" -R '^fixture\.tiny_bundles$' --output-on-failure
  fi
  for exe in "$BUILD"/test/test_*; do
    [ -x "$exe" ] || continue
    name=$(basename "$exe")
    [ "$name" != test_c_api ] || continue  # a C program without Catch2 (and without [gpu] cases)
    # Catch2 v2: only the cases tagged [gpu]; its XML keeps the WANRT_SKIP warnings (JUnit
    # would count a skipped case as passed).
    if ! run with_deps_env "$exe" "[gpu]" --reporter xml --durations yes --out "$WORK/$name-gpu.xml"; then
      rc=1
    fi
  done
  if [ "$ALL_TESTS" = 1 ]; then
    run with_deps_env ctest --test-dir "$BUILD" -j "$JOBS" --output-on-failure \
      --output-junit "$WORK/ctest-all.xml" || rc=1
  fi
  return "$rc"
}

stage_export() {
  if [ -n "$BUNDLE_GIVEN" ]; then
    log "using the given bundle $BUNDLE"
    return 0
  fi
  log "in $SRC/models/export:"
  (cd "$SRC/models/export" &&
    run with_deps_env "$PY" -m wanrt_export export --random-weights --config "$CONFIG" \
      --seed 0 --dtype "$DTYPE" --out "$BUNDLE" --force)
  run du -sh "$BUNDLE"
}

# timed_run KIND OFFLOAD JSON CMD...: runs a wanrun command, records its exit status and wall
# time, keeps its JSON output.
timed_run() {
  local kind=$1 offload=$2 json=$3 start rc
  shift 3
  start=$(now)
  echo "+ $* > $json" | tee -a "$LOG" >&2
  if [ "$DRY_RUN" = 1 ]; then rc=0; else
    set +e
    with_deps_env "$@" >"$json" 2>>"$LOG"
    rc=$?
    set -e
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$offload" "$rc" "$(elapsed "$start")" "$json" "$CALL" >>"$RUNS_FILE"
  log "$kind --offload $offload: exit $rc"
  return 0
}

stage_plan() {
  local o wanrun="$BUILD/bin/wanrun"
  past_deadline && return 0
  timed_run plan planned "$WORK/plan-planned.json" "$wanrun" plan --model "$BUNDLE" \
    --device "$DEVICE" --size "$SIZE" --frames "$FRAMES" --json
  for o in ${OFFLOADS//,/ }; do
    if past_deadline; then log "deadline: no more plan runs"; return 0; fi
    timed_run plan "$o" "$WORK/plan-$o.json" "$wanrun" plan --model "$BUNDLE" \
      --device "$DEVICE" --offload "$o" --size "$SIZE" --frames "$FRAMES" --json
  done
}

stage_generate() {
  local o first=1 verify wanrun="$BUILD/bin/wanrun" help
  help=$(query with_deps_env "$wanrun" generate --help)
  if [ "$DRY_RUN" = 0 ] && ! grep -q -- '--offload' <<<"$help"; then
    die_stage "this wanrun generate has no --offload option yet"
  fi
  [ "$DRY_RUN" = 1 ] || rm -f "$WORK"/generate-*.pt
  for o in ${OFFLOADS//,/ }; do
    if past_deadline; then log "deadline: no more generate runs"; return 0; fi
    # The bundle's SHA-256 check once (tens of seconds at TI2V-5B size), not every run.
    verify=--no-verify
    if [ "$first" = 1 ]; then verify=; first=0; fi
    timed_run generate "$o" "$WORK/generate-$o.json" "$wanrun" generate --model "$BUNDLE" \
      --prompt "$PROMPT" --size "$SIZE" --frames "$FRAMES" --steps "$STEPS" --seed 0 \
      --device "$DEVICE" --offload "$o" --json --progress none ${verify:+"$verify"} \
      --out "$WORK/generate-$o.pt"
  done
  compare_frames
}

# Every offload policy moves weights, never changes arithmetic: the uint8 frames (.pt files)
# of the runs must be identical byte for byte. Recorded as a row of its own in the report.
compare_frames() {
  local o ref= differ=
  [ "$DRY_RUN" = 1 ] && return 0
  for o in ${OFFLOADS//,/ }; do
    [ -f "$WORK/generate-$o.pt" ] || continue
    if [ -z "$ref" ]; then ref=$o; continue; fi
    cmp -s "$WORK/generate-$ref.pt" "$WORK/generate-$o.pt" || differ="$differ $o"
  done
  if [ -z "$ref" ]; then
    record frames-identical skipped 0 "no generate output"
  elif [ -n "$differ" ]; then
    log "frames differ from --offload $ref for:$differ"
    record frames-identical failed 0 "differ from $ref:$differ"
    return 1
  else
    log "frames identical across --offload ${OFFLOADS}"
    record frames-identical ok 0 "across ${OFFLOADS}"
  fi
}

# The VRAM/speed matrix (`wanrun bench`: CUDA allocator peaks, ledger, estimate, deviation) and
# the host<->device bandwidth with and without pinned memory (micro_bench --only transfer).
stage_bench() {
  local wanrun="$BUILD/bin/wanrun"
  past_deadline && return 0
  run with_deps_env "$wanrun" bench --model "$BUNDLE" --device "$DEVICE" --size "$SIZE" \
    --frames "$FRAMES" --steps "$STEPS" --repeat 2 --dtypes fp32,bf16,fp16 --no-verify \
    --progress none --out "$OUT_DIR/bench"
  if [ -x "$BUILD/bench/micro_bench" ]; then
    run with_deps_env "$BUILD/bench/micro_bench" "$BUNDLE" --only transfer | tee "$OUT_DIR/transfer.txt"
  else
    log "micro_bench not built (add it to --targets); no transfer bandwidth"
  fi
}

# ---------------------------------------------------------------------------------------------
# Report: every stage and run recorded in the work directory, as JSON and Markdown.

write_report() {
  [ "$DRY_RUN" = 1 ] && return 0  # nothing ran
  "$PY" - "$STEPS_FILE" "$RUNS_FILE" "$WORK" "$OUT_DIR" "$CONFIG" "$DTYPE" "$SIZE" "$FRAMES" "$STEPS" "$DEVICE" >/dev/null <<'PYEOF'
import glob, json, os, platform, subprocess, sys, time
import xml.etree.ElementTree as ET

steps_file, runs_file, work, out_dir, config, dtype, size, frames, steps, device = sys.argv[1:11]

def rows(path, n):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(line.rstrip("\n").split("\t") + [""] * n)[:n] for line in f if line.strip()]

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception as e:  # the report must not fail for want of a tool
        return f"unavailable ({e})"

# The machine, read once per work directory (importing torch takes seconds; the report is
# rewritten after every stage).
env_file = os.path.join(work, "environment.json")
try:
    with open(env_file) as f:
        env = json.load(f)
except (OSError, ValueError):
    env = {"host": platform.node(), "kernel": platform.release(),
           "gpu": sh("nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader"),
           "torch": sh(sys.executable + " -c 'import torch; print(torch.__version__, torch.version.cuda)'"),
           "compiler": sh("(c++ --version || g++ --version) | head -1"), "cmake": sh("cmake --version | head -1")}
    with open(env_file, "w") as f:
        json.dump(env, f)
env = dict(env, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
stages = [{"stage": s, "status": st, "seconds": float(sec or 0), "note": note, "call": call}
          for s, st, sec, note, call in rows(steps_file, 5)]

def catch2_cases(path, root):
    # Catch2's XML reporter: TestCase > (Section >)* Expression/Exception/FatalErrorCondition/Warning.
    for case in root.iter("TestCase"):
        result = case.find("OverallResult")
        ok = result is not None and result.get("success") == "true"
        skipped = any("WANRT_SKIP" in "".join(w.itertext()) for w in case.iter("Warning"))
        failures = []
        for e in case.iter():
            if (e.tag == "Expression" and e.get("success") == "false") or e.tag in ("Exception", "FatalErrorCondition"):
                where = f"{e.get('filename', '')}:{e.get('line', '')}"
                text = " ".join(f"{x.tag}: {' '.join(''.join(x.itertext()).split())}" for x in e) \
                    or " ".join("".join(e.itertext()).split())
                failures.append(f"{where}: {text}")
        # INFO messages: written beside the failed assertion they belong to.
        failures += [f"info: {''.join(i.itertext()).strip()}" for i in case.iter("Info")]
        yield {"file": os.path.basename(path), "name": case.get("name"),
               "status": "failed" if not ok else ("skipped" if skipped else "passed"),
               "seconds": float((result.get("durationInSeconds") if result is not None else 0) or 0),
               "message": "\n".join(failures)[:4000]}

tests = []
for path in sorted(glob.glob(os.path.join(work, "*-gpu.xml")) + glob.glob(os.path.join(work, "ctest-all.xml"))):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        tests.append({"file": os.path.basename(path), "name": os.path.basename(path), "status": "failed",
                      "seconds": 0.0, "message": f"unreadable XML: {e}"})
        continue
    if root.tag == "Catch":
        tests.extend(catch2_cases(path, root))
        continue
    for case in root.iter("testcase"):  # ctest's JUnit
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped") is not None or case.get("status") in ("notrun", "disabled")
        status = "failed" if failure is not None or error is not None else ("skipped" if skipped else "passed")
        text = "".join((failure if failure is not None else error).itertext())[:2000] if status == "failed" else ""
        tests.append({"file": os.path.basename(path), "name": case.get("name"), "status": status,
                      "seconds": float(case.get("time") or 0), "message": text})

runs = []
for kind, offload, rc, sec, path, call in rows(runs_file, 6):
    doc = None
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        pass
    runs.append({"kind": kind, "offload": offload, "exit": int(rc or 0), "wall_s": float(sec or 0), "call": call,
                 "output": doc})

report = {"environment": env, "settings": {"config": config, "dtype": dtype, "size": size, "frames": int(frames),
          "steps": int(steps), "device": device}, "stages": stages, "tests": tests, "runs": runs}
with open(os.path.join(out_dir, "report.json"), "w") as f:
    json.dump(report, f, indent=1)

def gib(n):
    return f"{n / 2**30:.2f} GiB" if isinstance(n, (int, float)) else "-"

md = ["# wanrt GPU check", "", f"{env['date']} on {env['host']}", "",
      "| | |", "|---|---|"]
md += [f"| {k} | {v} |" for k, v in env.items() if k not in ("date", "host")]
md += [f"| bundle | {config}, {dtype} |", f"| request | {size}, {frames} frames, {steps} steps, --device {device} |", "",
       "## Stages", "", "Calls are named by their start time (UTC).", "",
       "| call | stage | status | seconds | note |", "|---|---|---|---|---|"]
md += [f"| {s['call']} | {s['stage']} | {s['status']} | {s['seconds']:.1f} | {s['note']} |" for s in stages]
if tests:
    counts = {k: sum(t.get("status") == k for t in tests) for k in ("passed", "failed", "skipped")}
    md += ["", "## Tests", "", f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped", "",
           "| test | status | seconds |", "|---|---|---|"]
    md += [f"| {t.get('name')} | {t.get('status')} | {t.get('seconds', 0):.2f} |" for t in tests]
    for t in tests:
        if t.get("status") == "failed":
            md += ["", f"### {t['name']}", "", "```", t["message"].strip(), "```"]
for kind in ("plan", "generate"):
    sel = [r for r in runs if r["kind"] == kind]
    if not sel:
        continue
    md += ["", f"## wanrun {kind}", ""]
    if kind == "plan":
        md += ["| call | --offload | exit | wall s | feasible | plan | device peak (est.) | host peak (est.) |",
               "|---|---|---|---|---|---|---|---|"]
        for r in sel:
            p = r["output"] or {}
            plan = p.get("plan") or {}
            summary = ", ".join(f"{k} {plan[k]}" for k in ("device", "dtype", "offload", "text_encoder") if k in plan) or "-"
            est = p.get("estimate") or {}
            md.append(f"| {r['call']} | {r['offload']} | {r['exit']} | {r['wall_s']:.1f} | {p.get('feasible', '-')} | {summary} | "
                      f"{gib(est.get('device_peak'))} | {gib(est.get('host_peak'))} |")
    else:
        md += ["| call | --offload | exit | wall s | load s | stages (s) | plan | ledger peak | peak RSS |",
               "|---|---|---|---|---|---|---|---|---|"]
        for r in sel:
            g = r["output"] or {}
            times = g.get("times_s", {})
            plan = g.get("plan") or {}
            st = ", ".join(f"{k} {v:.1f}" for k, v in times.items() if k not in ("load", "total"))
            md.append(f"| {r['call']} | {r['offload']} | {r['exit']} | {r['wall_s']:.1f} | {times.get('load', 0):.1f} | {st or '-'} | "
                      f"{plan.get('summary', '-')} | {gib(plan.get('ledger_peak_bytes'))} | {gib(g.get('peak_rss_bytes'))} |")
md += ["", "Full outputs (plans, run reports with device peaks) are in report.json; the command log in gpu-check.log."]
with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print(os.path.join(out_dir, "report.md"))
PYEOF
}

# ---------------------------------------------------------------------------------------------

log "source $SRC, work $WORK, report $OUT_DIR, stages $STAGES"
stage check
stage deps
stage build deps
stage test build
stage export deps
stage plan build export
stage generate build export
stage bench build export
write_report >/dev/null
log "report: $OUT_DIR/report.md"
exit "$FAILED"
