"""Test helpers: small generated corpora and vocabularies (no shared data needed)."""

from collections import Counter

import numpy as np

from src.text.dictionary import Dictionary

WORDS = ("the cat dog sat on mat a big red blue house runs fast slow tree river city man woman "
         "child eats drinks water bread sees hears sun moon").split()


def random_sentences(n, seed=0, min_words=3, max_words=12):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(min_words, max_words + 1)))
            for _ in range(n)]


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def vocab_for(lines, path):
    """A Dictionary of every token in ``lines``, persisted at ``path``."""
    vocab = Dictionary.from_counts(Counter(tok for line in lines for tok in line.split()))
    vocab.persistence(path)
    return vocab


def news_corpus(folder, n, seed, min_words=5, max_words=10, valid_every=None):
    """``n`` random sentences as ``folder/bpe/news.txt`` with their vocabulary ``folder/vocab.txt``; with
    ``valid_every`` (0: no validation split) also built by news_crawl.py (max_len 16) into ``folder``.
    Returns the sentences."""
    lines = random_sentences(n, seed=seed, min_words=min_words, max_words=max_words)
    write_lines(folder / "bpe" / "news.txt", lines)
    vocab_for(lines, folder / "vocab.txt")
    if valid_every is not None:
        import news_crawl

        assert news_crawl.main(["--src_folder", str(folder / "bpe"), "--existed_vocab", str(folder / "vocab.txt"),
                                "--output_folder", str(folder), "--processes", "1", "--max_len", "16",
                                "--valid_every", str(valid_every)]) == 0
    return lines


def batches(dataset):
    return list(dataset.create_dict_iterator(output_numpy=True, num_epochs=1))


def write_cornell(folder, conversations, malformed=None):
    """A raw Cornell corpus in ``folder``: ``movie_lines.txt`` (latin-1) and ``movie_conversations.txt`` of
    ``conversations`` (lists of utterances); ``malformed``: a line inserted third into movie_lines.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    sep = " +++$+++ "
    lines, convs, n = [], [], 0
    for conv in conversations:
        ids = []
        for text in conv:
            n += 1
            ids.append(f"L{n}")
            lines.append(sep.join([f"L{n}", "u0", "m0", "BOB", text]))
        convs.append(sep.join(["u0", "u1", "m0", str(ids)]))
    if malformed:
        lines.insert(2, malformed)
    (folder / "movie_lines.txt").write_bytes("".join(line + "\n" for line in lines).encode("latin-1"))
    (folder / "movie_conversations.txt").write_text("".join(c + "\n" for c in convs), encoding="utf-8")
    return folder
