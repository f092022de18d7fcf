"""umT5 tokenization as Wan does it: clean the prompt, SentencePiece-encode, append EOS,
truncate and pad to a fixed length. The C++ runtime reimplements this exactly.

umT5 ids: pad = 0, eos = 1, unk = 2, no BOS. A tiny SentencePiece model for tests and demo
bundles is trained with Debian's `spm_train` on a corpus generated here.
"""
import html
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Tuple

import torch
from torch import Tensor

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2

# Unicode White_Space: what `\s` matches in the `regex` module used by the official cleaner.
# (Python's `re` and str.isspace() add U+001C..U+001F, which `regex` does not collapse.)
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# What str.strip() removes at both ends: WHITESPACE plus U+001C..U+001F.
STRIP_CHARS = WHITESPACE + "\x1c\x1d\x1e\x1f"
_WS_RUN = re.compile("[" + re.escape(WHITESPACE) + "]+")


def clean_text(text: str) -> str:
    """Wan's 'whitespace' prompt cleaning, minus ftfy.

    Steps: html.unescape twice (so `&amp;amp;` becomes `&`); replace every run of
    WHITESPACE characters by one space; strip STRIP_CHARS at both ends. Official Wan first
    runs ftfy.fix_text (mojibake repair, curly quotes to straight, control-character
    removal, NFC); ftfy is not in our stack and is not applied, so such prompts may tokenize
    differently. Width and ligature folding is still done by the SentencePiece normalizer.
    """
    text = html.unescape(html.unescape(text))
    return _WS_RUN.sub(" ", text).strip(STRIP_CHARS)


class WanTokenizer:
    """SentencePiece umT5 tokenizer producing fixed-length ids and attention masks."""

    def __init__(self, model_path: str, text_len: int):
        import sentencepiece as spm

        if text_len < 1:
            raise ValueError(f"text_len must be >= 1, got {text_len}")
        self.text_len = text_len
        self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        for want, piece in ((PAD_ID, "<pad>"), (EOS_ID, "</s>"), (UNK_ID, "<unk>")):
            if self.sp.id_to_piece(want) != piece:
                raise ValueError(f"{model_path}: id {want} is '{self.sp.id_to_piece(want)}', "
                                 f"expected '{piece}' (umT5 layout pad=0, eos=1, unk=2)")
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, text: str) -> List[int]:
        """Cleaned text -> ids with EOS, truncated to text_len (EOS kept last), unpadded."""
        ids = self.sp.encode(clean_text(text), out_type=int)
        return ids[: self.text_len - 1] + [EOS_ID]

    def __call__(self, texts: List[str]) -> Tuple[Tensor, Tensor]:
        """texts -> (ids [B, text_len] int64, mask [B, text_len] int64, 1 = real token)."""
        ids = torch.full((len(texts), self.text_len), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(texts), self.text_len), dtype=torch.long)
        for b, text in enumerate(texts):
            row = self.encode(text)
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[b, : len(row)] = 1
        return ids, mask

    @staticmethod
    def seq_lens(mask: Tensor) -> Tensor:
        """Number of real tokens (EOS included) per row: [B] int64."""
        return mask.ne(0).sum(dim=1).to(torch.long)

    def decode(self, ids: List[int]) -> str:
        """Ids back to text; pad and EOS are dropped."""
        return self.sp.decode([i for i in ids if i not in (PAD_ID, EOS_ID)])


# ---- tiny model for tests ---------------------------------------------------------------

