"""Maskers: pure NumPy functions ``(tokens, rng, ...) -> MaskedExample``."""

from src.language_model.base import MaskedExample, example_rng
from src.language_model.loose_masked_language_model import loose_mask
from src.language_model.masked_language_model import bert_mask
from src.language_model.mass_language_model import mass_mask

MASKERS = {"mass": mass_mask, "loose": loose_mask, "bert": bert_mask}


def get_masker(name: str):
    """The masking function called ``name`` (``mass``, ``loose`` or ``bert``)."""
    try:
        return MASKERS[name]
    except KeyError:
        raise ValueError(f"unknown mask type {name!r}; choose one of {sorted(MASKERS)}") from None


__all__ = ["MASKERS", "MaskedExample", "example_rng", "get_masker", "loose_mask", "bert_mask", "mass_mask"]
