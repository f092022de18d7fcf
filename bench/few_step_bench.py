#!/usr/bin/env python3
"""Few-step distilled sampling against the default sampling, with wanrun on one bundle.

usage: bench/few_step_bench.py WANRUN BUNDLE [--size WxH] [--frames N] [--threads T]
                               [--default-steps N] [--lora FILE[:S]]...

Runs, each in its own process (wanrun generate --json):
  1. 2 steps at guidance 5 (both DiT passes per step) and 2 steps at guidance 1 (the
     unconditional pass skipped): seconds per denoising step and DiT calls;
  2. the whole video with the bundle's default sampling (or --default-steps N: the step count
     of another model, e.g. 40 for the A14B models) against --preset lightning: seconds per
     stage and in all.
Prints a Markdown table. --lora is passed to every run (the merge is in the load time).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPT = "a red fox running through fresh snow"


def generate(wanrun, bundle, args, extra):
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [wanrun, "generate", "-m", bundle, "-p", PROMPT, "--seed", "0", "--progress",
               "none", "--json", "--size", args.size, "--frames", str(args.frames),
               "--threads", str(args.threads), "-o", str(Path(tmp) / "out.pt")]
        for lora in args.lora:
            cmd += ["--lora", lora]
        r = subprocess.run(cmd + extra, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd + extra)}\n{r.stderr}")
        return json.loads(r.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wanrun")
    p.add_argument("bundle")
    p.add_argument("--size", default="256x256")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--default-steps", type=int)
    p.add_argument("--lora", action="append", default=[])
    a = p.parse_args()

    print(f"| run | steps | DiT calls | denoise s | s / step | load s | text s | decode s | total s |")
    print("|---|---|---|---|---|---|---|---|---|")

    def row(label, report):
        t = report["times_s"]
        steps = report["request"]["steps"]
        calls = report["plan"]["chunking"]["dit_calls"]
        print(f"| {label} | {steps} | {calls} | {t['denoise']:.2f} | {t['denoise'] / steps:.2f} | "
              f"{t['load']:.2f} | {t.get('text_encoder', 0):.2f} | {t.get('vae_decode', 0):.2f} | "
              f"{t['total']:.2f} |")
        sys.stdout.flush()

    row("guidance 5, 2 steps", generate(a.wanrun, a.bundle, a, ["--steps", "2", "--guidance", "5"]))
    row("guidance 1, 2 steps", generate(a.wanrun, a.bundle, a, ["--steps", "2", "--guidance", "1"]))
    default = ["--steps", str(a.default_steps)] if a.default_steps else []
    row("default sampling" + (f" ({a.default_steps} steps)" if a.default_steps else ""),
        generate(a.wanrun, a.bundle, a, default))
    row("--preset lightning", generate(a.wanrun, a.bundle, a, ["--preset", "lightning"]))


if __name__ == "__main__":
    main()
