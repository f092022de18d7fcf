#!/usr/bin/env python3
"""Writes the Python reference outputs of Wan 2.2's tokenizer, prompt cleaning and schedulers
for the C++ parity tests (test_tokenizer.cpp, test_text_clean.cpp, test_schedulers.cpp).

usage: make_wan22_reference.py OUT_DIR

Writes, with torch.save (zipfile format):
  spiece.model     the tiny SentencePiece model (wanrt_export.tokenizer.train_tiny_tokenizer)
  bad_layout.model a model with spm_train's default ids (unk=0, bos=1, eos=2): not umT5's
  tokenizer.pt     prompts, text_lens, vocab_size and ids/<L>, mask/<L> ([N, L] int64)
  clean.pt         inputs, unescaped (one html.unescape pass), cleaned (clean_text)
  schedulers.pt    cases (list of "name/steps/shift/dtype" prefixes) and for each prefix:
                   steps, shift, timesteps, sigmas, samples (inputs of step i, [steps, ...]),
                   model_outputs ([steps, ...]) and outputs ([steps, ...])

LibTorch 1.13's C++ unpickler (torch::jit::pickle_load) lacks the APPEND and SETITEM opcodes
that Python's pickler emits for a list or dict whose length is 1 modulo 1000, so every
container is checked before saving.
"""
import html
import shutil
import subprocess
import sys
import tempfile
from html.entities import html5
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "export"))
from wanrt_export.configs import NEG_PROMPT  # noqa: E402
from wanrt_export.scheduler import make_scheduler  # noqa: E402
from wanrt_export.tokenizer import (WanTokenizer, clean_text, tiny_corpus,  # noqa: E402
                                    train_tiny_tokenizer)

torch.set_num_threads(1)


def check_loadable(obj, where="root"):
    """Rejects containers LibTorch's C++ unpickler cannot read (see the module docstring)."""
    if isinstance(obj, (list, dict)):
        if len(obj) % 1000 == 1:
            raise ValueError(f"{where}: container of length {len(obj)} (1 mod 1000) is not "
                             "readable by torch::jit::pickle_load; pad or restructure it")
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for k, v in items:
            check_loadable(v, f"{where}/{k}")
    elif isinstance(obj, tuple):
        raise ValueError(f"{where}: use lists, not tuples")


def save(obj, path: Path):
    check_loadable(obj)
    torch.save(obj, path)


# ---------------------------------------------------------------------------- tokenizer

LONG_PROMPT = " ".join(
    f"Scene {i}: a golden retriever races through a neon city at midnight, rich crimson light;"
    for i in range(60))

PROMPTS = [
    "A red fox runs across the snowy forest at dawn, 24 fps!",
    "two cats",
    "The camera pans left;  a white horse gallops along the rocky coast at sunset.",
    "black &amp; white film grain, &quot;cinematic&quot; &lt;b&gt;bold&lt;/b&gt; &amp;amp;",
    "a\t\tpanda\n\nrests beside\r\na quiet lake&nbsp;&nbsp;at dawn\u3000\u3000",
    "   leading and trailing spaces \x1f",
    "一只猫在雪地里奔跑，镜头缓慢推进",
    "一只猫在雪地里奔跑 🐈 cat, Ünïcödé ß",
    NEG_PROMPT,
    LONG_PROMPT,
    "",
    " \t\n ",
    "&eacute;t&eacute; caf&eacute; &euro;5 &#x4E2D;&#25991; &copy 2024",
    "ﬁne ｗｉｄｅ text (NFKC folds it)",
]


