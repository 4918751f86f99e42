"""ModelZoo MASS's static dataset layout: six fixed-length columns per example, masks drawn once at build.

Written by ``news_crawl.py --static_mask`` for comparison with ModelZoo; read back by the loader as the
four batch columns. Decoder arrays are left-padded to their absolute positions, every column
right-padded to ``max_len`` (:func:`to_modelzoo_record`), so positions are simply ``0 .. len - 1``
(:func:`modelzoo_transform`).
"""

import numpy as np

from src.dataset import schema
from src.language_model.base import MaskedExample
from src.text.dictionary import MASK_ID, PAD_ID


def to_modelzoo_record(example: MaskedExample, max_len: int) -> dict | None:
    """ModelZoo's record layout: decoder arrays left-padded to their absolute position, every column
    right-padded to ``max_len``; ``None`` when the example does not fit (ModelZoo drops it).
    """
    offset = int(example.decoder_positions[0])
    enc = example.encoder_input
    dec_in = np.concatenate([np.full(offset, PAD_ID), example.decoder_input])
    dec_out = np.concatenate([np.full(offset, PAD_ID), example.decoder_output])
    if max(len(enc), len(dec_in)) > max_len:
        return None

    def pad(a):
        return np.pad(np.asarray(a, dtype=np.int64), (0, max_len - len(a)))

    src_padding = pad(np.ones(len(enc)))
    src_padding[(pad(enc) == MASK_ID)] = 0  # ModelZoo hides masked tokens from the encoder
    tgt_padding = pad(dec_in != PAD_ID)
    return {
        schema.MZ_SRC: pad(enc),
        schema.MZ_SRC_PADDING: src_padding,
        schema.MZ_PREV_OPT: pad(dec_in),
        schema.MZ_PREV_PADDING: tgt_padding,
        schema.MZ_TARGET: pad(dec_out),
        schema.MZ_TGT_PADDING: tgt_padding.copy(),
    }


def modelzoo_transform(src, src_padding, prev_opt, prev_padding, target, tgt_padding):
    """ModelZoo's static 6 columns -> batch columns (decoder arrays are left-padded to their absolute
    positions there, so positions are simply 0..len-1)."""
    del src_padding, prev_padding
    labels = np.where(tgt_padding > 0, target, PAD_ID)
    positions = np.arange(len(prev_opt))
    return tuple(np.asarray(a, dtype=np.int32) for a in (src, prev_opt, positions, labels))
