#!/usr/bin/env python3
"""Peak memory against time per plan, from the JSON of `wanrun bench`, as a PNG.

    python3 bench/plot.py bench-results/bench.json [--out bench-results/bench.png]

One point per cell that ran (labelled plan/dtype[/chunk]): x = median time of generate() (the
bar spans min..max of the runs), y = peak memory. On a CUDA run the panel shows the CUDA
allocator's peak; on a CPU run the left panel shows the residency ledger's peak (what the plan
would hold on a GPU) and the right one the tracked peak of CPU tensor bytes.
Colour: dtype; marker: offload policy.
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MIB = 1 << 20
COLOURS = {"fp32": "tab:blue", "bf16": "tab:orange", "fp16": "tab:green"}
MARKERS = {"none": "o", "model": "s", "sequential": "^", "full": "v"}
OFFLOAD_LABELS = {"none": "resident", "model": "model offload", "sequential": "sequential",
                  "full": "full offload"}


def panels(doc):
    if doc["device"] != "cpu":
        return [("device_peak_bytes", "CUDA allocator peak (MiB)")]
    return [("ledger_peak_bytes", "ledger peak: weights on the device (MiB)"),
            ("tracked_peak_bytes", "tracked peak: CPU tensor bytes (MiB)")]


def plot(doc, out):
    cells = [c for c in doc["cells"] if c["status"] == "ok"]
    if not cells:
        sys.exit("no cell ran: nothing to plot")
    fields = panels(doc)
    fig, axes = plt.subplots(1, len(fields), figsize=(6.5 * len(fields), 5), squeeze=False)
    for ax, (field, label) in zip(axes[0], fields):
        for i, c in enumerate(cells):
            t = c["times_s"]["total"]
            y = c["memory"][field]
            if y is None:
                continue
            ax.errorbar(t["median"], y / MIB,
                        xerr=[[t["median"] - t["min"]], [t["max"] - t["median"]]],
                        fmt=MARKERS.get(c["offload"], "o"), color=COLOURS.get(c["dtype"], "k"),
                        markersize=8, capsize=3)
            # Cells often share a memory figure: stagger the labels so they stay legible.
            text = c["id"].removesuffix("/none")
            ax.annotate(text, (t["median"], y / MIB), textcoords="offset points",
                        xytext=(5, 4 + 8 * (i % 4)), fontsize=7)
        ax.set_xlabel("generate() time, median of the runs (s)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.12)
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=d)
               for d, c in COLOURS.items()]
    handles += [plt.Line2D([], [], color="grey", marker=m, linestyle="", label=OFFLOAD_LABELS[p])
                for p, m in MARKERS.items()]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="best")
    req = doc["request"]
    fig.suptitle(f"{doc['model_id']} on {doc['device']} ({doc['device_name']}): "
                 f"{req['width']}x{req['height']}, {req['frames']} frames, {req['steps']} steps, "
                 f"{doc['repeat']} runs per plan", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, help="bench.json written by `wanrun bench`")
    ap.add_argument("--out", type=Path, help="PNG to write (default: beside the JSON)")
    args = ap.parse_args()
    doc = json.loads(args.json.read_text())
    if doc.get("schema") != "wanrt-bench/1":
        sys.exit(f"{args.json}: not a `wanrun bench` document (schema {doc.get('schema')!r})")
    plot(doc, args.out or args.json.with_suffix(".png"))


if __name__ == "__main__":
    main()
