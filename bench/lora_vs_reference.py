#!/usr/bin/env python3
"""LoRAs in every layout: the C++ pipeline (wanrun generate --lora) against the eager Python
reference (ReferencePipeline.from_bundle(loras=...)) on one bundle.

usage: bench/lora_vs_reference.py WANRUN BUNDLE [--steps N] [--rank R] [--strength S]

For each layout the exporter's synth-lora writes (official, official-noalpha, peft, peft-bare,
diffusers), a synthetic LoRA for the bundle's DiT (rank R, its own seed) is applied at strength
S on both sides with the same prompt, seed and steps; then all five stacked with the lightning
preset. Prints a Markdown table of the largest frame difference (uint8 levels) and the share of
differing values.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

EXPORT_DIR = Path(__file__).resolve().parents[1] / "models" / "export"
sys.path.insert(0, str(EXPORT_DIR))
PROMPT = "a red fox running through fresh snow"
LAYOUTS = ["official", "official-noalpha", "peft", "peft-bare", "diffusers"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wanrun")
    ap.add_argument("bundle")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--strength", type=float, default=0.8)
    a = ap.parse_args()
    import torch
    from wanrt_export.lora_synth import bundle_shapes, write_synth_lora
    from wanrt_export.pipeline import ReferencePipeline

    torch.set_num_threads(2)
    shapes = bundle_shapes(a.bundle)
    print("| LoRA | sampling | max difference (levels) | values differing |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for seed, layout in enumerate(LAYOUTS):
            files.append(write_synth_lora(Path(tmp) / f"{layout}.safetensors", shapes, layout,
                                          a.rank, None, seed + 11))
        cases = [([f], {"steps": a.steps}, f"{LAYOUTS[i]} at {a.strength}")
                 for i, f in enumerate(files)]
        cases.append((files, {"sampler": "lightning", "steps": 4, "shift": 5.0, "guidance": 1.0},
                      f"all five stacked at {a.strength}"))
        for loras, sampling, label in cases:
            pipe = ReferencePipeline.from_bundle(a.bundle, loras=[(f, a.strength, "all") for f in loras])
            want = pipe.generate(PROMPT, seed=0, **sampling)
            out = Path(tmp) / "cpp.pt"
            cmd = [a.wanrun, "generate", "-m", a.bundle, "-p", PROMPT, "--seed", "0", "--progress",
                   "none", "--threads", "2", "-o", str(out)]
            for f in loras:
                cmd += ["--lora", f"{f}:{a.strength}"]
            if "sampler" in sampling:
                cmd += ["--preset", "lightning"]
            else:
                cmd += ["--steps", str(a.steps)]
            subprocess.run(cmd, check=True, capture_output=True)
            got = torch.load(out)
            diff = (got.int() - want.int()).abs()
            how = "lightning, 4 steps" if "sampler" in sampling else f"default, {a.steps} steps"
            print(f"| {label} | {how} | {int(diff.max())} | {float((diff > 0).float().mean()):.2e} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
