"""Command line of the exporter: `python3 -m wanrt_export <command> ...`.

  export --random-weights --config NAME --seed N --out DIR [--dtype D] [--force] [--tokenizer F]
         [--attention math|sdpa] [--format 2|1]
  export --checkpoint-dir DIR --model ti2v-5b|t2v-a14b|i2v-a14b --out DIR [--dtype D] [--force]
         [--allow-nonstandard] [--attention math|sdpa] [--format 2|1]
  (both export forms also take --lora FILE[:S] / --lora-high FILE[:S] / --lora-low FILE[:S]
   (repeatable), --lora-allow-partial and --sampling-preset lightning)
  convert --in DIR --out DIR [--format 2|1] [--force]
  profiles --out DIR
  tiny-bundles --out DIR [--force] [--attention math|sdpa] [--format 2|1]
  synth-lora --bundle DIR [--component dit] --layout L --rank R [--alpha A] [--seed S] [--dtype fp32|bf16] --out FILE

--lora merges a LoRA file (wanrt_export/lora.py lists the layouts it reads) into every DiT
expert at strength S (default 1), --lora-high / --lora-low into the A14B high- / low-noise
expert only; they stack in command-line order. --sampling-preset lightning writes the
4-step distilled sampling defaults (sampler lightning, 4 steps, shift 5, guidance 1).

--attention picks what the scripted modules compute attention with: sdpa (PyTorch's fused
kernel; the default on PyTorch >= 2.1; such a bundle needs LibTorch >= 2.1) or math (explicit
softmax; the default on older PyTorch; loads on every LibTorch wanrt supports).

--format 2 (the default) writes each component's parameters to `<component>.safetensors`
beside its TorchScript file, which the runtime memory-maps; --format 1 keeps them inside the
TorchScript file (the layout of earlier wanrt versions, which read only format 1).

Exit codes: 0 success, 1 failure (message on stderr), 2 usage error.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from . import attention as attn
from . import host_allocator
from .configs import MID_NAMES, REAL_NAMES, SAMPLING_PRESETS, TINY_NAMES, get_config
from .lora_synth import LAYOUTS as LORA_LAYOUTS
from .manifest import DTYPES, FORMAT_VERSION, FORMAT_VERSIONS


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _LoraAction(argparse.Action):
    """--lora/--lora-high/--lora-low FILE[:S] appended, in command-line order, to `loras` as
    (file, strength, "all"|"high"|"low")."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .lora import parse_lora_arg
        path, strength = parse_lora_arg(values)
        which = {"--lora": "all", "--lora-high": "high", "--lora-low": "low"}[option_string]
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((path, strength, which))
        setattr(namespace, self.dest, items)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m wanrt_export",
                                description="Export Wan 2.2 models as wanrt bundles (TorchScript + wanrt.yaml).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    e = sub.add_parser("export", help="write one bundle from random weights or an official checkpoint")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-weights", action="store_true", help="deterministic random weights (needs --config)")
    src.add_argument("--checkpoint-dir", type=Path, metavar="DIR", help="official Wan 2.2 checkpoint directory")
    e.add_argument("--config", choices=REAL_NAMES + TINY_NAMES + MID_NAMES, help="configuration for --random-weights")
    e.add_argument("--model", choices=REAL_NAMES, help="model of --checkpoint-dir")
    e.add_argument("--seed", type=int, help="seed for --random-weights (default 0)")
    e.add_argument("--out", type=Path, required=True, metavar="DIR", help="bundle directory to create")
    e.add_argument("--dtype", choices=list(DTYPES),
                   help="stored dtype of the text encoder and DiT (VAE stays fp32); "
                        "default fp32 for random weights, bf16 for checkpoints")
    e.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    e.add_argument("--tokenizer", type=Path, metavar="FILE",
                   help="spiece.model for --random-weights (default: train the tiny test tokenizer)")
    e.add_argument("--allow-nonstandard", action="store_true",
                   help="accept a checkpoint whose sizes differ from the official model (tests, research)")
    for flag, what in (("--lora", "every DiT expert"), ("--lora-high", "the high-noise expert (A14B)"),
                       ("--lora-low", "the low-noise expert (A14B)")):
        e.add_argument(flag, dest="loras", action=_LoraAction, metavar="FILE[:S]",
                       help=f"merge a LoRA into {what} at strength S (default 1); repeatable")
    e.add_argument("--lora-allow-partial", action="store_true",
                   help="ignore LoRA tensors that match no parameter instead of failing")
    e.add_argument("--sampling-preset", choices=sorted(SAMPLING_PRESETS),
                   help="write these sampling defaults (lightning: sampler lightning, 4 steps, shift 5, "
                        "guidance 1)")

    cv = sub.add_parser("convert", help="rewrite a bundle in another format (same weights)")
    cv.add_argument("--in", dest="inp", type=Path, required=True, metavar="DIR", help="the bundle to read")
    cv.add_argument("--out", type=Path, required=True, metavar="DIR", help="bundle directory to create")
    cv.add_argument("--format", type=int, choices=FORMAT_VERSIONS, default=FORMAT_VERSION,
                    help="format to write (default: %(default)s)")
    cv.add_argument("--force", action="store_true", help="replace an existing bundle at --out")

    pr = sub.add_parser("profiles", help="write the planning profiles of the real models")
    pr.add_argument("--out", type=Path, required=True, metavar="DIR")

    t = sub.add_parser("tiny-bundles", help="write the three tiny test bundles (fp32, seed 0), "
                                            "tiny-t2v-moe in the other format as tiny-t2v-moe-v1 (or -v2), "
                                            "the LoRA fixtures in loras/ and tiny-ti2v-lightning")
    t.add_argument("--out", type=Path, required=True, metavar="DIR")
    t.add_argument("--force", action="store_true", help="replace existing bundles")

    sl = sub.add_parser("synth-lora", help="write a synthetic LoRA file for a bundle's DiT (tests)")
    sl.add_argument("--bundle", type=Path, required=True, metavar="DIR", help="bundle whose shapes to fit")
    sl.add_argument("--component", default="dit", help="DiT component (default: %(default)s)")
    sl.add_argument("--layout", required=True, choices=LORA_LAYOUTS)
    sl.add_argument("--rank", type=int, required=True)
    sl.add_argument("--alpha", type=float, help="alpha (default: rank/2 where the layout stores one)")
    sl.add_argument("--seed", type=int, default=0)
    sl.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="dtype of the stored factors and deltas (default: %(default)s)")
    sl.add_argument("--out", type=Path, required=True, metavar="FILE")
    for cmd in (e, t):
        cmd.add_argument("--attention", choices=attn.MODES, default=attn.default_mode(),
                         help="attention the scripted modules use (default here: %(default)s; "
                              "sdpa bundles need LibTorch >= 2.1)")
        cmd.add_argument("--format", type=int, choices=FORMAT_VERSIONS, default=FORMAT_VERSION,
                         help="bundle format: 2 keeps parameters in a safetensors file beside each "
                              "TorchScript file (memory-mapped by the runtime), 1 inside it "
                              "(default: %(default)s)")
    return p


