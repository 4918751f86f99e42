"""Tokenizer, BPE (checked against subword-nmt itself as the oracle) and the two data-preparation scripts."""

import random
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from subword_nmt.apply_bpe import BPE

import apply_bpe_encoding
import tokenize_corpus
from src.text import text_options
from src.text.byte_pair_encoding import (
    BytePairEncoder,
    encode_lines,
    init_encoder,
    learn_bpe,
    read_codes,
)
from src.text.dictionary import NUM_SPECIALS, Dictionary
from src.text.tokenizer import detokenize, word_tokenize
from src.utils.cli import run_cli
from src.utils.errors import UserError
from src.utils.parallel import ordered_pool_map
from tests.helpers import write_lines

ROOT = Path(__file__).resolve().parents[1]


# ---- data -------------------------------------------------------------------------------------------
def make_corpus(n_lines=300, seed=0):
    """Tokenized-looking English-ish lines with rare words, numbers, <unk>/UNK and glossary look-alikes."""
    rng = random.Random(seed)
    syllables = ["th", "e", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of",
                 "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le"]
    common = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", ",", ".", "'s", "n't"]
    specials = ["<unk>", "UNK", "JUNK", "UNKnown", "x<unk>y", "é", "naïve", "1990s", "U.S.", "--", "a"]
    lines = []
    for _ in range(n_lines):
        words = []
        for _ in range(rng.randint(1, 18)):
            r = rng.random()
            if r < 0.45:
                words.append(rng.choice(common))
            elif r < 0.9:
                word = "".join(rng.choice(syllables) for _ in range(rng.randint(1, 5)))
                words.append(word.capitalize() if rng.random() < 0.1 else word)
            else:
                words.append(rng.choice(specials))
        lines.append(" ".join(words))
    return lines


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    lines = make_corpus()
    (folder / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    codes = folder / "codes.bpe"
    learn_bpe([folder / "train.txt"], codes, num_merges=300)
    return folder, lines, codes


def oracle(codes, lines, glossaries=None):
    with open(codes, encoding="utf-8") as handle:
        bpe = BPE(handle, glossaries=glossaries)
    return [bpe.process_line(line) for line in lines]


# ---- tokenizer ----------------------------------------------------------------------------------------
def test_nltk_tokens_are_treebank_style():
    assert word_tokenize("I don't know.") == ["I", "do", "n't", "know", "."]
    assert word_tokenize('He said "hi," then left (quickly).') == [
        "He", "said", "``", "hi", ",", "''", "then", "left", "(", "quickly", ")", "."]


def test_unk_tokens_stay_whole():
    assert word_tokenize("the <unk> said UNK's <unk>.") == ["the", "<unk>", "said", "UNK", "'s", "<unk>", "."]
    assert word_tokenize("<unk>") == ["<unk>"]
    assert word_tokenize("UNK UNK") == ["UNK", "UNK"]
    assert word_tokenize("a<unk>b") == ["a", "<unk>", "b"]


def test_jieba_tokenizer_keeps_unk_and_drops_spaces():
    tokens = word_tokenize("我爱北京 <unk> 天安门 UNK", tokenizer="jieba")
    assert "<unk>" in tokens and "UNK" in tokens
    assert all(t.strip() == t and t for t in tokens)
    assert "".join(t for t in tokens if t not in ("<unk>", "UNK")) == "我爱北京天安门"


def test_unknown_tokenizer_rejected():
    with pytest.raises(ValueError):
        word_tokenize("x", tokenizer="moses")


def test_detokenize_inverts_treebank():
    assert detokenize(["I", "do", "n't", "know", "."]) == "I don't know."
    text = "He said it's fine, didn't he?"
    assert detokenize(word_tokenize(text)) == text


# ---- BPE vs subword-nmt --------------------------------------------------------------------------------
def test_learn_bpe_writes_versioned_codes(corpus):
    _, _, codes = corpus
    lines = codes.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#version: 0.2" and len(lines) == 301
    ranks, version = read_codes(codes)
    assert version == (0, 2) and len(ranks) == 300
    assert not list(codes.parent.glob(".*.tmp"))


@pytest.mark.parametrize("glossaries", [None, ["<unk>", "UNK"]])
def test_encoder_matches_subword_nmt(corpus, glossaries):
    _, lines, codes = corpus
    extra = ["", "   ", "  lead and trail  ", "double  space", "x", "UNKUNK JUNKY <unk><unk>", "zzzzqqq"]
    probe = lines + extra
    encoder = BytePairEncoder(codes, glossaries=glossaries)
    expected = oracle(codes, probe, glossaries)
    assert [encoder.encode_line(line) for line in probe] == expected
    assert [encoder.encode_line(line) for line in probe] == expected  # second pass: from the memo
    assert encoder.encode_tokens(lines[0].split(" ")) == expected[0].split()
    assert any("@@ " in line for line in expected)  # the codes do split words


def test_glossaries_never_split(corpus):
    _, _, codes = corpus
    encoder = BytePairEncoder(codes)
    assert encoder.encode_line("<unk> UNK") == "<unk> UNK"
    plain = BytePairEncoder(codes, glossaries=())
    assert plain.encode_line("<unk>") == oracle(codes, ["<unk>"])[0]


def test_version_01_codes_match_subword_nmt(corpus, tmp_path):
    _, lines, codes = corpus
    old = tmp_path / "codes01"
    old.write_text("".join(codes.read_text(encoding="utf-8").splitlines(True)[1:]), encoding="utf-8")
    assert read_codes(old)[1] == (0, 1)
    encoder = BytePairEncoder(old, glossaries=None)
    assert [encoder.encode_line(line) for line in lines] == oracle(old, lines)


def test_hand_made_codes_worked_example(tmp_path):
    codes = tmp_path / "codes"
    codes.write_text("#version: 0.2\nh e\nl l\nhe ll\no</w> x\nl o</w>\n", encoding="utf-8")
    encoder = BytePairEncoder(codes)
    # hell: h e l l</w> -> he l l</w> ("l l</w>" is no code) -> he@@ l@@ l
    assert encoder.encode_line("hello hell lo") == "hell@@ o he@@ l@@ l lo"
    assert encoder.encode_line("hello hell lo") == oracle(codes, ["hello hell lo"])[0]


@pytest.mark.parametrize(
    "content, line_no",
    [("#version: 0.2\nt h\nbad\n", 3), ("#version: 0.2\nt h\na b c\n", 3), ("a b\n\nc d\n", 2),
     ("#version: 9.9\na b\n", 1)],
)
def test_malformed_codes_name_file_and_line(tmp_path, content, line_no):
    codes = tmp_path / "codes.bad"
    codes.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=rf"codes\.bad:{line_no}"):
        BytePairEncoder(codes)


