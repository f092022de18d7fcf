#!/usr/bin/env bash
# Every bench program's --quick mode, once, so none can rot (CI runs this; bench/README.md has
# the real runs). Needs `make test` first: the release build's wanrun and tiny bundles.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_dir=$(dirname "$(bash scripts/setup-libtorch.sh)")  # the pinned wheel's directory
py() { PYTHONPATH="$torch_dir" PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$@"; }
py bench/roofline.py --quick
py bench/vae_roofline.py --quick
py bench/e2e_stages.py build/release/bin/wanrun build/release/tiny-bundles/tiny-ti2v --quick \
    --size 64x64
py bench/ranks.py build/release/bin/wanrun build/release/tiny-bundles/tiny-ti2v --quick
