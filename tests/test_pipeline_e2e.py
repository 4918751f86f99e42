"""Raw text -> tokenize -> BPE -> vocabulary -> MindRecord -> loader -> batch, and back to the text."""

import numpy as np
import pytest

import apply_bpe_encoding
import news_crawl
import tokenize_corpus
from src.dataset import schema
from src.dataset.load_dataset import load_dataset
from src.text.byte_pair_encoding import learn_bpe
from src.text.dictionary import Dictionary
from src.text.tokenizer import word_tokenize
from src.utils.cli import run_cli
from tests.helpers import batches, random_sentences, write_lines


def raw_corpus(n):
    lines = []
    for i, s in enumerate(random_sentences(n, seed=11, min_words=4, max_words=14)):
        words = s.split()
        words[0] = words[0].capitalize()
        lines.append(" ".join(words) + (", doesn't it?" if i % 3 == 0 else "."))
    return lines


def test_raw_text_round_trips_through_the_whole_pipeline(tmp_path):
    raw = raw_corpus(48)
    write_lines(tmp_path / "raw" / "news.txt", raw)
    assert run_cli(tokenize_corpus.main, ["--corpus_folder", str(tmp_path / "raw"), "--output_folder",
                                          str(tmp_path / "tok"), "--pool_size", "2"]) == 0
    tokenized = tmp_path / "tok" / "news_tokenized.txt"
    learn_bpe([tokenized], tmp_path / "codes", 40)
    assert run_cli(apply_bpe_encoding.main, ["--codes", str(tmp_path / "codes"), "--src_folder",
                                             str(tmp_path / "tok"), "--output_folder", str(tmp_path / "bpe"),
                                             "--vocab_path", str(tmp_path / "vocab.txt"),
                                             "--processes", "2"]) == 0
    bpe_lines = (tmp_path / "bpe" / "news_tokenized_bpe.txt").read_text().splitlines()
    assert any("@@" in line for line in bpe_lines)  # BPE really split words
    assert run_cli(news_crawl.main, ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab",
                                     str(tmp_path / "vocab.txt"), "--output_folder", str(tmp_path / "rec"),
                                     "--min_len", "1", "--processes", "2"]) == 0
    vocab = Dictionary.load_from_persisted_dict(tmp_path / "vocab.txt")
    data = load_dataset(tmp_path / "rec" / "news_crawl_len_64.mindrecord", batch_size=5,
                        vocab_size=len(vocab), shuffle=False)
    restored_text = []
    for batch in batches(data):
        for src, pos, tgt in zip(batch[schema.SRC_IDS], batch[schema.DEC_POSITIONS], batch[schema.TGT_IDS],
                                 strict=True):
            n = int((tgt != 0).sum())
            full = src[: int((src != 0).sum())].copy()
            full[pos[:n]] = tgt[:n]
            assert full[-1] == vocab.eos
            restored_text.append(vocab.decode(full))
    assert restored_text == [" ".join(word_tokenize(line)) for line in raw]
    assert np.mean([t.endswith("?") for t in restored_text]) > 0.3


def test_gigaword_weight_repeats_the_training_articles_in_the_pretraining_text(tmp_path):
    """scripts/pipeline.py --gigaword_weight N: the pre-training text holds every Gigaword training article N
    times, the other training text once, and never the titles (fine-tuning targets) or Cornell contexts."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import pipeline

    bpe, mono = tmp_path / "bpe", tmp_path / "mono"
    articles, titles = ["a b c d e", "f g h i j"], ["title one", "title two"]
    write_lines(bpe / "giga_train_src_bpe.txt", articles)
    write_lines(bpe / "giga_train_ref_bpe.txt", titles)
    write_lines(bpe / "cornell_train_src_tokenized_bpe.txt", ["a context"])
    write_lines(bpe / "cornell_train_tgt_tokenized_bpe.txt", ["a response"])
    write_lines(bpe / "news_tokenized_bpe.txt", ["news one", "news two"])
    for weight in (3, 1):  # the second call replaces the first one's files
        files = pipeline.pretraining_text(bpe, mono, weight)
        lines = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
        assert [lines.count(a) for a in articles] == [weight, weight]
        assert lines.count("a response") == 1 and lines.count("news one") == 1
        assert not set(titles + ["a context"]) & set(lines)
        assert (files[-1].name == pipeline.GIGAWORD_COPIES) == (weight > 1)  # read last: after the originals


def test_dropout_options_reach_their_phase_only(tmp_path):
    """--pretrain_dropout goes to the pre-training's train.py command, --finetune_dropout to the
    fine-tunings' (MASS and scratch), and neither to the other phase; without them no dropout override."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "scripts"))
    import pipeline

    def commands(*extra):
        args = pipeline.parse_args(["--work", str(tmp_path / "w"), "--config", str(root / "config/tiny.json"),
                                    "--news", "n.txt", "--gigaword", "g", "--cornell", "c", *extra])
        pipe = pipeline.Pipeline(args)
        pre = pipeline.pretrain_command(pipe, tmp_path, "news")
        fine = [pipeline.finetune_command(pipe, "gigaword", system, 10, "t.mindrecord", "v.mindrecord", "p.ckpt")
                for system in ("mass", "scratch")]
        return pre, fine

    def dropout(command):
        return [a for a in map(str, command) if "dropout_prob" in a]

    pre, fine = commands("--pretrain_dropout", "0", "--finetune_dropout", "0.3")
    assert dropout(pre) == ["--model_config.hidden_dropout_prob=0.0", "--model_config.attention_dropout_prob=0.0"]
    for command in fine:
        assert dropout(command) == ["--model_config.hidden_dropout_prob=0.3",
                                    "--model_config.attention_dropout_prob=0.3"]
    pre, fine = commands()
    assert dropout(pre) == [] and all(dropout(c) == [] for c in fine)
    from src.utils.errors import UserError

    for bad in ("1", "-0.1", "nan"):  # refused before any stage runs, not by the first train.py
        for option in ("--pretrain_dropout", "--finetune_dropout"):
            with pytest.raises(UserError, match=f"{option} must lie in"):
                commands(option, bad)
