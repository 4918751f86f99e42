"""The vocabulary: symbols <-> ids, with the ModelZoo special ids and a safe text format.

Ids 0-4 are fixed (ModelZoo MASS hard-codes them in beam search and masking)::

    <pad>=0  <s>=1  </s>=2  <unk>=3  <mask>=4

Ordinary symbols follow in first-seen order, or by descending frequency after :meth:`Dictionary.shrink`.

The persisted format is plain text (never pickle), written atomically::

    #mass-vocab v1
    <pad>\t0
    <s>\t0
    ...
    the\t51234

>>> d = Dictionary.from_counts({"hel@@": 3, "lo": 2})
>>> d.encode_line("hel@@ lo world").tolist()
[5, 6, 3, 2]
>>> d.decode([5, 6, 2, 6])
'hello'
"""

import hashlib
import logging
import re

import numpy as np

from src.utils.errors import UserError, where
from src.utils.fileio import atomic_open, iter_lines, require_file

logger = logging.getLogger(__name__)

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID = 0, 1, 2, 3, 4
# ids a decoder never outputs (beam search, the exported greedy decoder): <s> only ever starts the decoder's input
NEVER_GENERATED = (PAD_ID, BOS_ID, MASK_ID)
SPECIAL_SYMBOLS = (PAD, BOS, EOS, UNK, MASK)
NUM_SPECIALS = len(SPECIAL_SYMBOLS)
# Gigaword's training side writes <unk>, its test side UNK: both are the unknown word.
UNK_ALIASES = ("<unk>", "UNK")
# ModelZoo's case fallback: an unknown symbol maps to its lowercase form if that is this frequent.
REPLACE_THRESHOLD = 200
BPE_SEPARATOR = "@@"

PERSIST_HEADER = "#mass-vocab v1"
_FREQ_RE = re.compile(r"[0-9]+")


def strip_bpe(text: str, separator: str = BPE_SEPARATOR) -> str:
    """Undo subword-nmt's continuation markers: ``"hel@@ lo"`` -> ``"hello"`` (a trailing ``@@`` too)."""
    text = text.replace(separator + " ", "")
    if text.endswith(separator):
        text = text[: -len(separator)]
    return text


_strip_bpe = strip_bpe  # Dictionary.decode's argument shadows the name


def _valid_symbol(symbol) -> bool:
    """A symbol is a non-empty string without whitespace (it must survive ``line.split()``)."""
    return isinstance(symbol, str) and symbol.split() == [symbol]