def train_bad_layout(out: Path):
    """A valid SentencePiece model whose ids 0/1/2 are not pad/eos/unk."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "corpus.txt").write_text("\n".join(tiny_corpus(300)) + "\n")
        subprocess.run([shutil.which("spm_train") or "spm_train", "--input=corpus.txt",
                        "--model_prefix=bad", "--vocab_size=200", "--num_threads=1",
                        "--minloglevel=2"], cwd=tmp, check=True, capture_output=True)
        shutil.copyfile(Path(tmp) / "bad.model", out / "bad_layout.model")


def tokenizer_reference(out: Path):
    model = train_tiny_tokenizer(out)
    import sentencepiece as spm
    body = len(spm.SentencePieceProcessor(model_file=str(model)).encode(
        clean_text(PROMPTS[0]), out_type=int))
    # Wan's 512, a short length that truncates most prompts, and the exact-fit boundary of
    # the first prompt (body + EOS fits; one less cuts the last body token).
    text_lens = [512, 16, body + 1, body]
    ref = {"prompts": PROMPTS, "text_lens": torch.tensor(text_lens, dtype=torch.int64)}
    for text_len in text_lens:
        tok = WanTokenizer(str(model), text_len)
        ids, mask = tok(PROMPTS)
        ref[f"ids/{text_len}"] = ids
        ref[f"mask/{text_len}"] = mask
        ref["vocab_size"] = tok.vocab_size
    save(ref, out / "tokenizer.pt")
    train_bad_layout(out)
    print(f"tokenizer: {len(PROMPTS)} prompts, text_lens {text_lens}")


# ---------------------------------------------------------------------------- cleaning

TRICKY = [
    # models/export/tests/test_tokenizer.py
    "&amp;amp;", "&amp;amp;amp;", "&amp;lt;b&amp;gt; &quot;hi&quot;", "a\t\tb\n\nc\r\nd",
    "   lead and trail \r\n", "a&nbsp;&nbsp;b", "\u3000猫\u2003\u2003cat\u00a0", "x\x1cy",
    "\x1f x \x1c", "", " \t\n ",
    # named references: legacy names without ';', prefixes, unknown names, length limits
    "&amp", "&ampx", "&AMP;", "&Amp;", "&notit;", "&not;it", "&notin;", "&noti", "&am;", "&ab",
    "&eacute;t&eacute", "&Eacute", "&ampé", "&amp\u3000x", "&amp\r", "&nGt;", "&nGt",
    "&NotNestedGreaterGreater;", "&CounterClockwiseContourIntegral;",
    "&" + "a" * 31 + ";", "&" + "a" * 32 + ";", "&" + "a" * 33 + ";", "&lt" + "x" * 40,
    "&Tab;x&NewLine;y&nbsp;z", "&bigstar", "&bigstar;", "&lt&gt&amp", "&&amp;", "& amp;",
    "&;", "&\tamp;", "&<amp;", "&amp;&amp;&amp;", "&amp;#65;", "&amp;#x41;", "&#38;amp;",
    "&#38;#38;#38;",
    # numeric references
    "&#65;&#x41;&#X41;&#0065", "&#x4a;&#x4A", "&#0;", "&#13;", "&#x0d;x", "&#128;&#x81;&#x9F;",
    "&#xD800;", "&#xDFFF;", "&#1114111;", "&#1114112;", "&#99999999999999999999;",
    "&#x110000;", "&#xFFFFFFFFFFFFFFFFFFFF;", "&#1;&#8;&#9;&#10;&#11;&#12;&#14;&#31;&#32;",
    "&#x7f;&#xa0;&#xFDD0;&#xFDEF;&#xFDF0;&#xFFFE;&#xFFFF;&#x1FFFF;&#x10FFFE;",
    "&#", "&#;", "&#x", "&#x;", "&#xg;", "&#12a;", "a&#x1F408;b", "&#x3000;&#x3000;z",
    "&#x1c;y&#28;", "&#x85;", "&#133;x",
    # whitespace set
    "a\u2028b\u2029c\x85d\x0be\x0cf", "\u1680\u200a\u202f\u205fq\u180e\u200b",
    "\x1c\x1d\x1e\x1f", "\x1c a \x1d", "a\x1c\x1cb", "\u00a0\u00a0", "\u3000x\u3000",
    "🐈 cat  😺", "mixed\t\u3000\u2003 run",
]


def fuzz(count: int, seed: int = 2024):
    """Deterministic strings built from fragments that stress the reference grammar."""
    pieces = ["&", "#", "x", "X", ";", "amp", "lt", "AMP", "not", "in", "eacute", "a", "1",
              "9", "F", "0", " ", "\t", "\n", "\r", "\u3000", "\x1c", "\x85", "\xa0", "é", "猫",
              "🐈", "&amp;", "&#", "nbsp", "1234567"]
    state = seed
    out = []
    for _ in range(count):
        state = (state * 1103515245 + 12345) % (1 << 31)
        n = 1 + (state >> 7) % 12
        s = []
        for _ in range(n):
            state = (state * 1103515245 + 12345) % (1 << 31)
            s.append(pieces[(state >> 9) % len(pieces)])
        out.append("".join(s))
    return out


def clean_reference(out: Path):
    entities = []
    for name in sorted(html5):
        entities += ["&" + name, "&" + name + "x;", "&amp;" + name]
    inputs = TRICKY + PROMPTS + fuzz(600) + entities
    if len(inputs) % 1000 == 1:
        inputs.append("pad")
    save({"inputs": inputs,
          "unescaped": [html.unescape(s) for s in inputs],
          "cleaned": [clean_text(s) for s in inputs]}, out / "clean.pt")
    print(f"clean: {len(inputs)} strings")


# ---------------------------------------------------------------------------- schedulers

SCHEDULES = [(40, 12.0), (40, 5.0), (50, 5.0), (4, 5.0), (7, 3.0), (1, 1.0), (2, 3.0),
             (3, 1.0), (13, 0.5), (25, 7.5)]


def pseudo_model(x: torch.Tensor, i: int) -> torch.Tensor:
    """A deterministic nonlinear 'velocity' (the C++ test feeds the saved outputs)."""
    return torch.sin(3 * x) + 0.3 * x * (i + 1) - 0.2


def scheduler_reference(out: Path):
    ref = {}
    cases = []
    g = torch.Generator().manual_seed(7)
    start = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    for name in ("unipc", "euler"):
        for steps, shift in SCHEDULES:
            for dtype in (torch.float32, torch.float64):
                if dtype == torch.float64 and steps not in (40, 7, 4):
                    continue
                s = make_scheduler(name)
                s.set_timesteps(steps, shift)
                x = start.to(dtype)
                samples, outputs, velocities = [], [], []
                for i in range(steps):
                    v = pseudo_model(x, i)
                    samples.append(x)
                    velocities.append(v)
                    x = s.step(v, i, x)
                    outputs.append(x)
                key = f"{name}/{steps}/{shift}/{str(dtype).replace('torch.', '')}"
                cases.append(key)
                ref.update({
                    f"{key}/steps": steps, f"{key}/shift": shift,
                    f"{key}/timesteps": s.timesteps.clone(), f"{key}/sigmas": s.sigmas.clone(),
                    f"{key}/samples": torch.stack(samples), f"{key}/outputs": torch.stack(outputs),
                    f"{key}/model_outputs": torch.stack(velocities),
                })
    ref["cases"] = cases
    save(ref, out / "schedulers.pt")
    print(f"schedulers: {len(cases)} cases")


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_reference(out)
    clean_reference(out)
    scheduler_reference(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
