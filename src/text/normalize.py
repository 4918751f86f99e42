"""Token normalisation, the one definition used when data is prepared and when a trained model reads
raw text (tokenize_corpus.py, cornell_dialog.py, eval.py, the Python API).

Gigaword's convention, applied to every corpus that shares its vocabulary: lower case (the unknown-word
markers excepted) and every digit written ``#``.

>>> normalize_tokens(["Rates", "rose", "3.5", "percent", "UNK"], lowercase=True, hash_digits=True)
['rates', 'rose', '#.#', 'percent', 'UNK']
"""

# The unknown-word markers: Gigaword's training side writes <unk>, its test side UNK.
PROTECTED_TOKENS = ("<unk>", "UNK")
_DIGITS = str.maketrans("0123456789", "##########")


def normalize_tokens(tokens, *, lowercase: bool = False, hash_digits: bool = False) -> list[str]:
    """``tokens`` lower-cased (but :data:`PROTECTED_TOKENS`) and/or with every digit replaced by ``#``."""
    tokens = list(tokens)
    if lowercase:
        tokens = [t if t in PROTECTED_TOKENS else t.lower() for t in tokens]
    if hash_digits:
        tokens = [t.translate(_DIGITS) for t in tokens]
    return tokens
