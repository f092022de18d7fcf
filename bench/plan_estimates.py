#!/usr/bin/env python3
"""The planner's device-memory estimate of each offload plan and dtype for the real models.

    python3 bench/plan_estimates.py build/release/bin/wanrun [--profiles wan2.2-ti2v-5b ...]

No weights are needed: `wanrun plan --profile NAME --json` per plan, at the model's default
request, on a simulated GPU large enough for every plan (1 TiB, compute capability 8.0, 1 TiB
of RAM) with chunking off, so the planner keeps the settings it is given. For each plan: the
device peak without the vram_safety_margin_mb reserve (weights, activations, workspace), its
change against the fp32 resident plan and against the resident plan of the same dtype, and
the largest stage of each kind. Prints a Markdown table.
These are estimates (docs/optimization.md); `wanrun bench` measures the bundles it can run.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

MACHINE = ["--device", "cuda", "--vram", "1024GiB", "--ram", "1024GiB", "--gpu-cc", "8.0",
           "--frame-chunk", "0", "--vae-tile", "0"]
GIB = 1 << 30
PROFILES = Path(__file__).resolve().parents[1] / "models" / "profiles"


def plan(wanrun, profile, offload, dtype, k=None):
    cmd = [wanrun, "plan", "--profile", profile, "--json", "--offload", offload, "--dtype", dtype,
           *MACHINE]
    if k is not None:
        cmd += ["--blocks-resident", str(k)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def peaks(doc):
    """Device bytes without the reserve: the peak over the stages, and the largest stage of each
    kind (text encoding, denoising, VAE decoding)."""
    out = {"peak": 0, "text": 0, "denoise": 0, "decode": 0}
    for stage in doc["estimate"]["stages"]:
        total = sum(i["bytes"] for i in stage["device_items"] if i["kind"] != "reserve")
        kind = "text" if stage["name"].startswith("text") else \
            "denoise" if stage["name"].startswith("denoise") else \
            "decode" if stage["name"] == "vae_decode" else None
        out["peak"] = max(out["peak"], total)
        if kind:
            out[kind] = max(out[kind], total)
    return out


def blocks_of(profile):
    """Blocks of the largest denoiser (components named dit*) of a profile in models/profiles."""
    doc = yaml.safe_load((PROFILES / f"{profile}.yaml").read_text())
    return max(c["contract"]["num_blocks"] for name, c in doc["components"].items()
               if name.startswith("dit"))


def table(wanrun, profile):
    base = plan(wanrun, profile, "none", "fp32")
    w = base["workload"]
    n = blocks_of(profile)
    rows = [("resident", "none", None)] + [("model", "model", None)] + \
        [(f"sequential-k{k}", "sequential", k) for k in (n // 2, 0)] + [("full", "full", None)]
    print(f"### {base['model_id']} ({w['width']}x{w['height']}, {w['frames']} frames; "
          f"denoiser blocks: {n})\n")
    print("| plan | dtype | device peak GiB | vs fp32 resident | vs same-dtype resident | "
          "text encoding GiB | denoising GiB | VAE decode GiB |")
    print("|---|---|---|---|---|---|---|---|")
    fp32_peak = peaks(base)["peak"]
    for dtype in ["fp32", "bf16", "fp16"]:
        resident_peak = None
        for name, offload, k in rows:
            doc = base if (offload, dtype) == ("none", "fp32") else \
                plan(wanrun, profile, offload, dtype, k)
            p = peaks(doc)
            if resident_peak is None:
                resident_peak = p["peak"]
            pct = lambda v, b: f"{100 * (v / b - 1):+.0f}%"  # noqa: E731
            print(f"| {name} | {dtype} | {p['peak'] / GIB:.1f} | {pct(p['peak'], fp32_peak)} | "
                  f"{pct(p['peak'], resident_peak)} | {p['text'] / GIB:.1f} | "
                  f"{p['denoise'] / GIB:.1f} | {p['decode'] / GIB:.1f} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wanrun")
    ap.add_argument("--profiles", nargs="+", default=["wan2.2-ti2v-5b", "wan2.2-t2v-a14b"],
                    help="profile names in models/profiles")
    args = ap.parse_args()
    for profile in args.profiles:
        table(args.wanrun, profile)


if __name__ == "__main__":
    main()