def test_codes_trailing_blank_lines_are_fine(tmp_path):
    codes = tmp_path / "codes"
    codes.write_text("#version: 0.2\nt h\n\n\n", encoding="utf-8")
    assert BytePairEncoder(codes).encode_line("the") == "th@@ e"


def test_encode_lines_in_process_and_in_pool(corpus):
    _, lines, codes = corpus
    init_encoder(codes)
    expected = oracle(codes, lines, ["<unk>", "UNK"])
    assert encode_lines(lines) == expected
    chunks = [lines[i:i + 37] for i in range(0, len(lines), 37)]
    with ProcessPoolExecutor(2, initializer=init_encoder, initargs=(str(codes),)) as pool:
        out = [line for chunk in ordered_pool_map(pool, encode_lines, chunks, 3) for line in chunk]
    assert out == expected


def _fail_on_three(x):
    if x == 3:
        raise RuntimeError("worker failed on 3")
    return x * 2


def test_worker_errors_surface():
    with ProcessPoolExecutor(2) as pool:
        with pytest.raises(RuntimeError, match="worker failed on 3"):
            list(ordered_pool_map(pool, _fail_on_three, range(10), 2))
    assert list(ordered_pool_map(None, _fail_on_three, [1, 2], 2)) == [2, 4]


# ---- tokenize_corpus.py --------------------------------------------------------------------------------
def write_raw(folder):
    folder.mkdir()
    (folder / "a.txt").write_text("I don't know <unk>.\n\nThe cat sat.\n" + "word " * 200 + "\n",
                                  encoding="utf-8")
    (folder / "b.txt").write_text("Hello, World UNK!\n", encoding="utf-8")
    (folder / "ignored.md").write_text("not a corpus\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("pool_size", ["1", "2"])
def test_tokenize_corpus_end_to_end(tmp_path, pool_size):
    raw = write_raw(tmp_path / "raw")
    out = tmp_path / "tok"
    stats = tokenize_corpus.main(["--corpus_folder", str(raw), "--output_folder", str(out),
                                  "--pool_size", pool_size])
    assert stats == {"files": 2, "lines_read": 5, "lines_written": 3,
                     "dropped": {"empty": 1, "too_long": 1}}
    assert sorted(p.name for p in out.iterdir()) == ["a_tokenized.txt", "b_tokenized.txt", "text_options.json"]
    assert (out / "a_tokenized.txt").read_text(encoding="utf-8") == "I do n't know <unk> .\nThe cat sat .\n"
    assert (out / "b_tokenized.txt").read_text(encoding="utf-8") == "Hello , World UNK !\n"
    assert text_options.lookup(out / "b_tokenized.txt") == {"tokenizer": "nltk", "lowercase": False,
                                                            "hash_digits": False}


def test_tokenize_corpus_lowercase_single_file(tmp_path):
    raw = write_raw(tmp_path / "raw")
    out = tmp_path / "tok"
    stats = tokenize_corpus.main(["--corpus_folder", str(raw / "b.txt"), "--output_folder", str(out),
                                  "--lowercase", "--max_tokens", "4"])
    assert stats["lines_written"] == 0 and stats["dropped"]["too_long"] == 1
    tokenize_corpus.main(["--corpus_folder", str(raw / "b.txt"), "--output_folder", str(out), "--lowercase"])
    assert (out / "b_tokenized.txt").read_text(encoding="utf-8") == "hello , world UNK !\n"


def test_tokenize_corpus_hash_digits_gigaword_convention(tmp_path):
    write_lines(tmp_path / "raw" / "n.txt", ["Shares rose 3.5% to 1,200 in 2009.", "No digits, UNK here."])
    out = tmp_path / "tok"
    tokenize_corpus.main(["--corpus_folder", str(tmp_path / "raw"), "--output_folder", str(out),
                          "--lowercase", "--hash_digits"])
    assert (out / "n_tokenized.txt").read_text(encoding="utf-8").splitlines() == [
        "shares rose #.# % to #,### in #### .", "no digits , UNK here ."]


def test_tokenize_corpus_bad_input(tmp_path, capsys):
    argv = ["--corpus_folder", str(tmp_path / "missing"), "--output_folder", str(tmp_path / "o")]
    assert run_cli(tokenize_corpus.main, argv) == 2
    assert "missing" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(tokenize_corpus.main, ["--corpus_folder", str(empty), "--output_folder", str(tmp_path)]) == 2
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "bad.txt").write_bytes(b"fine line\n" * 2500 + b"caf\xe9\n")
    argv = ["--corpus_folder", str(raw), "--output_folder", str(tmp_path / "o"), "--pool_size", "2"]
    assert run_cli(tokenize_corpus.main, argv) == 2
    assert "bad.txt:2501" in capsys.readouterr().err
    assert not (tmp_path / "o" / "bad_tokenized.txt").exists()
    assert not list((tmp_path / "o").glob(".*"))


