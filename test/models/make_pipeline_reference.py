#!/usr/bin/env python3
"""Writes the Python reference pipeline's outputs for the C++ parity tests.

usage: make_pipeline_reference.py BUNDLES_DIR OUT_DIR

For each case (tiny-t2v-moe; tiny-ti2v without and with an image; tiny-i2v-moe) it runs
ReferencePipeline.from_bundle(...).generate(...) in eager float32 and saves, with torch.save,
a dict: request values, the input image (uint8 [H, W, 3] or an empty tensor), the final
latent, the decoded float video [3, F, H, W] and the uint8 frames [F, H, W, 3].

The LoRA / few-step cases (LORA_CASES) use the fixtures `tiny-bundles` writes under
BUNDLES_DIR/loras/ and also save the sampling they ran with: "sampler" (str), "steps" (int),
"shift" (float), "guidance" ([low, high] floats) and "loras" ("file:strength:experts;..." with
file relative to BUNDLES_DIR/loras and experts all|high|low; "" for none).
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "export"))
from wanrt_export.pipeline import ReferencePipeline  # noqa: E402

torch.set_num_threads(1)


def test_image(height: int, width: int) -> torch.Tensor:
    """A deterministic uint8 RGB image with gradients in every channel (not the target size,
    so the crop and the bicubic resize are exercised)."""
    y = torch.arange(height, dtype=torch.float32)[:, None]
    x = torch.arange(width, dtype=torch.float32)[None, :]
    r = (255 * x / (width - 1)).expand(height, width)
    g = (255 * y / (height - 1)).expand(height, width)
    b = 127.5 + 127.5 * torch.sin(x / 7.0) * torch.cos(y / 5.0)
    return torch.stack([r, g, b], dim=2).round().clamp(0, 255).to(torch.uint8)


CASES = [
    # name, bundle, prompt, seed, image size (H, W) or None
    ("t2v_moe", "tiny-t2v-moe", "a red fox running through fresh snow", 7, None),
    ("ti2v_text", "tiny-ti2v", "waves rolling onto a beach at sunset", 11, None),
    ("ti2v_image", "tiny-ti2v", "the camera slowly pans to the left", 3, (80, 100)),
    ("i2v_moe", "tiny-i2v-moe", "a paper boat drifting on a pond", 5, (72, 60)),
]


# name, bundle, prompt, seed, loras [(file, strength, experts)], sampler, steps, shift, guidance
# (None: the bundle's default)
LORA_CASES = [
    ("ti2v_lora_official", "tiny-ti2v", "a lantern glowing in the fog", 13,
     [("ti2v-official.safetensors", 0.8, "all")], None, None, None, None),
    ("ti2v_lora_stack", "tiny-ti2v", "a lantern glowing in the fog", 13,
     [("ti2v-peft.safetensors", 0.5, "all"), ("ti2v-diffusers.safetensors", 1.0, "all"),
      ("ti2v-peft-bare.safetensors", 0.7, "all")], None, None, None, None),
    ("t2v_moe_lightning", "tiny-t2v-moe", "a red fox running through fresh snow", 7,
     [("t2v-moe-high.safetensors", 1.0, "high"), ("t2v-moe-low.safetensors", 1.0, "low")],
     "lightning", 4, 5.0, 1.0),
    ("ti2v_lightning_baked", "tiny-ti2v-lightning", "waves rolling onto a beach at sunset", 11,
     [], None, None, None, None),
]


def run_lora_case(bundles: Path, out: Path, case) -> None:
    name, bundle, prompt, seed, loras, sampler, steps, shift, guidance = case
    specs = [(bundles / "loras" / f, s, e) for f, s, e in loras]
    pipe = ReferencePipeline.from_bundle(bundles / bundle, loras=specs)
    sd = pipe.cfg.sampling
    sampler = sampler or sd.sampler
    steps = int(steps if steps is not None else sd.steps)
    shift = float(shift if shift is not None else sd.shift)
    guide = [float(guidance)] * 2 if guidance is not None else [float(g) for g in sd.guide_scale]
    frames = pipe.generate(prompt, seed=seed, sampler=sampler, steps=steps, shift=shift,
                           guidance=tuple(guide))
    torch.save({
        "bundle": bundle, "prompt": prompt, "seed": seed,
        "image": torch.zeros(0, dtype=torch.uint8),
        "latent": pipe.last_latent.contiguous(), "video": pipe.last_video.contiguous(),
        "frames": frames, "experts": ",".join(pipe.expert_trace),
        "sampler": sampler, "steps": steps, "shift": shift, "guidance": guide,
        "loras": ";".join(f"{f}:{s}:{e}" for f, s, e in loras),
    }, out / f"{name}.pt")
    print(f"{name}: {tuple(frames.shape)} experts={pipe.expert_trace} sampler={sampler}")


def main(argv):
    bundles, out = Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for name, bundle, prompt, seed, image_size in CASES:
        pipe = ReferencePipeline.from_bundle(bundles / bundle)
        image = test_image(*image_size) if image_size else None
        frames = pipe.generate(prompt, seed=seed, image=image)
        torch.save({
            "bundle": bundle, "prompt": prompt, "seed": seed,
            "image": image if image is not None else torch.zeros(0, dtype=torch.uint8),
            "latent": pipe.last_latent.contiguous(), "video": pipe.last_video.contiguous(),
            "frames": frames, "experts": ",".join(pipe.expert_trace),
        }, out / f"{name}.pt")
        print(f"{name}: {tuple(frames.shape)} experts={pipe.expert_trace}")
    for case in LORA_CASES:
        run_lora_case(bundles, out, case)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