_WORDS = {
    "subject": ["a red fox", "an old man", "two cats", "a young woman", "a golden retriever",
                "a flock of birds", "a small boat", "the astronaut", "a white horse",
                "three children", "a robot", "an eagle", "a panda", "the dancer", "a train",
                "a jellyfish", "the chef", "a vintage car", "a tiger cub", "the violinist",
                "a paper kite", "a brown bear", "the knight", "a hummingbird"],
    "action": ["runs across", "walks along", "flies over", "jumps into", "rests beside",
               "drifts down", "climbs up", "spins around", "waits near", "races through",
               "swims in", "looks at", "glides above", "stumbles toward", "sneaks behind",
               "wanders past", "dives under", "gallops along"],
    "place": ["a snowy forest", "the busy street", "a quiet lake", "the desert dunes",
              "a neon city", "the rocky coast", "a green meadow", "the mountain pass",
              "an empty stadium", "a sunlit kitchen", "the old bridge", "a rainy harbor",
              "a bamboo grove", "the frozen waterfall", "a crowded market", "the volcano rim",
              "a moonlit garden", "the subway platform"],
    "weather": ["under heavy rain", "at sunset", "in thick fog", "on a windy day",
                "beneath a clear sky", "during a thunderstorm", "at dawn", "in light snow",
                "in humid haze", "after a blizzard", "under drizzle", "at midnight"],
    "colour": ["warm orange", "cool blue", "soft pink", "deep green", "pale yellow",
               "bright purple", "muted grey", "rich crimson", "turquoise", "amber",
               "silver", "violet"],
    "camera": ["The camera pans left", "The camera slowly zooms in", "A drone shot rises",
               "The camera tracks forward", "A handheld shot shakes", "The camera tilts up",
               "A close-up holds still", "The camera orbits around", "A dolly shot pulls back",
               "The lens racks focus", "A crane shot sweeps down", "The view whips right"],
    "style": ["cinematic", "photorealistic", "dreamy", "high contrast", "film grain",
              "slow motion", "4K detail", "anime style", "watercolor", "vivid HDR",
              "black & white", "macro lens", "wide-angle", "Kodak 35mm"],
    "detail": ["leaves swirl quietly", "sparks flicker nearby", "puddles reflect lanterns",
               "dust glitters everywhere", "waves crash rhythmically", "petals tumble gently",
               "smoke curls upward", "shadows stretch longer", "ripples spread outward",
               "feathers scatter wildly", "icicles drip steadily", "fireflies blink softly",
               "clouds gather ominously", "banners flutter proudly", "engines roar loudly",
               "bells chime faintly"],
}


def tiny_corpus(lines: int = 3000) -> List[str]:
    """Deterministic English prompt-like sentences (a fixed LCG, no `random`)."""
    keys = list(_WORDS)
    state = 12345
    out = []
    for i in range(lines):
        pick = {}
        for k in keys:
            state = (state * 1103515245 + 12345) % (1 << 31)
            pick[k] = _WORDS[k][(state >> 8) % len(_WORDS[k])]
        n = (state >> 4) % 97
        out.append(f"{pick['subject'].capitalize()} {pick['action']} {pick['place']} "
                   f"{pick['weather']}, lit in {pick['colour']} light; {pick['detail']}. {pick['camera']}; "
                   f"shot {i % 7 + 1} of {n + 2}, {pick['style']} (take #{n}) - 24 fps!")
    return out


def train_tiny_tokenizer(out_dir: Path, vocab_size: int = 384) -> Path:
    """Train a small unigram SentencePiece model with umT5's special ids; returns spiece.model.

    Training runs single-threaded on an unshuffled generated corpus, with relative file names
    in a scratch folder (the trainer spec stored in the model records them), so two runs
    give byte-identical files.
    """
    spm_train = shutil.which("spm_train")
    if spm_train is None:
        raise RuntimeError("spm_train not found (Debian package sentencepiece)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "corpus.txt").write_text("\n".join(tiny_corpus()) + "\n", encoding="utf-8")
        cmd = [spm_train, "--input=corpus.txt", "--model_prefix=spiece",
               f"--vocab_size={vocab_size}", "--model_type=unigram",
               "--character_coverage=1.0", "--pad_id=0", "--eos_id=1", "--unk_id=2",
               "--bos_id=-1", "--num_threads=1", "--shuffle_input_sentence=false",
               "--minloglevel=2"]
        res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"spm_train failed ({res.returncode}): {res.stderr[-2000:]}")
        dst = out_dir / "spiece.model"
        shutil.copyfile(Path(tmp) / "spiece.model", dst)
    return dst
