"""Eager reference pipeline: the oracle the C++ runtime's parity tests compare against.

It runs our eager modules in float32 and reproduces the official generation loops
(docs/wan22.md sections 4, 6) with these exact, documented conventions (the C++ must do the same):

Text. ``tokenizer([text]) -> (ids, mask)``; ``context = text_encoder(ids, mask)``; rows at
and beyond ``n = mask.sum()`` are set to zero (official: keep the n real rows, then WanModel
zero-pads to text_len). An empty or missing negative prompt becomes ``NEG_PROMPT``.

Noise. One draw on the CPU, whatever the compute device::

    g = torch.Generator().manual_seed(seed)           # CPU generator
    noise = torch.randn([z_dim, (F-1)//st + 1, H//sh, W//sw], generator=g, dtype=torch.float32)

(st, sh, sw = VAE stride); C++: ``at::randn(shape, at::detail::createCPUGenerator(seed))``.

Loop. ``scheduler.set_timesteps(steps, shift)``; for step i with timestep t (an integer for
unipc/euler, the float32 value for lightning, compared as a double):
MoE expert ``high = boundary is not None and t >= boundary * num_train_timesteps``; the
high-noise expert and guidance ``guide[1]`` when high, else the low-noise expert (or the
single "dit") and ``guide[0]``. Two batch-1 forwards, cond then uncond, with t as a float32
tensor ``[1]`` (``[1, L]`` for TI2V image conditioning);
``v = uncond + g * (cond - uncond)``; ``latent = scheduler.step(v, i, latent)``. When the
step's guidance is exactly 1.0 the uncond forward is skipped and ``v = cond``.

LoRAs (``from_bundle(loras=...)``) are merged into the float32 eager DiT weights after loading,
as wanrt_export/lora.py describes (in the given order, each on the experts it names).

Image (I2V and TI2V), ``prepare_image``: the uint8 [H0, W0, 3] image is centre-cropped to
the requested aspect ratio (crop width ``H0*W // H`` or crop height ``W0*H // W``, floor
division, offset ``(excess) // 2``), converted like torchvision's to_tensor then
``(x - 0.5) / 0.5``, and resized with ``F.interpolate(mode="bicubic", align_corners=False)``
(no antialias, no clamp; skipped when the crop already has the target size). The official
code uses bicubic for I2V and PIL Lanczos after its own size search for TI2V; Lanczos is not
reproducible from LibTorch, and we take the requested (W, H) as given instead of deriving it
from a max area.

* I2V: ``mask`` = 4 channels built as the official code (frame 0 of the pixel mask repeated
  4x, then viewed as [lat_f, 4] and transposed), so channels are 1 on latent frame 0 and 0
  elsewhere; ``y = cat([mask, vae.encode(cat([image, zeros(3, F-1, H, W)], frames))[0]])``;
  the DiT input is ``cat([latent, y], channels)`` for both branches.
* TI2V with an image: ``z0 = vae.encode(image as 1 frame)``; ``m = 1`` everywhere except 0 on
  latent frame 0; ``latent = (1 - m) * z0 + m * noise`` before the loop and after every step;
  per-token timesteps ``(m[0, :, ::ph, ::pw] * t).flatten()`` as ``[1, L]`` (frame-0 tokens
  get t = 0). TI2V without an image passes the uniform ``[1]`` t.

Output. ``video = vae.decode(latent[None])`` in [-1, 1]; frames as the official save_video:
``((video.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)`` (truncation, not rounding),
returned as ``[F, H, W, 3]``.
"""
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import attention as attn
from . import torchscript as ts
from . import weights
from .configs import NEG_PROMPT, ModelConfig
from .scheduler import make_scheduler

Guidance = Union[float, Tuple[float, float], Sequence[float]]


