"""Word tokenization (nltk Treebank-style for English, jieba for Chinese) and detokenization.

The unknown-word markers ``<unk>`` (Gigaword train) and ``UNK`` (Gigaword test) pass through unchanged:

>>> word_tokenize("I don't know <unk>.")
['I', 'do', "n't", 'know', '<unk>', '.']
>>> detokenize(["I", "do", "n't", "know", "."])
"I don't know."
"""

import functools
import re

TOKENIZERS = ("nltk", "jieba")
# nltk splits "<unk>" into "<", "unk", ">"; this lowercase word passes every Treebank rule untouched
# (and jieba keeps an ASCII letter run whole), so it stands in for "<unk>" during tokenization.
_UNK_PLACEHOLDER = "zzmassunkplaceholderzz"


# Treebank rules look at most at the whitespace around a word, except at the two ends of the line
# (an opening quote, the final period). So a word's tokens depend only on the word and on whether it
# is first / last, and are memoized per (word, place): a sentence then costs a few dict lookups. The
# result equals tokenizing the whole line (tests, and the whole news corpus in bench/).
_MIDDLE, _FIRST, _LAST, _ONLY = 0, 1, 2, 3
_IN_CONTEXT = {_MIDDLE: "a {} a", _FIRST: "{} a", _LAST: "a {}", _ONLY: "{}"}
_NON_SPACE_WHITESPACE = re.compile(r"[^\S ]")  # tabs, newlines, no-break spaces: use the whole-line path
_MAX_CACHE_ENTRIES = 2_000_000
_word_cache: dict = {}
# A word of letters and digits alone passes every Treebank rule untouched, except these contractions.
_ALNUM_CONTRACTIONS = frozenset({"cannot", "gimme", "gonna", "gotta", "lemme", "wanna"})
# The final-period rule reaches across trailing words made only of closing brackets and quotes.
_CLOSING_ONLY = re.compile(r"^[\]\)}>\"'»”’]+$")
_END_SENSITIVE = re.compile(r"[.,:]")


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


def _as_middle(word, place):
    """``(stem, suffix)`` when ``word`` at ``place`` tokenizes as ``stem`` in mid-sentence followed by
    the tokens ``suffix``, else None. The line-start rules only touch a leading quote, the line-end rules
    only ``.``, ``,`` and ``:``; a final ``X.`` is ``X`` then ``.``."""
    if place == _MIDDLE:
        return word, ()
    if place == _FIRST:
        return (word, ()) if word[0] not in "\"'" else None
    if place == _LAST:
        if not _END_SENSITIVE.search(word):
            return word, ()
        if len(word) > 1 and word[-1] == "." and not _END_SENSITIVE.search(word[:-1]):
            return word[:-1], (".",)
    return None


def _nltk_tokenize(line: str) -> list[str]:
    """``NLTKWordTokenizer().tokenize(line)``, computed word by word with a memo (see above)."""
    words = line.split()
    if _NON_SPACE_WHITESPACE.search(line) or (len(words) > 1 and _CLOSING_ONLY.match(words[-1])):
        return _nltk_tokenizer().tokenize(line)
    last = len(words) - 1
    out = []
    for i, word in enumerate(words):
        if word.isalnum() and word.lower() not in _ALNUM_CONTRACTIONS:
            out.append(word)
            continue
        place = _place_of(i, last)
        middle = _as_middle(word, place)
        if middle is not None:
            word, suffix = middle
            place = _MIDDLE
        else:
            suffix = ()
        tokens = _word_cache.get((word, place))
        if tokens is None:
            tokens = _word_in_context(word, place)
            if tokens is None:  # a rule reached into the neighbour: never seen, but stay exact
                return _nltk_tokenizer().tokenize(line)
            if len(_word_cache) >= _MAX_CACHE_ENTRIES:
                _word_cache.clear()
            _word_cache[(word, place)] = tokens
        out.extend(tokens)
        out.extend(suffix)
    return out


_BATCH_SEPARATOR = "zqxjbatchsepzqxj"  # a letters-only word: neutral to every rule, like "a"


def _place_of(i, last):
    return (_FIRST if i == 0 else _MIDDLE) | (_LAST if i == last else _MIDDLE)


def _prefetch(lines):
    """Fill the memo for the words of ``lines`` that tokenize as mid-sentence words with one nltk call
    over all of them: nltk's cost is mostly per call (about 25 regex passes over the string)."""
    missing = set()
    for line in lines:
        words = line.split()
        last = len(words) - 1
        for i, word in enumerate(words):
            middle = _as_middle(word, _place_of(i, last)) if not word.isalnum() else None
            if middle and (middle[0], _MIDDLE) not in _word_cache and _BATCH_SEPARATOR not in word:
                missing.add(middle[0])
    if not missing:
        return
    missing = sorted(missing)
    text = " ".join(f"{_BATCH_SEPARATOR} {word}" for word in missing) + f" {_BATCH_SEPARATOR}"
    groups, current = [], None
    for token in _nltk_tokenizer().tokenize(text):
        if token == _BATCH_SEPARATOR:
            if current is not None:
                groups.append(current)
            current = []
        else:
            current.append(token)
    if len(groups) != len(missing):  # never seen; the per-word path stays exact
        return
    if len(_word_cache) + len(missing) >= _MAX_CACHE_ENTRIES:
        _word_cache.clear()
    for word, tokens in zip(missing, groups, strict=True):
        _word_cache[(word, _MIDDLE)] = tokens


def _word_in_context(word, place):
    """Tokens of ``word`` between neutral neighbours ("a") standing for the rest of the line."""
    tokens = _nltk_tokenizer().tokenize(_IN_CONTEXT[place].format(word))
    if not place & _FIRST:
        if not tokens or tokens[0] != "a":
            return None
        tokens = tokens[1:]
    if not place & _LAST:
        if not tokens or tokens[-1] != "a":
            return None
        tokens = tokens[:-1]
    return tokens


def _protect(line):
    return line.replace("<unk>", f" {_UNK_PLACEHOLDER} ") if "<unk>" in line else line


def word_tokenize_many(lines, tokenizer: str = "nltk") -> list[list[str]]:
    """:func:`word_tokenize` over many lines; faster for nltk than one line at a time."""
    if tokenizer == "nltk":
        _prefetch([_protect(line) for line in lines])
    return [word_tokenize(line, tokenizer) for line in lines]


def word_tokenize(line: str, tokenizer: str = "nltk") -> list[str]:
    """Split one sentence into words; no token contains whitespace.

    ``tokenizer`` is ``"nltk"`` (Treebank conventions: "don't" -> "do", "n't") or ``"jieba"`` (Chinese).
    """
    protect = "<unk>" in line
    line = _protect(line)
    if tokenizer == "nltk":
        tokens = _nltk_tokenize(line)
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
