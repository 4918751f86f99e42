"""Dictionary: fixed special ids, encode/decode, shrink, text loading and the safe persisted format."""

import numpy as np
import pytest

from src.text.dictionary import (
    BOS_ID,
    EOS_ID,
    MASK_ID,
    NUM_SPECIALS,
    PAD_ID,
    PERSIST_HEADER,
    UNK_ID,
    Dictionary,
)
from src.utils.errors import UserError


def make_dict():
    return Dictionary.from_counts({"the": 10, "cat": 4, "sat": 4, "on@@": 3, "mat": 2, "hel@@": 7, "lo": 7})


def test_specials_have_fixed_ids():
    d = Dictionary()
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID, NUM_SPECIALS) == (0, 1, 2, 3, 4, 5)
    assert (d.pad, d.bos, d.eos, d.unk, d.mask) == (0, 1, 2, 3, 4)
    assert d.symbols == ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    assert len(d) == NUM_SPECIALS == d.size
    assert d.index("<mask>") == MASK_ID and d[EOS_ID] == "</s>"


def test_add_symbol_lookup_and_out_of_range():
    d = make_dict()
    assert d.index("the") == 5 and d.index("lo") == 11
    assert d.add_symbol("the", 5) == 5 and d.frequency("the") == 15
    assert "cat" in d and "dog" not in d
    assert d.index("dog") == UNK_ID
    assert d[999] == "<unk>" and d[-1] == "<unk>"
    with pytest.raises(ValueError):
        d.add_symbol("two words")


def test_unk_aliases_map_to_unk():
    d = make_dict()
    assert d.index("<unk>") == d.index("UNK") == UNK_ID
    assert "UNK" in d
    assert d.encode_line("the UNK <unk> cat").tolist() == [5, UNK_ID, UNK_ID, 6, EOS_ID]
    d.add_symbol("UNK", 3)  # counted as <unk>, never a symbol of its own
    assert d.frequency("<unk>") == 3 and "UNK" not in d.symbols


def test_case_fallback_needs_frequent_lowercase():
    d = Dictionary.from_counts({"apple": 250, "pear": 10})
    assert d.index("Apple") == d.index("apple")
    assert d.index("Pear") == UNK_ID


def test_encode_decode_round_trip():
    d = make_dict()
    ids = d.encode_line("hel@@ lo the cat sat on@@ mat")
    assert ids.dtype == np.int32 and ids[-1] == EOS_ID
    assert d.decode(ids) == "hello the cat sat onmat"
    assert d.decode(ids, strip_bpe=False) == "hel@@ lo the cat sat on@@ mat"
    assert d.encode_line("the cat", append_eos=False).tolist() == [5, 6]
    # decode stops at </s>, skips <pad> and <s>, and drops a dangling "@@"
    assert d.decode([BOS_ID, 5, PAD_ID, 6, EOS_ID, 7, 7]) == "the cat"
    assert d.decode(np.array([5, d.index("hel@@")])) == "the hel"
    for sentence in ["the cat sat", "hel@@ lo", "mat on@@ the"]:
        assert d.decode(d.encode_line(sentence), strip_bpe=False) == sentence


def test_shrink_orders_by_frequency_with_stable_ties():
    d = Dictionary.from_counts({"a": 1, "b": 5, "c": 3, "d": 5, "e": 2, "f": 1})
    d.add_symbol("<unk>", 9)
    small = d.shrink(threshold=2)
    assert small.symbols[NUM_SPECIALS:] == ["b", "d", "c"]
    assert small.frequency("<unk>") == 9
    assert [small.frequency(s) for s in ["b", "d", "c"]] == [5, 5, 3]
    assert len(d) == 11  # the original is untouched


def test_shrink_multiple_of_keeps_next_most_frequent():
    counts = {f"w{i}": 100 - i for i in range(20)}
    d = Dictionary.from_counts(counts)
    small = d.shrink(threshold=95, multiple_of=8)  # w0..w4 kept: 5 + 5 = 10 -> 16
    assert len(small) == 16
    assert small.symbols[NUM_SPECIALS:] == [f"w{i}" for i in range(11)]
    too_few = Dictionary.from_counts({"x": 5, "y": 1}).shrink(threshold=3, multiple_of=16)
    assert too_few.symbols[NUM_SPECIALS:] == ["x", "y"]  # not enough symbols to reach 16
    assert len(d.shrink(threshold=95)) == 10


