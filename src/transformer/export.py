"""MindIR export of an inference graph: encoder plus greedy decoding, for deployment (MindSpore Lite,
Ascend 310, serving).

The exported ``GreedyDecoder`` maps ``src_ids`` (batch, src_len) int32 to the generated ids
(batch, steps) int32 in one graph. It runs a fixed number of steps with no key/value cache: at every
step the whole decoder runs over a fixed-size token buffer (batch, steps) with the causal mask, and
the prediction at position ``t`` is written to ``t + 1``. Each step thus costs a full decoder pass,
but every shape is static, which is what an exported graph needs. After ``</s>`` a row emits
``<pad>``. As in ``generate()``, ``<pad>`` and ``<mask>`` are never predicted.

``eval.py`` does not use this graph: it decodes with the cached beam search of
``src/transformer/generator.py``. The exported output equals ``generate(..., beam_size=1)`` with the
same number of steps, up to the ``</s>``.
"""

import logging
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from src.text.dictionary import BOS_ID, EOS_ID, NEVER_GENERATED, PAD_ID
from src.transformer.transformer import MassTransformer
from src.utils.errors import UserError
from src.utils.fileio import atomic_path

logger = logging.getLogger(__name__)

FORMATS = ("MINDIR",)
FORBIDDEN_PENALTY = 1e9  # subtracted from the logits of tokens that must never be generated


class GreedyDecoder(nn.Cell):
    """``construct(src_ids (batch, src_len) int32) -> ids (batch, steps) int32``, greedy, no cache."""

    def __init__(self, model: MassTransformer, steps: int):
        super().__init__(auto_prefix=False)  # the model's parameters keep their checkpoint names
        if not 1 <= steps <= model.config.max_position_embeddings:
            raise UserError(f"decode steps must lie in 1..{model.config.max_position_embeddings} "
                            f"(max_position_embeddings), got {steps}")
        self.model = model
        self.steps = steps
        forbidden = np.zeros(model.config.vocab_size, np.float32)
        forbidden[list(NEVER_GENERATED)] = FORBIDDEN_PENALTY
        self.forbidden = Tensor(forbidden)  # (vocab,)
        self.positions = Tensor(np.arange(steps, dtype=np.int32).reshape(1, steps))  # (1, steps)

    def construct(self, src_ids):
        batch = src_ids.shape[0]
        memory, _ = self.model.encode(src_ids)  # (batch, src_len, d)
        memory_mask = self.model.memory_mask(src_ids)  # (batch, src_len)
        positions = ops.tile(self.positions, (batch, 1))  # (batch, steps)
        column = ops.tile(self.positions, (batch, 1))  # (batch, steps): the index of every column
        # tokens[:, t] is the decoder input at position t: <s> at 0, then the predictions
        pad = ops.full((batch, self.steps), PAD_ID, dtype=ms.int32)  # (batch, steps)
        tokens = ops.where(column == 0, ops.full((batch, self.steps), BOS_ID, dtype=ms.int32), pad)
        output = pad
        finished = ops.zeros((batch,), ms.bool_)
        for t in range(self.steps):  # unrolled: static shapes, one decoder pass per step
            hidden, _ = self.model.decode(tokens, positions, memory, memory_mask)  # (batch, steps, d)
            logits = self.model.logits(hidden[:, t:t + 1])  # (batch, 1, vocab)
            word = ops.argmax(logits.squeeze(1) - self.forbidden, -1).astype(ms.int32)  # (batch,)
            word = ops.where(finished, ops.full((batch,), PAD_ID, dtype=ms.int32), word)
            finished = ops.logical_or(finished, word == EOS_ID)
            word_column = word.reshape(batch, 1)  # (batch, 1), broadcast over columns
            output = ops.where(column == t, word_column, output)
            tokens = ops.where(column == t + 1, word_column, tokens)
        return output


def check_format(file_format: str) -> str:
    name = file_format.upper()
    if name not in FORMATS:
        raise UserError(f"--file_format {file_format}: only MINDIR is supported (AIR needs the Ascend "
                        "toolkit and was for the retired Ascend 310 path; ONNX cannot express this graph)")
    return name


def mindir_path(file_name) -> Path:
    """The file :func:`export_mindir` writes: ``file_name`` with ``.mindir`` appended if missing."""
    path = Path(file_name)
    return path if path.suffix == ".mindir" else path.with_name(path.name + ".mindir")


def export_mindir(network: nn.Cell, example_input: np.ndarray, file_name) -> Path:
    """Export ``network`` traced on ``example_input`` to ``file_name`` (``.mindir`` appended if
    missing), atomically; returns the path written."""
    path = mindir_path(file_name)
    network.set_train(False)
    with atomic_path(path) as tmp:  # the temporary keeps the ".mindir" name, which mindspore.export wants
        ms.export(network, Tensor(example_input), file_name=str(tmp), file_format="MINDIR")
    logger.info("exported %s (input %s %s)", path, example_input.shape, example_input.dtype)
    return path