def initial_noise(seed: int, shape: Sequence[int]) -> Tensor:
    """The seeded float32 CPU noise draw (see the module docstring)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn([int(s) for s in shape], generator=g, dtype=torch.float32)


def prepare_image(image: Tensor, size: Tuple[int, int]) -> Tensor:
    """uint8 [H0, W0, 3] -> float32 [3, H, W] in [-1, 1]: centre crop to W:H, then bicubic."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.size(2) != 3:
        raise ValueError("image must be a uint8 tensor [H, W, 3]")
    w, h = int(size[0]), int(size[1])
    ih, iw = int(image.size(0)), int(image.size(1))
    if iw * h > ih * w:                       # too wide: crop the width
        cw = ih * w // h
        x0 = (iw - cw) // 2
        image = image[:, x0:x0 + cw]
    elif iw * h < ih * w:                     # too tall: crop the height
        ch = iw * h // w
        y0 = (ih - ch) // 2
        image = image[y0:y0 + ch]
    x = image.permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    x = x.sub(0.5).div(0.5)
    if (x.size(1), x.size(2)) != (h, w):
        x = F.interpolate(x[None], size=(h, w), mode="bicubic", align_corners=False)[0]
    return x


def frames_to_uint8(video: Tensor) -> Tensor:
    """[3, F, H, W] in [-1, 1] -> uint8 [F, H, W, 3], mapped as the official save_video."""
    u8 = ((video.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)
    return u8.permute(1, 2, 3, 0).contiguous()


def i2v_mask(frames: int, lat_h: int, lat_w: int, stride_t: int = 4) -> Tensor:
    """The 4-channel I2V mask [stride_t, lat_f, lat_h, lat_w] (official construction)."""
    msk = torch.ones(1, frames, lat_h, lat_w)
    msk[:, 1:] = 0
    msk = torch.cat([torch.repeat_interleave(msk[:, 0:1], repeats=stride_t, dim=1), msk[:, 1:]], dim=1)
    msk = msk.view(1, msk.size(1) // stride_t, stride_t, lat_h, lat_w)
    return msk.transpose(1, 2)[0]


def _guidance_pair(guidance: Optional[Guidance], default: Sequence[float]) -> Tuple[float, float]:
    if guidance is None:
        return float(default[0]), float(default[1])
    if isinstance(guidance, (int, float)):
        return float(guidance), float(guidance)
    g = [float(v) for v in guidance]
    if len(g) != 2:
        raise ValueError("guidance must be a float or a (low_noise, high_noise) pair")
    return g[0], g[1]


class ReferencePipeline:
    """Eager float32 Wan 2.2 pipeline (T2V-A14B, I2V-A14B, TI2V-5B and the tiny configs).

    After ``generate``: ``last_latent`` (final latent [z, lat_f, lat_h, lat_w]),
    ``last_video`` (decoded float video [3, F, H, W]) and ``trace`` (one dict per step:
    index, t, expert, guidance) describe the run; ``last`` holds the intermediates
    (context, context_null, noise, y, z0, timesteps, sigmas) for parity tests.
    """

    def __init__(self, cfg: ModelConfig, text_encoder: nn.Module, experts: Dict[str, nn.Module],
                 vae, tokenizer, device: Union[str, torch.device] = "cpu"):
        missing = [e for e in cfg.experts if e not in experts]
        if missing:
            raise ValueError(f"{cfg.name}: missing expert modules {missing}")
        self.cfg = cfg
        self.text_encoder = text_encoder
        self.experts = {name: experts[name] for name in cfg.experts}
        self.vae = vae
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        for m in [text_encoder, vae, *self.experts.values()]:
            if isinstance(m, nn.Module):
                m.eval()
        self.last_latent: Optional[Tensor] = None
        self.last_video: Optional[Tensor] = None
        self.trace: List[dict] = []
        self.last: Dict[str, object] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_bundle(cls, bundle_dir: Union[str, Path], device: Union[str, torch.device] = "cpu",
                    loras: Optional[Sequence[Tuple[Union[str, Path], float, str]]] = None,
                    allow_partial: bool = False) -> "ReferencePipeline":
        """Eager modules built from ``wanrt.yaml``'s architecture section, weights from each
        component's files (its TorchScript file, and in format 2 its safetensors weights), all float32, attending
        as the bundle says (``attention:``) where this PyTorch can. `loras`: [(path, strength,
        "all"|"high"|"low"), ...] merged into the DiT experts in float32 (lora.py)."""
        import yaml
        from . import host_allocator
        from .dit import WanModel
        from .lora import apply_loras_, loras_per_expert
        from .manifest import config_from_manifest
        from .t5 import UMT5Encoder
        from .tokenizer import WanTokenizer

        host_allocator.configure()  # the runtime's policy, unless WANRT_HOST_ALLOCATOR says otherwise
        root = Path(bundle_dir).resolve()
        with open(root / "wanrt.yaml", "r", encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        cfg = config_from_manifest(doc)
        comps = doc["components"]
        per_expert = loras_per_expert(cfg.experts, loras)

        def path_of(rel: str) -> Path:
            p = (root / rel).resolve()
            if root not in p.parents:
                raise ValueError(f"bundle path '{rel}' escapes {root}")
            return p

        def load(module: nn.Module, name: str) -> nn.Module:
            entry = comps[name]
            for key in ("file", "weights"):
                if entry.get(key):
                    path_of(entry[key])  # stays inside the bundle
            sd = weights.component_state_dict(root, entry)
            _load_scripted_state(module, sd, name)
            return module.float().to(device).eval()

        # The bundle's attention where this PyTorch has it, so both sides compute the same.
        mode = doc.get("attention", "math")
        with attn.use(mode if mode == "math" or attn.HAS_SDPA else "math"):
            text_encoder = load(UMT5Encoder(cfg.t5), "text_encoder")
            experts = {name: load(WanModel(cfg.dit), name) for name in cfg.experts}
            for name, specs in per_expert.items():
                if specs:
                    apply_loras_(experts[name], specs, allow_partial)
            vae = load(_build_vae(cfg), "vae")
        tok = doc.get("tokenizer", {})
        tokenizer = WanTokenizer(str(path_of(tok.get("file", "tokenizer/spiece.model"))),
                                 int(tok.get("text_len", cfg.dit.text_len)))
        return cls(cfg, text_encoder, experts, vae, tokenizer, device=device)

    # ------------------------------------------------------------------ pieces

    def encode_text(self, text: str) -> Tensor:
        """Prompt -> context [1, text_len, dim] float32, zero beyond the real tokens."""
        ids, mask = self.tokenizer([text])
        ids, mask = ids.to(self.device), mask.to(self.device)
        out = self.text_encoder(ids, mask).float()
        n = int(mask[0].sum().item())
        ctx = torch.zeros_like(out[:1])
        ctx[:, :n] = out[:1, :n]
        return ctx

    def latent_shape(self, frames: int, size: Tuple[int, int]) -> List[int]:
        """[z_dim, lat_f, lat_h, lat_w]; checks the 4n+1 frame rule and the size strides."""
        st, sh, sw = self.cfg.vae.stride
        _, ph, pw = self.cfg.dit.patch_size
        w, h = int(size[0]), int(size[1])
        if frames < 1 or (frames - 1) % st != 0:
            raise ValueError(f"frames must be {st}n+1, got {frames}")
        if h % (sh * ph) != 0 or w % (sw * pw) != 0:
            raise ValueError(f"size {w}x{h} must be divisible by {sw * pw}x{sh * ph}")
        return [self.cfg.vae.z_dim, (frames - 1) // st + 1, h // sh, w // sw]

    def select(self, t: Union[int, float], boundary_t: Optional[float], guide: Tuple[float, float]
               ) -> Tuple[str, float]:
        """(expert name, guidance) for timestep t (int, or the float32 value for lightning)."""
        high = boundary_t is not None and t >= boundary_t
        if len(self.cfg.experts) == 1:
            name = self.cfg.experts[0]
        else:
            name = "dit_high_noise" if high else "dit_low_noise"
        return name, guide[1] if high else guide[0]

    # ------------------------------------------------------------------ generate

    @torch.no_grad()
    def generate(self, prompt: str, negative_prompt: Optional[str] = None,
                 size: Optional[Tuple[int, int]] = None, frames: Optional[int] = None,
                 steps: Optional[int] = None, seed: int = 0, guidance: Optional[Guidance] = None,
                 shift: Optional[float] = None, sampler: Optional[str] = None,
                 image: Optional[Tensor] = None,
                 progress: Optional[Callable[[int, int], None]] = None) -> Tensor:
        """Generate a video; returns uint8 frames [F, H, W, 3] (see the module docstring)."""
        cfg, sd = self.cfg, self.cfg.sampling
        size = tuple(size) if size is not None else tuple(sd.size)
        frames = int(frames if frames is not None else sd.frames)
        steps = int(steps if steps is not None else sd.steps)
        shift = float(shift if shift is not None else sd.shift)
        sampler = sampler or sd.sampler
        guide = _guidance_pair(guidance, sd.guide_scale)
        if cfg.task == "i2v" and image is None:
            raise ValueError("the i2v task needs an image")
        if cfg.task == "t2v" and image is not None:
            raise ValueError("the t2v task takes no image")
        shape = self.latent_shape(frames, size)

        context = self.encode_text(prompt)
        context_null = self.encode_text(negative_prompt or NEG_PROMPT)
        noise = initial_noise(seed, shape)
        latent = noise.to(self.device)
        self.last = {"context": context, "context_null": context_null, "noise": noise}

        y, keep, z0, t_mask = None, None, None, None
        if image is not None:
            img = prepare_image(image, size).to(self.device)          # [3, H, W]
            if cfg.task == "i2v":
                w, h = int(size[0]), int(size[1])
                video = torch.cat([img[:, None], img.new_zeros(3, frames - 1, h, w)], dim=1)
                y_lat = self.vae.encode(video[None])[0].float()
                msk = i2v_mask(frames, shape[2], shape[3], cfg.vae.stride[0]).to(self.device)
                y = torch.cat([msk, y_lat])
                self.last["y"] = y
            else:                                                     # ti2v
                z0 = self.vae.encode(img[None, :, None])[0].float()   # [z, 1, lat_h, lat_w]
                keep = torch.ones_like(latent)
                keep[:, 0] = 0
                latent = (1.0 - keep) * z0 + keep * latent
                _, ph, pw = cfg.dit.patch_size
                t_mask = keep[0][:, ::ph, ::pw].flatten()
                self.last["z0"] = z0

        scheduler = make_scheduler(sampler, sd.num_train_timesteps)
        scheduler.set_timesteps(steps, shift)
        self.last["timesteps"] = scheduler.timesteps.clone()
        self.last["sigmas"] = scheduler.sigmas.clone()
        boundary_t = None if sd.boundary is None else sd.boundary * sd.num_train_timesteps
        self.trace = []
        for i, t in enumerate(scheduler.timesteps.tolist()):
            name, g = self.select(t, boundary_t, guide)
            model = self.experts[name]
            t_val = torch.tensor([float(t)], dtype=torch.float32, device=self.device)
            t_in = t_val if t_mask is None else (t_mask * t_val)[None]
            x_in = latent if y is None else torch.cat([latent, y])
            x_in = x_in[None]
            cond = model(x_in, t_in, context)[0]
            if g == 1.0:                       # no guidance: the uncond pass would cancel out
                v, calls = cond, 1
            else:
                uncond = model(x_in, t_in, context_null)[0]
                v, calls = uncond + g * (cond - uncond), 2
            latent = scheduler.step(v, i, latent)
            if keep is not None:
                latent = (1.0 - keep) * z0 + keep * latent
            self.trace.append({"index": i, "t": t, "expert": name, "guidance": g, "dit_calls": calls})
            if progress is not None:
                progress(i + 1, steps)

        self.last_latent = latent
        video = self.vae.decode(latent[None])[0].float()
        self.last_video = video
        return frames_to_uint8(video.cpu())

    @property
    def expert_trace(self) -> List[str]:
        """The expert that ran at each step of the last generate()."""
        return [s["expert"] for s in self.trace]


def _load_scripted_state(module: nn.Module, sd: Dict[str, Tensor], name: str) -> None:
    """load_state_dict(strict) from a TorchScript module's state_dict.

    A scripted module also lists its non-persistent buffers (derived constants such as the
    VAE's latent mean/std); those are not loaded but must equal the eager module's values.
    """
    buffers = dict(module.named_buffers())
    expected = set(module.state_dict().keys())
    for key in [k for k in sd if k not in expected and k in buffers]:
        extra = sd.pop(key)
        mine = buffers[key]
        if extra.shape != mine.shape or not torch.equal(extra.to(mine.dtype), mine):
            raise ValueError(f"{name}: buffer '{key}' in the bundle differs from the config's")
    module.load_state_dict(sd, strict=True)


def _build_vae(cfg: ModelConfig) -> nn.Module:
    """The eager VAE of cfg (vae_common.build_vae, else vae.build_vae)."""
    try:
        from .vae_common import build_vae  # type: ignore
    except ImportError:
        from .vae import build_vae  # type: ignore
    return build_vae(cfg.vae)
