"""How much of a generated text is copied from its source: the copy rate.

The copy rate of a set of texts is the share of their word tokens (whitespace-separated, after BPE
removal) that also occur somewhere in the paired source text, counted over all tokens (micro average).
Gigaword headlines copy most of their words from the article, dialog responses few; comparing the copy
rate of the hypotheses with that of the references shows whether a model copies too little or too much.

>>> copy_rate(["police arrest man", "rain"], ["police said they arrest a man .", "sun today"])
0.75
"""


def copied_words(text: str, source: str) -> tuple[int, int]:
    """``(words of text found in source, words of text)``.

    >>> copied_words("a b c a", "a c")
    (3, 4)
    """
    words = text.split()
    vocabulary = set(source.split())
    return sum(w in vocabulary for w in words), len(words)


def copy_rate(texts, sources) -> float:
    """Share of the words of ``texts`` that occur in their line-aligned ``sources`` (0 when no word)."""
    texts, sources = list(texts), list(sources)
    if len(texts) != len(sources):
        raise ValueError(f"{len(texts)} texts but {len(sources)} sources")
    copied = total = 0
    for text, source in zip(texts, sources, strict=True):
        c, n = copied_words(text, source)
        copied, total = copied + c, total + n
    return copied / total if total else 0.0


def mean_words(texts) -> float:
    """Average number of words per text.

    >>> mean_words(["a b", "c d e f"])
    3.0
    """
    texts = list(texts)
    return sum(len(t.split()) for t in texts) / len(texts) if texts else 0.0
