#!/usr/bin/env python3
"""Copy a format 2 bundle with its DiTs' TorchScript code re-scripted from the current
exporter, the weights files hard-linked (no copy): to measure a change of the model code on
a real-size bundle without writing its weights again.

usage: refresh_dit_code.py BUNDLE OUT

OUT gets hard links to every file of BUNDLE except the DiTs' code files, which are scripted
from the exporter's WanModel on the meta device in the manifest's dtypes (the same steps as
`wanrt_export export`), and wanrt.yaml, whose sha256 of those files is updated. Run wanrun
on OUT with --no-verify or after `wanrun verify`. A bench helper, not a user tool: it assumes
the bundle was exported by this tree's exporter (same configuration names and attention).
"""
import hashlib
import os
import sys
from pathlib import Path

import yaml

EXPORT_DIR = Path(__file__).resolve().parents[1] / "models" / "export"


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path.insert(0, str(EXPORT_DIR))
    from wanrt_export import attention as attn
    from wanrt_export import manifest as mf
    from wanrt_export import torchscript as ts
    from wanrt_export import weights as wt
    from wanrt_export.configs import get_config
    from wanrt_export.export import build_module, keep_patterns, script_module

    doc = yaml.safe_load((src / "wanrt.yaml").read_text())
    if doc.get("format_version") != 2:
        sys.exit("format 2 bundles only")
    cfg = get_config(doc["config_name"])
    out.mkdir(parents=True)
    for f in src.rglob("*"):
        target = out / f.relative_to(src)
        if f.is_dir():
            target.mkdir(exist_ok=True)
        elif f.name != "wanrt.yaml":
            os.link(f, target)
    for name, entry in doc["components"].items():
        if name not in cfg.experts:
            continue
        with attn.use(doc.get("attention", "math")):
            meta = build_module(cfg, name, device="meta", dtype=mf.DTYPES[entry["dtype"]])
        mf.cast_parameters_(meta, mf.DTYPES[entry["dtype"]], keep_patterns(cfg, name))
        scripted = script_module(meta)
        wt.strip_parameters_(scripted, meta)
        code = out / entry["file"]
        code.unlink()
        ts.save(scripted, str(code))
        entry["sha256"] = hashlib.sha256(code.read_bytes()).hexdigest()
        print(f"{name}: re-scripted {entry['file']}")
    (out / "wanrt.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
