#!/usr/bin/env python3
"""End to end on the CPU: time and peak RSS per stage of `wanrun generate`, against the
planner's host estimate for the same plan.

usage: e2e_stages.py WANRUN BUNDLE [--quick] [--size WxH] [--frames N] [--steps N]
                     [--dtypes LIST] [--threads LIST] [--out DIR] [-- EXTRA WANRUN ARGS]

For each dtype and thread count: `wanrun plan --json` (the estimate) and `wanrun generate
--json` (the run report) with the same settings, `--seed 1 --no-verify`. The estimate of a
stage is the plan's host total for it without the reserve it keeps for the OS (the process
baseline and allocator retention are in); the measurement is the report's
`stage_peak_rss_bytes`. Prints one Markdown table: per stage the time, the peak RSS, the
estimate and its error. --quick: one small run (the bundle's smallest valid size, 5 frames,
1 step, bf16, 2 threads) that checks the script still reads both documents.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GIB = 1 << 30
# Run report stage -> plan stage name (the denoise stage is the first "denoise:<expert>").
STAGES = {"text_encoder": "text_encoding", "vae_encode": "vae_encode", "denoise": "denoise",
          "vae_decode": "vae_decode"}


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def plan_estimates(doc) -> dict:
    """Plan stage -> host bytes without the reserve; denoise stages folded into their peak."""
    out = {}
    for st in doc["estimate"]["stages"]:
        name = st["name"].split(":")[0]
        items = st["host_items"]
        total = sum(i["bytes"] for i in items if i["kind"] != "reserve")
        out[name] = max(out.get(name, 0), total)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("wanrun")
    p.add_argument("bundle")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", default="256x256")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--dtypes", default="bf16,fp32")
    p.add_argument("--threads", default="2,1")
    p.add_argument("--out", help="keep the outputs and reports here (default: a temporary dir)")
    # More wanrun options go after "--"; argparse would take them for this script's own.
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.extra = extra
    if a.quick:
        a.frames, a.steps, a.dtypes, a.threads = 5, 1, "bf16", "2"
    out_dir = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="wanrt-e2e-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    common = ["--model", a.bundle, "--size", a.size, "--frames", str(a.frames), "--device", "cpu",
              *a.extra]
    print("| dtype | threads | stage | time s | peak RSS GiB | estimate GiB | error |")
    print("|---|---|---|---|---|---|---|")
    for dtype in a.dtypes.split(","):
        for threads in a.threads.split(","):
            plan = run_json([a.wanrun, "plan", *common, "--dtype", dtype, "--json"])
            est = plan_estimates(plan)
            stem = out_dir / f"{dtype}-t{threads}"
            report = run_json([a.wanrun, "generate", *common, "--dtype", dtype, "--steps", str(a.steps),
                      "--threads", threads, "--prompt", "a red fox running through fresh snow",
                      "--seed", "1", "--no-verify", "--json", "-o", f"{stem}.mp4"])
            for stage, sec in report["times_s"].items():
                if stage not in STAGES:
                    continue
                rss = report["stage_peak_rss_bytes"].get(stage)
                e = est.get(STAGES[stage])
                err = f"{100 * (e - rss) / rss:+.0f} %" if rss and e else "-"
                print(f"| {dtype} | {threads} | {stage} | {sec:.1f} | "
                      f"{rss / GIB if rss else 0:.2f} | {e / GIB if e else 0:.2f} | {err} |",
                      flush=True)
            print(f"| {dtype} | {threads} | total | {report['times_s']['total']:.1f} | "
                  f"{report['peak_rss_bytes'] / GIB:.2f} | {max(est.values()) / GIB:.2f} | |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