class Dictionary:
    """Symbols, their ids and frequencies. See the module docstring for the fixed special ids."""

    def __init__(self):
        self._symbols: list[str] = []
        self._freqs: list[int] = []
        self._index: dict[str, int] = {}
        for symbol in SPECIAL_SYMBOLS:
            self.add_symbol(symbol, 0)

    # ---- construction -------------------------------------------------------------------------------
    def add_symbol(self, symbol: str, freq: int = 1) -> int:
        """Add ``freq`` to ``symbol`` (appending it with the next id if new); return its id.

        ``UNK`` is an alias of ``<unk>``: its frequency is added to ``<unk>``.
        """
        if symbol in UNK_ALIASES:
            symbol = UNK
        idx = self._index.get(symbol)
        if idx is None:
            if not _valid_symbol(symbol):
                raise ValueError(f"a symbol must be a non-empty string without whitespace: {symbol!r}")
            idx = len(self._symbols)
            self._index[symbol] = idx
            self._symbols.append(symbol)
            self._freqs.append(int(freq))
        else:
            self._freqs[idx] += int(freq)
        return idx

    @classmethod
    def from_counts(cls, counts) -> "Dictionary":
        """A dictionary from a ``{symbol: frequency}`` mapping (ids in the mapping's iteration order)."""
        dictionary = cls()
        for symbol, freq in counts.items():
            dictionary.add_symbol(symbol, freq)
        return dictionary

    @classmethod
    def load_from_text(cls, paths) -> "Dictionary":
        """Merge ``token freq`` files (subword-nmt get-vocab output), summing frequencies.

        Ids follow first-seen order over the files in the order given. Blank lines are ignored; any other
        line that is not ``token <space> non-negative integer`` is a UserError naming file and line.
        """
        if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
            paths = [paths]
        dictionary = cls()
        for path in paths:
            require_file(path, "vocabulary count file")
            for line_no, line in iter_lines(path):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 2 or not _FREQ_RE.fullmatch(fields[1]):
                    raise UserError(
                        f"{where(path, line_no)}: expected 'token frequency' (two fields, the second a "
                        f"non-negative integer), got {line!r}"
                    )
                dictionary.add_symbol(fields[0], int(fields[1]))
        return dictionary

    # ---- lookup -------------------------------------------------------------------------------------
    @property
    def pad(self) -> int:
        return PAD_ID

    @property
    def bos(self) -> int:
        return BOS_ID

    @property
    def eos(self) -> int:
        return EOS_ID

    @property
    def unk(self) -> int:
        return UNK_ID

    @property
    def mask(self) -> int:
        return MASK_ID

    @property
    def size(self) -> int:
        """Number of symbols, specials included (ModelZoo's name for ``len``)."""
        return len(self._symbols)

    @property
    def symbols(self) -> list[str]:
        """The symbols in id order (a copy)."""
        return list(self._symbols)

    @property
    def frequencies(self) -> list[int]:
        """The frequencies in id order (a copy)."""
        return list(self._freqs)

    def digest(self) -> str:
        """The vocabulary's identity: a hash of its symbols in id order (frequencies do not change what
        an id means). Datasets and checkpoints record it, and loaders refuse to mix two.

        >>> Dictionary.from_counts({"a": 2}).digest() == Dictionary.from_counts({"a": 9}).digest()
        True
        """
        return "sha256-" + hashlib.sha256("\n".join(self._symbols).encode("utf-8")).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, symbol) -> bool:
        return symbol in self._index or symbol in UNK_ALIASES

    def __getitem__(self, idx) -> str:
        """The symbol of an id; ids out of range give ``<unk>``."""
        idx = int(idx)
        if 0 <= idx < len(self._symbols):
            return self._symbols[idx]
        return UNK

    def __eq__(self, other) -> bool:
        if not isinstance(other, Dictionary):
            return NotImplemented
        return self._symbols == other._symbols and self._freqs == other._freqs

    def __repr__(self) -> str:
        return f"Dictionary(size={len(self)})"

    def frequency(self, symbol: str) -> int:
        """Frequency of ``symbol`` (0 if absent)."""
        if symbol in UNK_ALIASES:
            symbol = UNK
        idx = self._index.get(symbol)
        return 0 if idx is None else self._freqs[idx]

    def index(self, symbol: str) -> int:
        """Id of ``symbol``: exact match, else its lowercase form if frequent (ModelZoo), else ``<unk>``."""
        idx = self._index.get(symbol)
        if idx is not None:
            return idx
        if symbol in UNK_ALIASES:
            return UNK_ID
        lower = self._index.get(symbol.lower())
        if lower is not None and self._freqs[lower] >= REPLACE_THRESHOLD:
            return lower
        return UNK_ID

    # ---- sentences ----------------------------------------------------------------------------------
    def encode_line(self, line: str, append_eos: bool = True) -> np.ndarray:
        """Whitespace-split ``line`` and map each token to its id (int32), ``</s>`` appended."""
        get = self._index.get
        slow = self.index
        ids = [get(token) for token in line.split()]
        if None in ids:  # rare: unknown tokens take the slow path (aliases, case fallback)
            ids = [slow(token) if idx is None else idx for token, idx in zip(line.split(), ids, strict=True)]
        if append_eos:
            ids.append(EOS_ID)
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids, strip_bpe: bool = True) -> str:
        """Ids -> text: stop at the first ``</s>``, skip ``<pad>`` and ``<s>``, optionally undo BPE.

        >>> Dictionary.from_counts({"a@@": 1, "b": 1}).decode([1, 5, 6, 2, 5])
        'ab'
        """
        symbols = self._symbols
        size = len(symbols)
        out = []
        for idx in ids:
            idx = int(idx)
            if idx == EOS_ID:
                break
            if idx == PAD_ID or idx == BOS_ID:
                continue
            out.append(symbols[idx] if 0 <= idx < size else UNK)
        text = " ".join(out)
        return _strip_bpe(text) if strip_bpe else text

    # ---- vocabulary size ----------------------------------------------------------------------------
    def shrink(self, threshold: int, multiple_of: int = 1) -> "Dictionary":
        """A new dictionary: specials, then symbols with frequency > ``threshold`` by descending frequency.

        Ties keep first-seen (id) order. With ``multiple_of`` > 1 the next most frequent dropped symbols are
        kept until the size (specials included) is a multiple of it, if enough symbols exist.
        """
        if multiple_of < 1:
            raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
        order = sorted(range(NUM_SPECIALS, len(self._symbols)), key=lambda i: -self._freqs[i])
        kept = sum(1 for i in order if self._freqs[i] > threshold)
        size = NUM_SPECIALS + kept
        if multiple_of > 1 and size % multiple_of:
            size = min(size + multiple_of - size % multiple_of, len(self._symbols))
        new = Dictionary()
        for i in range(NUM_SPECIALS):
            new._freqs[i] = self._freqs[i]
        for i in order[: size - NUM_SPECIALS]:
            new.add_symbol(self._symbols[i], self._freqs[i])
        logger.info("vocabulary shrunk from %d to %d symbols (threshold %d)", len(self), len(new), threshold)
        return new

    # ---- persistence --------------------------------------------------------------------------------
    def persistence(self, path) -> None:
        """Write the dictionary atomically in the ``#mass-vocab v1`` text format."""
        with atomic_open(path) as handle:
            handle.write(PERSIST_HEADER + "\n")
            for symbol, freq in zip(self._symbols, self._freqs, strict=True):
                handle.write(f"{symbol}\t{freq}\n")
        logger.info("vocabulary of %d symbols written to %s", len(self), path)

    @classmethod
    def load_from_persisted_dict(cls, path) -> "Dictionary":
        """Read a file written by :meth:`persistence`, checking every line (UserError naming file:line)."""
        require_file(path, "vocabulary file")
        dictionary = cls()
        seen: dict[str, int] = {}
        line_no = 0
        for line_no, line in iter_lines(path):
            here = where(path, line_no)
            if line_no == 1:
                if line != PERSIST_HEADER:
                    raise UserError(
                        f"{here}: not a vocabulary file: the first line must be {PERSIST_HEADER!r}, got "
                        f"{line[:60]!r}"
                    )
                continue
            idx = line_no - 2
            fields = line.split("\t")
            if len(fields) != 2:
                raise UserError(
                    f"{here}: expected 'symbol<TAB>frequency' (2 tab-separated fields), got {len(fields)} "
                    f"field(s): {line[:60]!r}"
                )
            symbol, freq = fields
            if not _valid_symbol(symbol):
                raise UserError(f"{here}: symbol {symbol!r} is empty or contains whitespace")
            if not _FREQ_RE.fullmatch(freq):
                raise UserError(f"{here}: frequency {freq!r} is not a non-negative integer")
            if symbol in seen:
                raise UserError(f"{here}: duplicate symbol {symbol!r} (first at line {seen[symbol]})")
            seen[symbol] = line_no
            if idx < NUM_SPECIALS:
                if symbol != SPECIAL_SYMBOLS[idx]:
                    raise UserError(
                        f"{here}: id {idx} must be the special symbol {SPECIAL_SYMBOLS[idx]!r}, got {symbol!r}"
                    )
                dictionary._freqs[idx] = int(freq)
            elif symbol in SPECIAL_SYMBOLS or symbol in UNK_ALIASES:
                raise UserError(f"{here}: special symbol {symbol!r} may only appear at its fixed id")
            else:
                dictionary.add_symbol(symbol, int(freq))
        if line_no == 0:
            raise UserError(f"{where(path, 1)}: empty vocabulary file (expected header {PERSIST_HEADER!r})")
        if line_no - 1 < NUM_SPECIALS:
            raise UserError(
                f"{where(path, line_no)}: the file ends after {line_no - 1} symbol(s); the {NUM_SPECIALS} "
                f"special symbols {', '.join(SPECIAL_SYMBOLS)} must come first"
            )
        return dictionary

