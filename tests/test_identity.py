"""What ties data, model and evaluation together: one build for the splits of one command, one vocabulary
digest, and the training text's normalisation carried from tokenize_corpus.py to eval's raw input."""

import json
from pathlib import Path

import pytest

import apply_bpe_encoding
import gigaword
import news_crawl
import tokenize_corpus
from config.config import MassConfig
from src.dataset.identity import check_same_build, vocabulary_of
from src.dataset.writer import read_manifest
from src.evaluation.api import MassGenerator, training_normalization
from src.text import text_options
from src.text.dictionary import Dictionary
from src.training.run import load_config
from src.transformer.transformer import MassTransformer
from src.utils.cli import run_cli
from src.utils.errors import UserError
from tests.helpers import random_sentences, vocab_for, write_lines

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("identity")
    lines = random_sentences(40, seed=21, min_words=4, max_words=9)
    write_lines(d / "art.txt", lines)
    write_lines(d / "tit.txt", [" ".join(s.split()[:3]) for s in lines])
    vocab_for(lines, d / "vocab.txt")
    return d


def build(d, out, *extra):
    return gigaword.main(["--train_src", str(d / "art.txt"), "--train_ref", str(d / "tit.txt"), "--valid_src",
                          str(d / "art.txt"), "--valid_ref", str(d / "tit.txt"), "--existed_vocab",
                          str(d / "vocab.txt"), "--output_folder", str(out), *extra])


def test_the_splits_of_one_build_share_its_id_and_vocabulary(pairs):
    assert build(pairs, pairs / "a") == 0
    train, valid = (read_manifest(pairs / "a" / f"gigaword_{s}.mindrecord") for s in ("train", "valid"))
    assert train["build"] == valid["build"] and train["build"]["splits"] == ["train", "valid"]
    digest = Dictionary.load_from_persisted_dict(pairs / "vocab.txt").digest()
    assert train["vocab_sha256"] == valid["vocab_sha256"] == digest
    assert vocabulary_of([pairs / "a" / "gigaword_train.mindrecord"]) == (train["vocab_size"], digest)


def test_a_failed_rebuild_leaves_the_old_build_whole(pairs):
    out = pairs / "b"
    assert build(pairs, out) == 0
    before = {s: read_manifest(out / f"gigaword_{s}.mindrecord") for s in ("train", "valid")}
    write_lines(pairs / "short.txt", ["a b"])
    bad = run_cli(gigaword.main, ["--train_src", str(pairs / "art.txt"), "--train_ref", str(pairs / "tit.txt"),
                                  "--valid_src", str(pairs / "art.txt"), "--valid_ref", str(pairs / "short.txt"),
                                  "--existed_vocab", str(pairs / "vocab.txt"), "--output_folder", str(out)])
    assert bad == 2
    after = {s: read_manifest(out / f"gigaword_{s}.mindrecord") for s in ("train", "valid")}
    assert after == before  # the new train split was encoded, but nothing was published
    check_same_build([out / "gigaword_train.mindrecord"], [out / "gigaword_valid.mindrecord"])


def test_a_validation_set_of_another_build_is_refused_only_when_the_build_had_its_own(pairs):
    assert build(pairs, pairs / "c1") == 0 and build(pairs, pairs / "c2") == 0
    with pytest.raises(UserError, match="from another build"):
        check_same_build([pairs / "c1" / "gigaword_train.mindrecord"], [pairs / "c2" / "gigaword_valid.mindrecord"])
    # a training set built alone (no validation split of its own) may take a validation set built separately
    assert gigaword.main(["--train_src", str(pairs / "art.txt"), "--train_ref", str(pairs / "tit.txt"),
                          "--existed_vocab", str(pairs / "vocab.txt"), "--output_folder", str(pairs / "c3")]) == 0
    check_same_build([pairs / "c3" / "gigaword_train.mindrecord"], [pairs / "c2" / "gigaword_valid.mindrecord"])


def test_digest_depends_on_symbols_in_order_not_on_counts():
    a = Dictionary.from_counts({"x": 3, "y": 1})
    assert a.digest() == Dictionary.from_counts({"x": 9, "y": 2}).digest()
    assert a.digest() != Dictionary.from_counts({"y": 3, "x": 1}).digest()


