"""Dataset builders (news_crawl.py, gigaword.py, cornell_dialog.py) and the MindRecord loader."""

import json

import numpy as np
import pytest

import cornell_dialog
import gigaword
import news_crawl
from config.config import MaskConfig
from src.dataset import schema
from src.dataset.batching import pad_batch
from src.dataset.cornell import dialog_pairs, split_of
from src.dataset.load_dataset import load_dataset, resolve_datasets
from src.dataset.writer import read_manifest
from src.text.dictionary import BOS_ID, MASK_ID
from src.utils.cli import run_cli
from src.utils.errors import UserError
from tests.helpers import batches, random_sentences, vocab_for, write_cornell, write_lines


@pytest.fixture
def mono(tmp_path):
    lines = random_sentences(60, seed=1)
    lines[5] = "   "                              # empty: dropped and counted
    lines[7] = " ".join(["cat"] * 40)            # too long for --max_len 20
    lines[9] = "dog"                             # too short for --min_len 3
    src = write_lines(tmp_path / "bpe" / "news.txt", lines)
    vocab = vocab_for(lines, tmp_path / "vocab.txt")
    return tmp_path, src, vocab, lines


def build_mono(tmp_path, *extra):
    argv = ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab", str(tmp_path / "vocab.txt"),
            "--output_folder", str(tmp_path / "out"), "--max_len", "20", "--min_len", "3",
            "--processes", "1", *extra]
    assert run_cli(news_crawl.main, argv) == 0
    return tmp_path / "out" / "news_crawl_len_20.mindrecord"


def test_news_crawl_manifest_counts_drops(mono):
    tmp_path, _, _, lines = mono
    path = build_mono(tmp_path)
    manifest = read_manifest(path)
    stats = manifest["stats"]
    assert stats["lines"] == 60
    assert stats["dropped"] == {"empty": 1, "too_long": 1, "too_short": 1}
    assert manifest["examples"] == stats["written"] == 57
    assert manifest["kind"] == schema.KIND_MONO
    assert manifest["options"]["max_len"] == 20


def test_pretraining_batches_decode_back_to_the_text(mono):
    tmp_path, _, vocab, lines = mono
    path = build_mono(tmp_path)
    kept = [ln for i, ln in enumerate(lines) if i not in (5, 7, 9)]
    data = load_dataset(path, batch_size=8, vocab_size=len(vocab), shuffle=False, pad_multiple=4)
    seen = []
    for batch in batches(data):
        src, dec_in, pos, tgt = (batch[c] for c in schema.BATCH_COLUMNS)
        assert src.shape[1] % 4 == 0 and tgt.shape[1] % 4 == 0
        assert dec_in.shape == pos.shape == tgt.shape
        for row in range(len(src)):
            n_tgt = int((tgt[row] != 0).sum())
            fragment = pos[row, :n_tgt]
            restored = src[row].copy()
            restored[fragment] = tgt[row, :n_tgt]           # put the fragment back
            assert (src[row][np.setdiff1d(np.arange((src[row] != 0).sum()), fragment)] != MASK_ID).all()
            first = dec_in[row, 0]
            assert first == (BOS_ID if fragment[0] == 0 else restored[fragment[0] - 1])
            seen.append(vocab.decode(restored))
    assert seen == kept


def test_masks_change_with_epoch_and_repeat_with_seed(mono):
    tmp_path, _, vocab, _ = mono
    path = build_mono(tmp_path)

    def first_batch(epoch, seed):
        data = load_dataset(path, batch_size=57, vocab_size=len(vocab), shuffle=False, epoch=epoch, seed=seed)
        return batches(data)[0][schema.DEC_POSITIONS]

    np.testing.assert_array_equal(first_batch(0, 1), first_batch(0, 1))
    assert not np.array_equal(first_batch(0, 1), first_batch(1, 1))


