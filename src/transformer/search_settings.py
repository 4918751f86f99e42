"""The settings of a beam search, as one frozen value built once and passed whole.

``SearchSettings`` holds what ``decode_config`` says (beam, length penalty, length limits, n-gram
blocking, n-best) and the special ids the search needs (``bos``, ``eos`` and the ids never generated,
owned by ``src/text/dictionary.py``). ``generate``, ``generate_stream``, ``beam_search``,
``stream_beam_search`` and the search state (``BeamBatch``) all take it; nothing below it repeats a
default. ``DECODE_ARGS`` is the one mapping between ``decode_config`` keys and these fields.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from src.text.dictionary import BOS_ID, EOS_ID, NEVER_GENERATED

# decode_config key -> SearchSettings field
DECODE_ARGS = {
    "beam_width": "beam_size", "length_penalty_weight": "length_penalty",
    "length_penalty_type": "length_penalty_type", "min_decode_length": "min_len",
    "max_decode_length_a": "max_len_a", "max_decode_length_b": "max_len_b",
    "no_repeat_ngram_size": "no_repeat_ngram_size", "n_best": "n_best",
}
LENGTH_PENALTY_TYPES = ("gnmt", "power")


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """One beam search's settings (see ``src/transformer/beam_search.py`` for their meaning).

    ``min_len`` counts generated tokens before ``eos``; an example gets at most ``int(max_len_a *
    src_len + max_len_b)`` tokens (``max_lengths``). ``forbid``: token ids never generated.

    >>> SearchSettings(beam_size=2, n_best=5).n_best    # never more than the beam holds
    2
    """

    beam_size: int = 4
    length_penalty: float = 1.0
    length_penalty_type: str = "gnmt"
    min_len: int = 0
    max_len_a: float = 0.0
    max_len_b: int = 64
    no_repeat_ngram_size: int = 0
    n_best: int = 1
    bos: int = BOS_ID
    eos: int = EOS_ID
    forbid: tuple[int, ...] = NEVER_GENERATED

    def __post_init__(self):
        if int(self.beam_size) < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.length_penalty_type not in LENGTH_PENALTY_TYPES:
            raise ValueError(f"length_penalty_type must be 'gnmt' or 'power', got {self.length_penalty_type!r}")
        if int(self.n_best) < 1:
            raise ValueError(f"n_best must be >= 1, got {self.n_best}")
        for name in ("min_len", "no_repeat_ngram_size", "max_len_a"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        object.__setattr__(self, "n_best", min(int(self.n_best), int(self.beam_size)))
        object.__setattr__(self, "forbid", tuple(int(t) for t in self.forbid))

    @classmethod
    def from_decode_config(cls, decode_config, **overrides) -> SearchSettings:
        """The settings of a ``DecodeConfig``, with the non-None ``overrides`` (named like the fields:
        beam_size, max_len_b, ...) on top."""
        return cls(**{field: getattr(decode_config, key) for key, field in DECODE_ARGS.items()}).replace(**overrides)

    def replace(self, **overrides) -> SearchSettings:
        """These settings with the non-None ``overrides`` applied; an unknown name is a TypeError."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - fields
        if unknown:
            raise TypeError(f"unknown search setting(s): {', '.join(sorted(unknown))}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def options(self) -> dict:
        """The decode_config part, by field name (what a report records)."""
        return {field: getattr(self, field) for field in DECODE_ARGS.values()}

    def max_lengths(self, src_lengths, max_positions: int) -> np.ndarray:
        """Per source, the most tokens to generate: ``int(a * src_len + b)``, at least 1, at most the
        position table.

        >>> SearchSettings(max_len_a=1.5, max_len_b=4).max_lengths(np.array([10, 40]), 64).tolist()
        [19, 64]
        """
        lengths = (self.max_len_a * np.asarray(src_lengths) + self.max_len_b).astype(np.int64)
        return np.maximum(np.minimum(lengths, max_positions), 1)
