#!/usr/bin/env python3
"""The Wan 2.2 VAE decoder at its real configuration on this CPU: time per causal step (one
latent frame) and the achieved FLOP/s of its convolutions.

usage: vae_roofline.py [--quick] [--sizes LIST] [--dtypes LIST] [--threads N]
                       [--layouts LIST] [--steps N] [--json FILE]

The decoder is the exporter's WanVAE22 (models/export/wanrt_export/vae22.py), the code the
C++ runtime runs as TorchScript, with random weights at TI2V-5B's VAE configuration (z 48,
decoder dim 256, multipliers 1, 2, 4, 4, patch 2, 16x spatial and 4x temporal stride). A size
WxH is the decoded frame (a VAE tile is decoded the same way at the tile's size). Each run
decodes --steps latent frames with `decode_step`, as the runtime does: the first step makes 1
video frame, every later step 4; the table reports the first and the mean of the later ones.

FLOPs: 2 per multiply-add of every 3-D and 2-D convolution, counted per call from its
output shape with forward hooks (the attention in the middle block, the norms and the
resampling are not counted, so their time shows as lost fraction).

Layouts: "contiguous" (what the runtime does today) and "channels_last_3d" (the module's
parameters and the input in torch.channels_last_3d, oneDNN's preferred layout).

--compare: the error of a bf16 decode against fp32 instead of times. Both decode the same
latent (standard normal, seeded) with the same weights (the fp32 initialisation, cast as a bf16
VAE plan casts it); the outputs, clamped to [-1, 1] as the runtime does, are compared in the
video's 8-bit levels ((x + 1) * 127.5, rounded): the largest difference, the share of values
that differ by more than 1 and by more than 4 levels, the RMS error and the PSNR.
"""
import argparse
import json
import sys
import time
from pathlib import Path

EXPORT_DIR = Path(__file__).resolve().parents[1] / "models" / "export"


