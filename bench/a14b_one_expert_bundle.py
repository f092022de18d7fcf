"""A real-size T2V-A14B bundle (random weights, bf16, format 2) that fits a small disk: the
high-noise expert is written, and the low-noise expert's entry points at hard links to the
high-noise expert's files (same bytes, same hashes).

What it is for: running the first denoising step(s) of A14B (those above the MoE boundary,
which only the high-noise expert computes) on a machine whose disk cannot hold both 27 GiB
experts (bench/README.md, "Memory-mapped weights"). A run that reaches the low-noise expert
fails when it binds the weights: the file's metadata names dit_high_noise, and the loader
refuses a file that holds another component's weights.

    python3 bench/a14b_one_expert_bundle.py --out DIR   (from the repository root; ~40 GiB)
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "export"))

from wanrt_export import export as ex  # noqa: E402
from wanrt_export import manifest as mf  # noqa: E402
from wanrt_export.configs import get_config  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    cfg = get_config("t2v-a14b")
    modules = ex.random_modules(cfg, 0, "bf16", lazy=True)
    # A stand-in for the low-noise expert (tiny, replaced below); the rest real size.
    modules["dit_low_noise"] = ex.random_module(get_config("tiny-t2v-moe"), "dit_low_noise", 0)
    from wanrt_export.tokenizer import train_tiny_tokenizer
    import tempfile
    with tempfile.TemporaryDirectory() as tdir:
        tok = train_tiny_tokenizer(Path(tdir))
        doc = ex.export_bundle(cfg, modules, tok, a.out, "bf16", lambda m: print(m, file=sys.stderr, flush=True),
                               a.force)
    high, low = doc["components"]["dit_high_noise"], doc["components"]["dit_low_noise"]
    for key in ("file", "weights"):
        target = a.out / low[key]
        target.unlink()
        os.link(a.out / high[key], target)
    entry = dict(high)
    entry.update({"file": low["file"], "weights": low["weights"], "expert": "low_noise"})
    doc["components"]["dit_low_noise"] = entry
    mf.write_yaml(doc, a.out / "wanrt.yaml")
    print(f"{a.out}: dit_low_noise holds hard links to dit_high_noise's files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