# ---- apply_bpe_encoding.py ------------------------------------------------------------------------------
def test_apply_bpe_encoding_end_to_end(corpus, tmp_path):
    folder, lines, codes = corpus
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.txt").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    (src / "valid.txt").write_text("\n".join(lines[200:]) + "\n", encoding="utf-8")
    out, vocab_path = tmp_path / "bpe", tmp_path / "vocab.txt"
    stats = apply_bpe_encoding.main(["--codes", str(codes), "--src_folder", str(src), "--output_folder",
                                     str(out), "--vocab_path", str(vocab_path), "--processes", "2"])
    expected = oracle(codes, lines, ["<unk>", "UNK"])
    assert (out / "train_bpe.txt").read_text(encoding="utf-8").splitlines() == expected[:200]
    assert (out / "valid_bpe.txt").read_text(encoding="utf-8").splitlines() == expected[200:]
    tokens = " ".join(expected).split()
    assert stats["lines"] == len(lines) and stats["tokens"] == len(tokens)
    vocab = Dictionary.load_from_persisted_dict(vocab_path)
    assert stats["vocab_size"] == len(vocab) == NUM_SPECIALS + len(set(tokens) - {"<unk>", "UNK"})
    assert vocab.frequency("<unk>") == tokens.count("<unk>") + tokens.count("UNK")
    assert all(vocab.frequency(t) == tokens.count(t) for t in set(tokens[:80]) - {"<unk>", "UNK"})
    for line in expected[:20]:
        assert vocab.decode(vocab.encode_line(line)) == vocab.decode(vocab.encode_line(line), False).replace(
            "@@ ", "")

    # shrink, prefix filter, one process
    small = tmp_path / "small.txt"
    stats = apply_bpe_encoding.main(["--codes", str(codes), "--src_folder", str(src), "--output_folder",
                                     str(tmp_path / "bpe2"), "--vocab_path", str(small), "--threshold", "3",
                                     "--prefix", "train", "--processes", "1"])
    assert sorted(p.name for p in (tmp_path / "bpe2").iterdir()) == ["train_bpe.txt"]
    shrunk = Dictionary.load_from_persisted_dict(small)
    assert all(shrunk.frequency(s) > 3 for s in shrunk.symbols[NUM_SPECIALS:])
    freqs = shrunk.frequencies[NUM_SPECIALS:]
    assert freqs == sorted(freqs, reverse=True)

    # existing vocabulary: apply only, no vocabulary written
    stats = apply_bpe_encoding.main(["--codes", str(codes), "--src_folder", str(src / "valid.txt"),
                                     "--output_folder", str(tmp_path / "bpe3"), "--existed_vocab", str(small)])
    assert "vocab_size" not in stats and stats["oov_tokens"] > 0
    assert (tmp_path / "bpe3" / "valid_bpe.txt").exists()