def conv_flops(module, out) -> int:
    k = 1
    for s in module.kernel_size:
        k *= s
    return 2 * (module.in_channels // module.groups) * k * out.numel()


def run(torch, cfg, size, dtype_name, layout, steps) -> dict:
    from wanrt_export import manifest as mf
    from wanrt_export.vae22 import WanVAE22
    from wanrt_export.vae_common import keep_fp32_patterns

    torch.manual_seed(0)
    vae = WanVAE22(cfg).eval()
    if dtype_name == "bf16":
        # Parameters and the latent statistics buffers alike, as a bf16 VAE plan casts them.
        mf.cast_parameters_(vae, torch.bfloat16, keep_fp32_patterns())
        vae = vae.to(torch.bfloat16)
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    fmt = torch.channels_last_3d if layout == "channels_last_3d" else torch.contiguous_format
    if layout == "channels_last_3d":
        with torch.no_grad():
            for m in vae.modules():
                if isinstance(m, torch.nn.Conv3d):
                    m.weight.data = m.weight.data.contiguous(memory_format=fmt)
    counted = [0]
    convs = (torch.nn.Conv3d, torch.nn.Conv2d)
    for m in vae.decoder.modules():
        if isinstance(m, convs):
            m.register_forward_hook(lambda mod, inp, out: counted.__setitem__(
                0, counted[0] + conv_flops(mod, out)))
    w, h = size
    lh, lw = h // cfg.stride[1], w // cfg.stride[1]
    z = torch.randn(1, cfg.z_dim, steps, lh, lw).to(dtype)
    if layout == "channels_last_3d":
        z = z.contiguous(memory_format=fmt)
    times, flops = [], []
    with torch.no_grad():
        cache = vae.init_decode_cache(z)
        for t in range(steps):
            counted[0] = 0
            t0 = time.perf_counter()
            y, cache = vae.decode_step(z[:, :, t:t + 1], cache)
            times.append(time.perf_counter() - t0)
            flops.append(counted[0])
            assert y.shape[-2:] == (h, w), y.shape
    return {"times": times, "flops": flops}


def decode_all(torch, vae, z):
    """Every latent frame of z decoded step by step, as float32 in [-1, 1]."""
    outs = []
    with torch.no_grad():
        cache = vae.init_decode_cache(z)
        for t in range(z.shape[2]):
            y, cache = vae.decode_step(z[:, :, t:t + 1], cache)
            outs.append(y.float())
    return torch.cat(outs, 2).clamp(-1, 1)


def compare(torch, cfg, size, steps) -> dict:
    from wanrt_export import manifest as mf
    from wanrt_export.vae22 import WanVAE22
    from wanrt_export.vae_common import keep_fp32_patterns

    torch.manual_seed(0)
    vae = WanVAE22(cfg).eval()
    w, h = size
    z = torch.randn(1, cfg.z_dim, steps, h // cfg.stride[1], w // cfg.stride[1],
                    generator=torch.Generator().manual_seed(1))
    reference = decode_all(torch, vae, z)
    mf.cast_parameters_(vae, torch.bfloat16, keep_fp32_patterns())
    vae = vae.to(torch.bfloat16)
    half = decode_all(torch, vae, z.to(torch.bfloat16))
    levels = lambda x: ((x + 1) * 127.5).round()
    diff = (levels(half) - levels(reference)).abs()
    rms = (half - reference).pow(2).mean().sqrt().item()
    return {"max_levels": int(diff.max().item()),
            "over_1": (diff > 1).double().mean().item(),
            "over_4": (diff > 4).double().mean().item(),
            "rms": rms,
            "psnr_db": 20 * __import__("math").log10(2.0 / max(rms, 1e-12)),
            "reference_std": reference.std().item(),
            "saturated": (reference.abs() >= 1).double().mean().item()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="64x64, fp32, 2 steps")
    p.add_argument("--sizes", default="1280x704", help="decoded frame sizes WxH, comma-separated")
    p.add_argument("--dtypes", default="bf16,fp32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layouts", default="contiguous")
    p.add_argument("--steps", type=int, default=2, help="latent frames per run (>= 2)")
    p.add_argument("--json")
    p.add_argument("--compare", action="store_true", help="bf16 against fp32: the error")
    a = p.parse_args()
    if a.quick:
        a.sizes, a.dtypes, a.steps = "64x64", "fp32", 2
    if a.steps < 2:
        p.error("--steps must be at least 2 (the first step is not a steady-state one)")
    sys.path.insert(0, str(EXPORT_DIR))
    import torch
    from wanrt_export import host_allocator
    from wanrt_export.configs import get_config
    host_allocator.configure()
    torch.set_num_threads(a.threads)
    cfg = get_config("ti2v-5b").vae
    rows = []
    if a.compare:
        print("| size | latent frames | max diff (levels) | > 1 level | > 4 levels | RMS | PSNR dB | "
              "fp32 output std | fp32 saturated |")
        print("|---|---|---|---|---|---|---|---|---|")
        for size_text in a.sizes.split(","):
            size = tuple(int(v) for v in size_text.split("x"))
            r = compare(torch, cfg, size, a.steps)
            rows.append({"size": size_text, "steps": a.steps, **r})
            print(f"| {size_text} | {a.steps} | {r['max_levels']} | {100 * r['over_1']:.3f} % | "
                  f"{100 * r['over_4']:.4f} % | {r['rms']:.2e} | {r['psnr_db']:.1f} | "
                  f"{r['reference_std']:.3f} | {100 * r['saturated']:.1f} % |", flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
        return 0
    print("| size | dtype | layout | first step s | later step s | GFLOP per later step | "
          "GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for size_text in a.sizes.split(","):
        size = tuple(int(v) for v in size_text.split("x"))
        for dt in a.dtypes.split(","):
            for layout in a.layouts.split(","):
                r = run(torch, cfg, size, dt, layout, a.steps)
                later = sum(r["times"][1:]) / (a.steps - 1)
                later_flops = sum(r["flops"][1:]) / (a.steps - 1)
                rows.append({"size": size_text, "dtype": dt, "layout": layout, **r})
                print(f"| {size_text} | {dt} | {layout} | {r['times'][0]:.2f} | {later:.2f} | "
                      f"{later_flops / 1e9:.0f} | {later_flops / later / 1e9:.0f} |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"torch": torch.__version__, "threads": a.threads,
                                            "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
