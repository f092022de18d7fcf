"""Prompt cleaning, umT5-style ids/masks, and the tiny SentencePiece model."""
import sys

import pytest
import torch

from wanrt_export.tokenizer import (EOS_ID, PAD_ID, STRIP_CHARS, UNK_ID, WHITESPACE, WanTokenizer,
                                    clean_text, train_tiny_tokenizer)

TEXT = "A red fox runs across the snowy forest at dawn, 24 fps!"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return train_tiny_tokenizer(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="module")
def sp(model_path):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=str(model_path))


@pytest.mark.parametrize("raw,want", [
    ("&amp;amp;", "&"),                          # unescaped twice
    ("&amp;amp;amp;", "&amp;"),                  # ... and only twice
    ("&amp;lt;b&amp;gt; &quot;hi&quot;", '<b> "hi"'),
    ("a\t\tb\n\nc\r\nd", "a b c d"),
    ("   lead and trail \r\n", "lead and trail"),
    ("a&nbsp;&nbsp;b", "a b"),                   # entity becomes U+00A0, then collapses
    ("\u3000猫\u2003\u2003cat\u00a0", "猫 cat"),
    ("x\x1cy", "x\x1cy"),                        # not collapsed inside ...
    ("\x1f x \x1c", "x"),                        # ... but stripped at the ends
    ("", ""),
    (" \t\n ", ""),
])
def test_clean_text(raw, want):
    assert clean_text(raw) == want


def test_whitespace_sets_follow_unicode():
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert set(STRIP_CHARS) == spaces
    assert set(WHITESPACE) == spaces - {"\x1c", "\x1d", "\x1e", "\x1f"}


def test_whitespace_matches_official_regex_module():
    regex = pytest.importorskip("regex")  # the official cleaner's `\s` (not in Debian's stack)
    every = (chr(c) for c in range(sys.maxunicode + 1))
    assert {c for c in every if regex.fullmatch(r"\s", c)} == set(WHITESPACE)


def test_model_layout(sp):
    assert sp.get_piece_size() == 384
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (PAD_ID, EOS_ID, UNK_ID, -1)
    assert (PAD_ID, EOS_ID, UNK_ID) == (0, 1, 2)


def test_ids_mask_eos_and_padding(model_path, sp):
    tok = WanTokenizer(str(model_path), 40)
    texts = [TEXT, "two cats", ""]
    ids, mask = tok(texts)
    assert ids.shape == mask.shape == (3, 40)
    assert ids.dtype == mask.dtype == torch.int64
    lens = tok.seq_lens(mask)
    assert lens.dtype == torch.int64
    for b, text in enumerate(texts):
        body = sp.encode(clean_text(text), out_type=int)
        n = len(body) + 1
        assert lens[b].item() == n
        assert ids[b, :n].tolist() == body + [EOS_ID]
        assert mask[b, :n].tolist() == [1] * n
        assert ids[b, n:].tolist() == [PAD_ID] * (40 - n)
        assert mask[b, n:].tolist() == [0] * (40 - n)
    assert ids[2, 0].item() == EOS_ID and lens[2].item() == 1


def test_cleaning_applies_inside_call(model_path):
    tok = WanTokenizer(str(model_path), 16)
    a, _ = tok(["two\t\tcats &amp;amp; a  fox"])
    b, _ = tok(["two cats & a fox"])
    assert torch.equal(a, b)


def test_truncation_keeps_eos_last(model_path, sp):
    text_len = 12
    tok = WanTokenizer(str(model_path), text_len)
    body = sp.encode(TEXT, out_type=int)
    assert len(body) > text_len
    ids, mask = tok([TEXT])
    assert ids[0].tolist() == body[: text_len - 1] + [EOS_ID]
    assert mask[0].tolist() == [1] * text_len
    assert tok.seq_lens(mask).tolist() == [text_len]
    # Boundary: a body of exactly text_len - 1 fits with its EOS; one more token is cut.
    exact = WanTokenizer(str(model_path), len(body) + 1)(([TEXT]))[0][0].tolist()
    assert exact == body + [EOS_ID]
    short = WanTokenizer(str(model_path), len(body))(([TEXT]))[0][0].tolist()
    assert short == body[:-1] + [EOS_ID]


def test_unknown_characters_do_not_crash(model_path):
    tok = WanTokenizer(str(model_path), 32)
    ids, mask = tok(["一只猫在雪地里奔跑 🐈 cat", "Ünïcödé ß"])
    assert UNK_ID in ids[0].tolist()
    assert int(ids.max()) < 384 and int(ids.min()) >= 0
    assert tok.seq_lens(mask).min().item() >= 2


def test_round_trip_decode(model_path):
    tok = WanTokenizer(str(model_path), 64)
    text = "  The camera pans left;  a white horse gallops along the rocky coast at sunset.  "
    ids, mask = tok([text])
    assert UNK_ID not in ids[0].tolist()
    assert tok.decode(ids[0].tolist()) == clean_text(text)


def test_training_is_deterministic(model_path, tmp_path):
    again = train_tiny_tokenizer(tmp_path / "again")
    assert again.name == "spiece.model"
    assert again.read_bytes() == model_path.read_bytes()


def test_rejects_bad_text_len(model_path):
    with pytest.raises(ValueError):
        WanTokenizer(str(model_path), 0)