def test_apply_bpe_encoding_bad_input(corpus, tmp_path, capsys):
    _, _, codes = corpus
    base = ["--codes", str(codes), "--output_folder", str(tmp_path / "o"), "--vocab_path", str(tmp_path / "v")]
    assert run_cli(apply_bpe_encoding.main, base + ["--src_folder", str(tmp_path / "missing")]) == 2
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.txt").write_bytes(b"the cat\n" * 3000 + b"\xff\xfe\n")
    assert run_cli(apply_bpe_encoding.main, base + ["--src_folder", str(src), "--processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "x.txt:3001" in err and err.startswith("error:")
    assert not (tmp_path / "o" / "x_bpe.txt").exists() and not (tmp_path / "v").exists()
    bad_codes = tmp_path / "codes.bad"
    bad_codes.write_text("#version: 0.2\nt h\nt h e\n", encoding="utf-8")
    (src / "x.txt").write_text("the cat\n", encoding="utf-8")
    argv = ["--codes", str(bad_codes), "--src_folder", str(src), "--output_folder", str(tmp_path / "o"),
            "--vocab_path", str(tmp_path / "v")]
    assert run_cli(apply_bpe_encoding.main, argv) == 2
    assert "codes.bad:3" in capsys.readouterr().err
    assert run_cli(apply_bpe_encoding.main, ["--codes", str(codes), "--src_folder", str(src),
                                             "--output_folder", str(tmp_path / "o")]) == 2


def test_scripts_run_as_commands(corpus, tmp_path):
    folder, _, codes = corpus
    result = subprocess.run([sys.executable, str(ROOT / "apply_bpe_encoding.py"), "--codes", str(codes),
                             "--src_folder", str(folder / "train.txt"), "--output_folder", str(tmp_path),
                             "--vocab_path", str(tmp_path / "vocab.txt")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "train_bpe.txt").exists() and (tmp_path / "vocab.txt").exists()


# ---- scripts/learn_subword.sh ------------------------------------------------------------------------
def test_learn_subword_script(corpus, tmp_path):
    folder, _, _ = corpus
    codes = tmp_path / "out" / "all.bpe.codes"
    script = str(ROOT / "scripts" / "learn_subword.sh")
    result = subprocess.run(["bash", script, "-i", str(folder), "-o", str(codes), "-s", "50"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = codes.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#version: 0.2" and len(lines) == 51
    # same merges as the Python wrapper on the same text
    learn_bpe([folder / "train.txt"], tmp_path / "py.codes", 50)
    assert (tmp_path / "py.codes").read_text(encoding="utf-8").splitlines() == lines
    bad = subprocess.run(["bash", script, "-x"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "Usage" in bad.stderr
    helped = subprocess.run(["bash", script, "-h"], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and "Usage" in helped.stdout



TRICKY_LINES = [
    '"Hello," she said.', "''Quoted'' start", "'Tis the season, 'twas not.", "I cannot go; gonna stay!",
    "He said: wanna?", "(AP) -- Markets fell 3.5% on Monday.", "U.S. officials met in Washington D.C.",
    "« Russians saved the mentality. »", "end with quote .\"", "It's John's dog's toy, isn't it?",
    "Tabs\tand\u00a0no-break spaces.", "Wait... what?!", "email me@example.com or call #5 & $3",
    "a", ".", "'", '"', "Mr. Smith's", "She's done. ''", "lemme gimme gotta d'ye more'n",
    "— em dash – en dash", "Price: 3,000,000 dollars: cheap,", "The <unk> UNK <unk>.", "x ) .",
]


def test_memoized_tokenizer_equals_nltk_on_tricky_lines():
    from nltk.tokenize import NLTKWordTokenizer

    from src.text.tokenizer import word_tokenize_many

    reference = NLTKWordTokenizer()
    lines = TRICKY_LINES + [line.upper() for line in TRICKY_LINES] + [f"{a} {b}" for a in TRICKY_LINES[:8]
                                                                     for b in TRICKY_LINES[8:16]]
    many = word_tokenize_many(lines)
    for line, got in zip(lines, many, strict=True):
        if "<unk>" in line:
            continue  # <unk> is kept whole on purpose (nltk would split it)
        expected = [piece for token in reference.tokenize(line) for piece in token.split()]
        assert got == expected, line
        assert word_tokenize(line) == expected, line
    assert word_tokenize("The <unk> UNK <unk>.") == ["The", "<unk>", "UNK", "<unk>", "."]


def test_keep_lines_keeps_alignment(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.txt").write_text("Hello there!\n\n" + "word " * 200 + "\nBye.\n")
    assert run_cli(tokenize_corpus.main, ["--corpus_folder", str(tmp_path / "raw"), "--output_folder",
                                          str(tmp_path / "out"), "--keep_lines", "--pool_size", "1"]) == 0
    lines = (tmp_path / "out" / "a_tokenized.txt").read_text().split("\n")
    assert lines[0] == "Hello there !" and lines[1] == "" and len(lines[2].split()) == 200 and lines[3] == "Bye ."