def test_shuffle_shards_skip_and_buckets(mono):
    tmp_path, _, vocab, _ = mono
    path = build_mono(tmp_path)

    def targets(**kw):
        out = []
        for b in batches(load_dataset(path, batch_size=5, vocab_size=len(vocab), **kw)):
            out += [tuple(r[r != 0]) for r in b[schema.TGT_IDS]]
        return out

    full = targets(shuffle=False, seed=3)
    assert targets(shuffle=True, seed=3) == targets(shuffle=True, seed=3)
    assert targets(shuffle=True, seed=3) != full and sorted(targets(shuffle=True, seed=3)) == sorted(full)
    shard0 = targets(shuffle=False, seed=3, num_shards=2, shard_id=0)
    shard1 = targets(shuffle=False, seed=3, num_shards=2, shard_id=1)
    assert set(shard0) | set(shard1) == set(full)               # every example reaches some rank
    assert len(shard0) == len(shard1) == -(-len(full) // 2)     # equal shares (one repeat when odd)
    assert len(set(shard0) & set(shard1)) <= len(shard0) + len(shard1) - len(full)
    assert targets(shuffle=False, seed=3, skip_batches=2) == full[10:]
    bucketed = batches(load_dataset(path, batch_size=4, vocab_size=len(vocab), shuffle=False,
                                    bucket_boundaries=[8, 12], pad_multiple=1))
    assert sum(len(b[schema.SRC_IDS]) for b in bucketed) == 57
    for b in bucketed:
        lengths = (b[schema.SRC_IDS] != 0).sum(1)
        assert len({min(2, int((length >= 8) + (length >= 12))) for length in lengths}) == 1


@pytest.mark.parametrize("boundaries", [[8, 12], None])
def test_token_batches_hold_at_most_max_tokens(mono, boundaries):
    """max_tokens: each bucket's batches hold max_tokens // (its widest padded source) examples, so no
    batch's source tensor exceeds max_tokens; every example is used once."""
    tmp_path, _, vocab, _ = mono
    path = build_mono(tmp_path)
    got = batches(load_dataset(path, batch_size=4, vocab_size=len(vocab), shuffle=False, bucket_boundaries=boundaries,
                               pad_multiple=4, max_tokens=48, max_src_len=20))
    assert sum(len(b[schema.SRC_IDS]) for b in got) == 57
    assert all(b[schema.SRC_IDS].size <= 48 for b in got)
    sizes = {b[schema.SRC_IDS].shape[1]: len(b[schema.SRC_IDS]) for b in got}
    assert max(sizes.values()) > 4 and len(set(sizes.values())) > 1  # short sources: more rows per batch


def test_round_robin_gives_every_rank_the_same_number_of_batches(mono):
    """Bucketed batches under data parallel: each rank takes its turn of every complete group of the one
    stream all ranks build, so the counts match and no batch goes to two ranks."""
    tmp_path, _, vocab, _ = mono
    path = build_mono(tmp_path)
    options = dict(batch_size=4, vocab_size=len(vocab), shuffle=True, seed=3, bucket_boundaries=[8, 12],
                   pad_multiple=1)

    def rows(b):
        return [tuple(r[r != 0]) for r in b[schema.TGT_IDS]]

    stream = [rows(b) for b in batches(load_dataset(path, **options))]
    for ranks in (2, 3):
        shares = [[rows(b) for b in batches(load_dataset(path, round_robin=(r, ranks), **options))]
                  for r in range(ranks)]
        assert {len(share) for share in shares} == {len(stream) // ranks}
        for r, share in enumerate(shares):
            assert share == stream[r: ranks * (len(stream) // ranks): ranks]
        resumed = batches(load_dataset(path, round_robin=(1, ranks), skip_batches=2, **options))
        assert [rows(b) for b in resumed] == shares[1][2:]


def test_static_mask_modelzoo_layout(mono):
    tmp_path, _, vocab, _ = mono
    build_mono(tmp_path, "--static_mask")
    path = tmp_path / "out" / "news_crawl_len_20_static.mindrecord"
    assert read_manifest(path)["kind"] == schema.KIND_MODELZOO
    b = batches(load_dataset(path, batch_size=57, shuffle=False, pad_multiple=1))[0]
    assert b[schema.SRC_IDS].shape == (57, 20)
    src, pos, tgt = b[schema.SRC_IDS], b[schema.DEC_POSITIONS], b[schema.TGT_IDS]
    for row in range(57):
        labels = np.nonzero(tgt[row])[0]
        assert (src[row][labels[1:]] == MASK_ID).all()  # loose target covers the fragment plus x[u-1]
        np.testing.assert_array_equal(pos[row], np.arange(20))


def test_valid_split(mono):
    tmp_path, _, _, _ = mono
    build_mono(tmp_path, "--valid_every", "10")
    train = read_manifest(tmp_path / "out" / "news_crawl_len_20.mindrecord")
    valid = read_manifest(tmp_path / "out" / "news_crawl_len_20_valid.mindrecord")
    assert (train["examples"], valid["examples"]) == (52, 5)
    assert len(resolve_datasets(tmp_path / "out")) == 2


def test_wrong_vocabulary_fails_and_leaves_nothing(tmp_path, capsys):
    write_lines(tmp_path / "bpe" / "news.txt", random_sentences(400, seed=2))
    vocab_for(["zebra"], tmp_path / "vocab.txt")
    with pytest.raises(AssertionError):
        build_mono(tmp_path)
    assert "vocabulary does not match" in capsys.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []  # no half-written dataset, no temporary folder


def test_undecodable_bytes_name_file_and_line(tmp_path, capsys):
    (tmp_path / "bpe").mkdir()
    (tmp_path / "bpe" / "news.txt").write_bytes(b"the cat\nthe \xff dog\n")
    vocab_for(["the cat dog"], tmp_path / "vocab.txt")
    assert run_cli(news_crawl.main, ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab",
                                     str(tmp_path / "vocab.txt"), "--output_folder", str(tmp_path / "out"),
                                     "--processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "news.txt:2" in err and "Traceback" not in err
    assert not any((tmp_path / "out").glob("*.mindrecord*"))


def test_missing_dataset_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no manifest"):
        load_dataset(tmp_path / "nothing.mindrecord", batch_size=2)


# ------------------------------------------------------------------ gigaword

@pytest.fixture
def giga(tmp_path):
    arts = random_sentences(30, seed=3, min_words=6, max_words=14)
    titles = random_sentences(30, seed=4, min_words=2, max_words=5)
    arts[0] = "the UNK cat <unk> sat"
    arts[1] = " ".join(["tree"] * 30)          # longer than --max_len 20
    titles[2] = ""                             # empty title
    for split in ("train", "test"):
        write_lines(tmp_path / f"{split}.article.txt", arts)
        write_lines(tmp_path / f"{split}.title.txt", titles)
    vocab_for(arts + titles, tmp_path / "vocab.txt")
    return tmp_path, arts, titles


def run_gigaword(tmp_path, *extra):
    return run_cli(gigaword.main, [
        "--train_src", str(tmp_path / "train.article.txt"), "--train_ref", str(tmp_path / "train.title.txt"),
        "--test_src", str(tmp_path / "test.article.txt"), "--test_ref", str(tmp_path / "test.title.txt"),
        "--existed_vocab", str(tmp_path / "vocab.txt"), "--output_folder", str(tmp_path / "out"),
        "--max_len", "20", *extra])


def test_gigaword_train_filters_test_keeps_everything(giga):
    tmp_path, arts, titles = giga
    assert run_gigaword(tmp_path) == 0
    train = read_manifest(tmp_path / "out" / "gigaword_train.mindrecord")
    test = read_manifest(tmp_path / "out" / "gigaword_test.mindrecord")
    assert train["stats"]["dropped"] == {"too_long": 1, "empty": 1}
    assert train["examples"] == 28
    assert test["examples"] == 30 and test["stats"]["kept_longer_than_max_len"] == 1
    from src.text.dictionary import Dictionary
    vocab = Dictionary.load_from_persisted_dict(tmp_path / "vocab.txt")
    data = load_dataset(tmp_path / "out" / "gigaword_test.mindrecord", batch_size=7, shuffle=False)
    got = [b for b in batches(data)]
    assert sum(len(b[schema.SRC_IDS]) for b in got) == 30      # last partial batch included
    sources = [vocab.decode(r) for b in got for r in b[schema.SRC_IDS]]
    targets = [vocab.decode(r) for b in got for r in b[schema.TGT_IDS]]
    assert sources[0] == "the <unk> cat <unk> sat"              # UNK and <unk> both map to <unk>
    assert sources[1] == arts[1] and targets[3:] == titles[3:]  # nothing truncated
    first = got[0]
    np.testing.assert_array_equal(first[schema.DEC_IN_IDS][:, 0], BOS_ID)
    shifted = first[schema.TGT_IDS][:, :-1]
    np.testing.assert_array_equal(first[schema.DEC_IN_IDS][:, 1:], np.where(shifted == 2, 0, shifted))


def test_gigaword_noise_only_on_train(giga):
    tmp_path, _, _ = giga
    assert run_gigaword(tmp_path, "--noise_prob", "0.3") == 0
    def masks(split):
        data = load_dataset(tmp_path / "out" / f"gigaword_{split}.mindrecord", batch_size=64, shuffle=False)
        return (batches(data)[0][schema.SRC_IDS] == MASK_ID).mean()
    assert masks("train") > 0.1 and masks("test") == 0


def test_gigaword_line_count_mismatch(giga, capsys):
    tmp_path, arts, titles = giga
    write_lines(tmp_path / "train.title.txt", titles[:-1])
    assert run_gigaword(tmp_path) == 2
    err = capsys.readouterr().err
    assert "train.article.txt has 30 lines" in err and "train.title.txt has 29" in err
    assert not (tmp_path / "out" / "gigaword_train.mindrecord").exists()


# ------------------------------------------------------------------ cornell

def test_cornell_pairs_and_split(tmp_path):
    convs = [[f"hello number {i}", f"hi there {i}", f"bye caf\u00e9 {i}"] for i in range(200)]
    write_cornell(tmp_path / "raw", convs)
    pairs, dropped = dialog_pairs(tmp_path / "raw" / "movie_lines.txt",
                                  tmp_path / "raw" / "movie_conversations.txt", 10, 10)
    total = sum(len(p) for p in pairs.values())
    assert total == 400 and not dropped
    assert 15 <= len(pairs["test"]) <= 65 and 15 <= len(pairs["valid"]) <= 65
    assert ("hello number 0", "hi there 0") in [p for s in pairs.values() for p in s]
    assert ("hi there 0", "bye caf\u00e9 0") in [p for s in pairs.values() for p in s]
    assert split_of("L1", 10, 10) == split_of("L1", 10, 10)
    for split, items in pairs.items():  # a conversation never straddles splits
        for ctx, _ in items:
            i = ctx.split()[-1]
            assert all(split_of_pair == split for split_of_pair in
                       [s for s, its in pairs.items() for c, _ in its if c.split()[-1] == i])


def test_cornell_malformed_line(tmp_path, capsys):
    write_cornell(tmp_path / "raw", [["a b", "c d"]], malformed="L99 +++$+++ only two")
    assert run_cli(cornell_dialog.main, ["--raw_folder", str(tmp_path / "raw"),
                                         "--output_folder", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "movie_lines.txt:3" in err and "expected 5 fields" in err


def test_cornell_prefix_mode_builds_mindrecord(tmp_path):
    for split in ("train", "test"):
        write_lines(tmp_path / "bpe" / f"{split}_src.txt", random_sentences(12, seed=5))
        write_lines(tmp_path / "bpe" / f"{split}_tgt.txt", random_sentences(12, seed=6))
    vocab_for(random_sentences(12, seed=5) + random_sentences(12, seed=6), tmp_path / "vocab.txt")
    assert run_cli(cornell_dialog.main, ["--src_folder", str(tmp_path / "bpe"), "--existed_vocab",
                                         str(tmp_path / "vocab.txt"), "--output_folder",
                                         str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out" / "cornell_train.mindrecord.manifest.json").read_text())
    assert manifest["examples"] == 12 and manifest["kind"] == schema.KIND_PAIR
    assert not (tmp_path / "out" / "cornell_valid.mindrecord.manifest.json").exists()


def test_pad_batch():
    out = pad_batch([[np.array([1, 2, 3]), np.array([4])]], multiple=4)
    assert out[0].tolist() == [[1, 2, 3, 0], [4, 0, 0, 0]]


def test_mask_settings_reach_the_masker(mono):
    tmp_path, _, vocab, _ = mono
    path = build_mono(tmp_path)
    data = load_dataset(path, batch_size=57, vocab_size=len(vocab), shuffle=False,
                        mask=MaskConfig(mask_type="bert"))
    b = batches(data)[0]
    assert ((b[schema.TGT_IDS] != 0).sum(1) == 1).all()


def test_cornell_raw_mode_tokenizes_bpe_encodes_and_builds(tmp_path):
    import apply_bpe_encoding
    import tokenize_corpus
    from src.text.byte_pair_encoding import learn_bpe
    from src.text.dictionary import Dictionary

    convs = [[f"Hello, number {i}!", f"Hi there, {i}.", f"Don't go {i}?"] for i in range(60)]
    write_cornell(tmp_path / "raw", convs)
    out = tmp_path / "out"
    assert run_cli(cornell_dialog.main, ["--raw_folder", str(tmp_path / "raw"), "--output_folder", str(out),
                                         "--valid_percent", "10", "--test_percent", "10"]) == 0
    # codes and a vocabulary covering every split, so that decoding gives the text back exactly
    assert run_cli(tokenize_corpus.main, ["--corpus_folder", str(out),
                                          "--output_folder", str(tmp_path / "tok"), "--pool_size", "1"]) == 0
    learn_bpe(sorted((tmp_path / "tok").glob("*.txt")), tmp_path / "codes", 30)
    assert run_cli(apply_bpe_encoding.main, ["--codes", str(tmp_path / "codes"), "--src_folder",
                                             str(tmp_path / "tok"), "--output_folder", str(tmp_path / "bpe"),
                                             "--vocab_path", str(tmp_path / "vocab.txt"), "--processes", "1"]) == 0
    assert run_cli(cornell_dialog.main, ["--raw_folder", str(tmp_path / "raw"), "--output_folder", str(out),
                                         "--valid_percent", "10", "--test_percent", "10", "--codes",
                                         str(tmp_path / "codes"), "--existed_vocab", str(tmp_path / "vocab.txt"),
                                         "--processes", "2"]) == 0
    vocab = Dictionary.load_from_persisted_dict(tmp_path / "vocab.txt")
    for split in ("train", "valid", "test"):
        refs = (out / f"cornell_{split}_tgt.txt").read_text().splitlines()
        data = load_dataset(out / f"cornell_{split}.mindrecord", batch_size=16, shuffle=False)
        got = [vocab.decode(r) for b in batches(data) for r in b[schema.TGT_IDS]]
        from src.text.tokenizer import word_tokenize
        assert got == [" ".join(word_tokenize(r)) for r in refs]
    # --lowercase / --hash_digits reach the tokenizer (the Gigaword convention, for a joint vocabulary)
    assert run_cli(cornell_dialog.main, ["--raw_folder", str(tmp_path / "raw"), "--output_folder", str(out),
                                         "--valid_percent", "10", "--test_percent", "10", "--codes",
                                         str(tmp_path / "codes"), "--existed_vocab", str(tmp_path / "vocab.txt"),
                                         "--processes", "1", "--lowercase", "--hash_digits"]) == 0
    lowered = (out / "cornell_train_src_tokenized.txt").read_text().splitlines()
    assert lowered and all(line == line.lower() and not any(c.isdigit() for c in line) for line in lowered)
    assert "hello , number # !" in lowered


def test_parallel_parts_give_the_same_dataset(mono):
    from src.dataset.builders import MonoOptions, build_monolingual

    tmp_path, src, vocab, _ = mono
    rows = {}
    for processes, part_lines in ((1, 1000), (2, 7)):
        out = tmp_path / f"p{processes}" / "news.mindrecord"
        opts = MonoOptions(min_len=3, max_len=20, valid_every=10, processes=processes, part_lines=part_lines)
        stats, n_valid = build_monolingual([src], vocab, tmp_path / "vocab.txt", out, out.with_name("v.mindrecord"),
                                           opts)
        manifest = read_manifest(out)
        assert len(manifest["files"]) == (1 if part_lines == 1000 else 9)  # 60 lines / 7 per part
        data = load_dataset(out, batch_size=100, shuffle=False, pad_multiple=1)
        batch = batches(data)[0]
        rows[processes] = (stats.as_dict(), n_valid, batch[schema.TGT_IDS].tolist(), batch[schema.SRC_IDS].tolist())
    assert rows[1] == rows[2]


def test_dynamic_source_noise_for_fine_tuning(giga):
    tmp_path, _, _ = giga
    assert run_gigaword(tmp_path) == 0
    path = tmp_path / "out" / "gigaword_train.mindrecord"

    def sources(**kw):
        return batches(load_dataset(path, batch_size=64, shuffle=False, pad_multiple=1, **kw))[0][schema.SRC_IDS]

    clean, e0, e0_again, e1 = sources(), sources(noise_prob=0.3), sources(noise_prob=0.3), sources(noise_prob=0.3,
                                                                                                   epoch=1)
    np.testing.assert_array_equal(e0, e0_again)
    assert not np.array_equal(e0, e1)                          # new noise every epoch
    changed = e0 != clean
    assert (e0[changed] == MASK_ID).all() and 0.2 < changed.sum() / (clean > 2).sum() < 0.4
    assert ((clean == 2) == (e0 == 2)).all()                   # </s> never masked