# ------------------------------------------------------------------ normalisation, data to model to eval

def test_training_normalisation_reaches_the_config_and_raw_input(tmp_path):
    raw = write_lines(tmp_path / "raw" / "news.txt", [f"Rates Rose {i}.5 Percent In Week {i} ." for i in range(30)])
    assert tokenize_corpus.main(["--corpus_folder", str(raw.parent), "--output_folder", str(tmp_path / "tok"),
                                 "--lowercase", "--hash_digits", "--pool_size", "1"])["lines_written"] == 30
    tok = tmp_path / "tok" / "news_tokenized.txt"
    assert text_options.lookup(tok) == {"tokenizer": "nltk", "lowercase": True, "hash_digits": True}
    (tmp_path / "codes.txt").write_text("#version: 0.2\nr a\nra t\n", encoding="utf-8")
    apply_bpe_encoding.main(["--codes", str(tmp_path / "codes.txt"), "--src_folder", str(tmp_path / "tok"),
                             "--output_folder", str(tmp_path / "bpe"), "--vocab_path", str(tmp_path / "vocab.txt")])
    assert text_options.lookup(tmp_path / "bpe" / "news_tokenized_bpe.txt") == text_options.lookup(tok)
    assert news_crawl.main(["--src_folder", str(tmp_path / "bpe"), "--existed_vocab", str(tmp_path / "vocab.txt"),
                            "--output_folder", str(tmp_path / "data"), "--processes", "1", "--max_len", "32",
                            "--valid_every", "0"]) == 0
    dataset = tmp_path / "data" / "news_crawl_len_32.mindrecord"
    assert read_manifest(dataset)["text"] == text_options.lookup(tok)
    cfg = load_config(ROOT / "config/tiny.json", [f"--dataset_config.pre_train_dataset={dataset}"])
    data = cfg.dataset_config
    assert (data.tokenizer, data.lowercase, data.hash_digits) == ("nltk", True, True)
    assert cfg.model_config.vocab_sha256 == Dictionary.load_from_persisted_dict(tmp_path / "vocab.txt").digest()
    assert json.loads(cfg.to_json_text())["dataset_config"]["hash_digits"] is True  # in every checkpoint

    from src.text.byte_pair_encoding import BytePairEncoder

    vocab = Dictionary.load_from_persisted_dict(tmp_path / "vocab.txt")
    model = MassTransformer(cfg.override(["--model_config.hidden_size=16", "--model_config.intermediate_size=32"])
                            .model_config)
    gen = MassGenerator(model, vocab, cfg, BytePairEncoder(tmp_path / "codes.txt"))  # no flags given
    assert (gen.lowercase, gen.hash_digits) == (True, True)
    assert list(gen.encode("Rates Rose 7.5 Percent")) == list(gen.encode("rates rose 3.1 percent"))
    assert vocab.unk not in gen.encode("Rates Rose 7.5 Percent")
    plain = MassConfig.from_json(ROOT / "config/tiny.json")
    assert training_normalization(plain) == (False, False)
    assert training_normalization(plain, lowercase=True) == (True, False)


def test_datasets_normalised_differently_cannot_train_together(tmp_path):
    for name, flags in (("a", ["--lowercase"]), ("b", [])):
        write_lines(tmp_path / name / "raw" / "t.txt", [f"The Cat Sat {i} ." for i in range(12)])
        tokenize_corpus.main(["--corpus_folder", str(tmp_path / name / "raw"), "--output_folder",
                              str(tmp_path / "tok"), "--pool_size", "1", *flags])
        (tmp_path / "tok" / "t_tokenized.txt").rename(tmp_path / "tok" / f"{name}.txt")
        entry = text_options.lookup(tmp_path / "tok" / "t_tokenized.txt")
        text_options.record(tmp_path / "tok" / f"{name}.txt", entry)
    with pytest.raises(UserError, match="normalised differently"):
        text_options.common([tmp_path / "tok" / "a.txt", tmp_path / "tok" / "b.txt"], "the inputs")