def _lora_plan(p: argparse.ArgumentParser, a: argparse.Namespace, config_name: str):
    """expert -> [(file, strength)] from --lora/--lora-high/--lora-low (usage errors for a
    missing file or a high/low LoRA on a single-DiT model)."""
    from .lora import loras_per_expert
    for path, _, _ in a.loras or []:
        if not Path(path).is_file():
            p.error(f"LoRA file {path} not found")
    try:
        return loras_per_expert(get_config(config_name).experts, a.loras)
    except ValueError as e:
        p.error(str(e))


def _cmd_export(p: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    from .export import export_bundle, export_random
    if a.random_weights:
        if a.config is None:
            p.error("export --random-weights needs --config")
        if a.model or a.allow_nonstandard:
            p.error("--model and --allow-nonstandard go with --checkpoint-dir, not --random-weights")
        loras = _lora_plan(p, a, a.config)
        export_random(a.config, 0 if a.seed is None else a.seed, a.out, a.dtype or "fp32", a.tokenizer, _progress, a.force,
                      a.format, loras, a.sampling_preset, a.lora_allow_partial)
        return 0
    if a.model is None:
        p.error("export --checkpoint-dir needs --model (one of " + ", ".join(REAL_NAMES) + ")")
    if a.config or a.tokenizer or a.seed is not None:
        p.error("--config, --seed and --tokenizer go with --random-weights; a checkpoint brings its own")
    loras = _lora_plan(p, a, a.model)
    from .checkpoint import load_official
    ck = load_official(a.checkpoint_dir, a.model, a.dtype or "bf16", a.allow_nonstandard, _progress)
    if not ck.standard:
        _progress(f"warning: {a.checkpoint_dir} has a non-standard configuration; model_id {ck.cfg.model_id}")
    export_bundle(ck.cfg, ck.modules, ck.tokenizer, a.out, a.dtype or "bf16", _progress, a.force, a.format,
                  loras, a.sampling_preset, a.lora_allow_partial)
    return 0


def _cmd_synth_lora(a: argparse.Namespace) -> int:
    from .lora_synth import bundle_shapes, write_synth_lora
    shapes = bundle_shapes(a.bundle, a.component)
    import torch
    write_synth_lora(a.out, shapes, a.layout, a.rank, a.alpha, a.seed,
                     dtype=torch.bfloat16 if a.dtype == "bf16" else torch.float32)
    _progress(f"wrote {a.out}")
    return 0


def _cmd_profiles(a: argparse.Namespace) -> int:
    from .export import write_profiles
    for path in write_profiles(a.out):
        _progress(f"wrote {path}")
    return 0


LIGHTNING_BUNDLE = "tiny-ti2v-lightning"
LIGHTNING_LORA = "ti2v-official.safetensors"


def _cmd_tiny(a: argparse.Namespace) -> int:
    from .export import ExportError, check_out_dir, export_bundle, random_modules
    from .lora_synth import FIXTURES, OTHER_FAMILY, write_fixture_loras
    from .tokenizer import train_tiny_tokenizer
    t0 = time.monotonic()
    # The three bundles in the chosen format, and tiny-t2v-moe once more in the other format,
    # for the tests that compare the two (same weights, same frames).
    other = 1 if a.format == 2 else 2
    jobs = [(name, name, a.format) for name in TINY_NAMES] + [("tiny-t2v-moe", f"tiny-t2v-moe-v{other}", other)]
    for out in [o for _, o, _ in jobs] + [LIGHTNING_BUNDLE]:  # fail before writing anything
        check_out_dir((a.out / out).absolute(), a.force)
    lora_dir = a.out / "loras"
    existing = [f for f in list(FIXTURES) + [OTHER_FAMILY] if (lora_dir / f).exists()]
    if existing and not a.force:
        raise ExportError(f"{lora_dir / existing[0]} already exists; pass --force to replace it")
    with tempfile.TemporaryDirectory(prefix="wanrt-tok-") as tdir:
        tok = train_tiny_tokenizer(Path(tdir))
        for name, out, fmt in jobs:
            cfg = get_config(name)
            export_bundle(cfg, random_modules(cfg, 0, "fp32", lazy=True), tok, a.out / out, "fp32",
                          None, a.force, fmt)
            _progress(f"wrote {a.out / out}")
        # LoRA fixtures for the tiny bundles, and tiny-ti2v with one of them baked in and the
        # lightning sampling defaults.
        write_fixture_loras(a.out, lora_dir)
        _progress(f"wrote {lora_dir}")
        cfg = get_config("tiny-ti2v")
        export_bundle(cfg, random_modules(cfg, 0, "fp32", lazy=True), tok, a.out / LIGHTNING_BUNDLE, "fp32",
                      None, a.force, a.format, loras={"dit": [(lora_dir / LIGHTNING_LORA, 1.0)]},
                      sampling_preset="lightning")
        _progress(f"wrote {a.out / LIGHTNING_BUNDLE}")
    _progress(f"tiny bundles done in {time.monotonic() - t0:.1f} s")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit code (argparse exits with 2 on usage errors)."""
    p = _parser()
    a = p.parse_args(argv)
    try:
        host_allocator.configure()
        if a.command == "profiles":
            return _cmd_profiles(a)
        if a.command == "synth-lora":
            return _cmd_synth_lora(a)
        if a.command == "convert":
            from .export import convert_bundle
            convert_bundle(a.inp, a.out, a.format, _progress, a.force)
            return 0
        with attn.use(a.attention):
            return _cmd_export(p, a) if a.command == "export" else _cmd_tiny(a)
    except KeyboardInterrupt:
        print("wanrt_export: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError, KeyError, ImportError) as e:
        print(f"wanrt_export: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