def test_persist_round_trip(tmp_path):
    d = make_dict()
    d.add_symbol("<unk>", 4)
    d.add_symbol("é©", 1)
    path = tmp_path / "vocab.txt"
    d.persistence(path)
    text = path.read_text(encoding="utf-8").splitlines()
    assert text[0] == PERSIST_HEADER and text[1] == "<pad>\t0" and text[4] == "<unk>\t4"
    loaded = Dictionary.load_from_persisted_dict(path)
    assert loaded == d
    assert loaded.symbols == d.symbols and loaded.frequencies == d.frequencies
    assert [loaded.index(s) for s in d.symbols] == list(range(len(d)))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_load_from_text_merges_files(tmp_path):
    (tmp_path / "a.dict").write_text("the 5\ncat 2\n", encoding="utf-8")
    (tmp_path / "b.dict").write_text("dog 1\nthe 3\n\n<unk> 2\n", encoding="utf-8")
    d = Dictionary.load_from_text([tmp_path / "a.dict", tmp_path / "b.dict"])
    assert d.symbols[NUM_SPECIALS:] == ["the", "cat", "dog"]
    assert d.frequency("the") == 8 and d.frequency("<unk>") == 2


@pytest.mark.parametrize("bad", ["the", "the 5 extra", "the five", "the -1"])
def test_load_from_text_rejects_malformed_line(tmp_path, bad):
    path = tmp_path / "x.dict"
    path.write_text(f"ok 1\n{bad}\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"x\.dict:2"):
        Dictionary.load_from_text([path])


SPECIALS = "<pad>\t0\n<s>\t0\n</s>\t0\n<unk>\t0\n<mask>\t0\n"


@pytest.mark.parametrize(
    "content, line_no, what",
    [
        ("", 1, "empty"),
        ("ccopy_reg\n_reconstructor\n" + SPECIALS, 1, "first line"),  # an old pickle
        ("#mass-vocab v2\n" + SPECIALS, 1, "first line"),
        (PERSIST_HEADER + "\n" + SPECIALS + "the 5\n", 7, "2 tab-separated"),
        (PERSIST_HEADER + "\n" + SPECIALS + "the\t5\textra\n", 7, "2 tab-separated"),
        (PERSIST_HEADER + "\n" + SPECIALS + "the\tfive\n", 7, "not a non-negative integer"),
        (PERSIST_HEADER + "\n" + SPECIALS + "the\t-3\n", 7, "not a non-negative integer"),
        (PERSIST_HEADER + "\n" + SPECIALS + "the\t1\ncat\t1\nthe\t2\n", 9, "duplicate"),
        (PERSIST_HEADER + "\n" + SPECIALS + "a b\t1\n", 7, "whitespace"),
        (PERSIST_HEADER + "\n" + SPECIALS + "\t1\n", 7, "empty or contains whitespace"),
        (PERSIST_HEADER + "\n" + SPECIALS + "\n", 7, "2 tab-separated"),
        (PERSIST_HEADER + "\n<pad>\t0\n<s>\t0\n<unk>\t0\n</s>\t0\n<mask>\t0\n", 4, "special symbol"),
        (PERSIST_HEADER + "\n<pad>\t0\n<s>\t0\n", 3, "special symbols"),
        (PERSIST_HEADER + "\n" + SPECIALS + "UNK\t1\n", 7, "fixed id"),
    ],
)
def test_persisted_vocab_errors_name_file_and_line(tmp_path, content, line_no, what):
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError) as info:
        Dictionary.load_from_persisted_dict(path)
    message = str(info.value)
    assert f"vocab.txt:{line_no}" in message
    assert what in message


def test_persisted_vocab_undecodable_bytes(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes((PERSIST_HEADER + "\n" + SPECIALS).encode() + b"caf\xe9\t1\n")
    with pytest.raises(UserError, match=r"vocab\.txt:7"):
        Dictionary.load_from_persisted_dict(path)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Dictionary.load_from_persisted_dict(tmp_path / "nope.txt")
