#!/usr/bin/env python3
"""Peak memory of chunked generation, measured through `wanrun generate --json`.

(a) VAE decode against the frame count: streamed (frames go to the writer as the VAE decodes
    them, the default) against `--no-stream` (the whole video decoded, kept, then written).
    Reported: the peak RSS of the "vae_decode" stage (`stage_peak_rss_bytes`) and of the run.
(b) Sliding-window denoising against the window size: the peak RSS of the "denoise" stage and
    the deviation of the frames from the full-window run (same seed), in uint8 levels.

Each configuration runs once in its own process (peak RSS is a per-process figure).

    /usr/bin/python3 bench/chunking_memory.py build/release/bin/wanrun /tmp/bench-bundles/mid-ti2v
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MIB = 1 << 20


def generate(wanrun, bundle, out, *extra):
    cmd = [wanrun, "generate", "--model", bundle, "--prompt", "a red fox in fresh snow",
           "--seed", "0", "--no-verify", "--json", "--progress", "none", "--out", str(out),
           *map(str, extra)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def vae_decode_table(args, tmp):
    print("### (a) VAE decode peak RSS against the frame count\n")
    print(f"{args.size}, --steps 1, output MP4; peak RSS in MiB.\n")
    print("| frames | vae_decode streamed | vae_decode --no-stream | run streamed | "
          "run --no-stream | decode s streamed | decode s --no-stream |")
    print("|---|---|---|---|---|---|---|")
    for frames in args.frames:
        row = {}
        for mode, extra in [("stream", []), ("whole", ["--no-stream"])]:
            doc = generate(args.wanrun, args.bundle, tmp / f"a-{frames}-{mode}.mp4", "--size",
                           args.size, "--frames", frames, "--steps", 1, *extra)
            row[mode] = doc
        s, w = row["stream"], row["whole"]
        print(f"| {frames} | {s['stage_peak_rss_bytes']['vae_decode'] / MIB:.0f} | "
              f"{w['stage_peak_rss_bytes']['vae_decode'] / MIB:.0f} | "
              f"{s['peak_rss_bytes'] / MIB:.0f} | {w['peak_rss_bytes'] / MIB:.0f} | "
              f"{s['times_s']['vae_decode']:.2f} | {w['times_s']['vae_decode']:.2f} |")
    print()


def window_table(args, tmp):
    import torch  # the frames are compared as uint8 tensors
    frames = args.window_frames
    print("### (b) Sliding-window denoising against the window size\n")
    print(f"{args.size}, {frames} frames, --steps {args.window_steps}; peak RSS in MiB; "
          "deviation from the full-window frames in uint8 levels.\n")
    print("| window (frames) | overlap | windows | DiT calls | denoise peak RSS | denoise s | "
          "max dev | mean dev |")
    print("|---|---|---|---|---|---|---|---|")
    reference = None
    for window in [frames] + [w for w in args.windows if w < frames]:
        out = tmp / f"b-{window}.pt"
        extra = [] if window == frames else ["--chunk-frames", window]
        doc = generate(args.wanrun, args.bundle, out, "--size", args.size, "--frames", frames,
                       "--steps", args.window_steps, *extra)
        video = torch.load(out).to(torch.float64)
        if reference is None:
            reference = video
        dev = (video - reference).abs()
        c = doc["plan"]["chunking"]
        label = f"{window} (full)" if window == frames else str(window)
        print(f"| {label} | {c['chunk_overlap'] if c['chunk_overlap'] is not None else '-'} | "
              f"{c['denoise_windows']} | {c['dit_calls']} | "
              f"{doc['stage_peak_rss_bytes']['denoise'] / MIB:.0f} | "
              f"{doc['times_s']['denoise']:.2f} | {dev.max().item():.0f} | "
              f"{dev.mean().item():.2f} |")
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("wanrun")
    p.add_argument("bundle")
    p.add_argument("--size", default="256x256")
    p.add_argument("--frames", type=int, nargs="+", default=[5, 9, 17, 33])
    p.add_argument("--window-frames", type=int, default=33)
    p.add_argument("--windows", type=int, nargs="+", default=[17, 9, 5])
    p.add_argument("--window-steps", type=int, default=2)
    p.add_argument("--only", choices=["vae", "windows"])
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="wanrt-chunking-bench-") as d:
        if args.only in (None, "vae"):
            vae_decode_table(args, Path(d))
        if args.only in (None, "windows"):
            window_table(args, Path(d))


if __name__ == "__main__":
    main()
