"""Word tokenization (nltk Treebank-style for English, jieba for Chinese) and detokenization.

The unknown-word markers ``<unk>`` (Gigaword train) and ``UNK`` (Gigaword test) pass through unchanged:

>>> word_tokenize("I don't know <unk>.")
['I', 'do', "n't", 'know', '<unk>', '.']
>>> detokenize(["I", "do", "n't", "know", "."])
"I don't know."
"""

import functools

TOKENIZERS = ("nltk", "jieba")
PROTECTED_TOKENS = ("<unk>", "UNK")
# nltk splits "<unk>" into "<", "unk", ">"; this lowercase word passes every Treebank rule untouched
# (and jieba keeps an ASCII letter run whole), so it stands in for "<unk>" during tokenization.
_UNK_PLACEHOLDER = "zzmassunkplaceholderzz"


@functools.cache
def _nltk_tokenizer():
    # NLTKWordTokenizer is what nltk.word_tokenize(text, preserve_line=True) runs: no punkt data needed.
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


@functools.cache
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@functools.cache
def _detokenizer():
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    return TreebankWordDetokenizer()


def word_tokenize(line: str, tokenizer: str = "nltk") -> list[str]:
    """Split one sentence into words; no token contains whitespace.

    ``tokenizer`` is ``"nltk"`` (Treebank conventions: "don't" -> "do", "n't") or ``"jieba"`` (Chinese).
    """
    protect = "<unk>" in line
    if protect:
        line = line.replace("<unk>", f" {_UNK_PLACEHOLDER} ")
    if tokenizer == "nltk":
        tokens = _nltk_tokenizer().tokenize(line)
    elif tokenizer == "jieba":
        tokens = _jieba().lcut(line)
    else:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; choose from {', '.join(TOKENIZERS)}")
    # Drop whitespace tokens (jieba emits them) and split any token that still holds whitespace, so that
    # " ".join(tokens).split() gives the tokens back.
    out = [piece for token in tokens for piece in token.split()]
    if protect:
        out = ["<unk>" if token == _UNK_PLACEHOLDER else token for token in out]
    return out


def detokenize(tokens) -> str:
    """Join Treebank-style tokens back into text: ``["do", "n't", "."]`` -> ``"don't."``."""
    return _detokenizer().detokenize(list(tokens))
