"""A small Python API for generation with a trained MASS model.

>>> gen = MassGenerator.from_files("run/checkpoints/ckpt_finetune_best.ckpt", "vocab/vocab.txt",
...                                codes="vocab/all.bpe.codes")          # doctest: +SKIP
>>> gen.generate(["japan 's nec corp. said wednesday it would join forces ..."])  # doctest: +SKIP
['nec to join forces']

Raw text goes through the training preprocessing (NLTK word tokenization, the normalisation of
src/text/normalize.py when ``lowercase`` / ``hash_digits`` are set as for the training data, BPE with
``codes`` when the vocabulary is a BPE one, the dictionary); outputs come back de-BPE'd and detokenized. The model runs
in eval mode (no dropout) with the cached beam search of :mod:`src.transformer.generator`, its options
taken from the config's ``decode_config`` unless overridden per call.
"""

import logging
from pathlib import Path

import numpy as np

from src.utils.errors import UserError

logger = logging.getLogger(__name__)

def resolve_config(state: dict, source, config=None, overrides=(), config_name=None):
    """The MassConfig to build the model with: ``config`` (a path or a MassConfig, named ``config_name`` in
    messages), else the resolved config stored in the run ``state`` read from ``source`` (a checkpoint);
    ``overrides`` (``--section.key=value``) applied last. Where the checkpoint stores its config, the
    result must describe the same model (:func:`check_same_model`)."""
    from config.config import MassConfig
    from src.utils.checkpoint import config_of

    stored = config_of(state)
    given = config_name or (str(config) if config and not isinstance(config, MassConfig) else "the given config")
    if isinstance(config, MassConfig):
        cfg = config
    elif config:
        cfg = MassConfig.from_json(config)
    else:
        if stored is None and Path(source).suffix == ".npz":
            raise UserError(f"{source}: an .npz holds weights only: give the model config with --config")
        if stored is None:
            raise UserError(f"{source}: no config stored in this checkpoint: give it with --config")
        cfg = MassConfig.from_dict(stored, source=f"{source} (stored config)")
        given = "the command line"
    cfg = cfg.override(list(overrides)) if overrides else cfg
    if stored is None:  # e.g. a checkpoint of another tool: the weights' shapes are checked, the rest is trusted
        logger.warning("%s stores no config: %s is taken on trust (only the weights' shapes can be checked: a "
                       "different head count or activation would go unnoticed)", source, given)
        return cfg
    return check_same_model(cfg, stored, source, given)


def check_same_model(cfg, stored: dict, source, given: str):
    """``cfg``, checked against the ``stored`` config of the checkpoint ``source``: the keys that shape the
    weights (config.config.WEIGHT_KEYS) must be equal, a UserError naming both values otherwise; a null
    vocab_size or vocab_sha256 takes the checkpoint's value (so the vocabulary checks still apply)."""

    from config.config import WEIGHT_KEYS, model_differences

    model = stored.get("model_config") or {}
    differences = model_differences(model, cfg.model_config, (*WEIGHT_KEYS, "vocab_sha256"))
    if differences:
        free = sorted(set(type(cfg.model_config).__dataclass_fields__) - set(WEIGHT_KEYS) - {"vocab_sha256"})
        raise UserError(f"{given}: the model does not match the weights of {source}: {'; '.join(differences)} "
                        f"(at evaluation only decode_config, dataset_config and model_config.{{{', '.join(free)}}} "
                        "may differ from the checkpoint's config)")
    fill = {key: model[key] for key in ("vocab_size", "vocab_sha256")
            if getattr(cfg.model_config, key) is None and model.get(key) is not None}
    return cfg.replace("model_config", **fill) if fill else cfg


def training_normalization(cfg, lowercase: bool = False, hash_digits: bool = False) -> tuple[bool, bool]:
    """``(lowercase, hash_digits)`` for raw input: what the training text had (``dataset_config``, recorded
    by train.py), plus what is asked for here. The training normalisation always applies: a model that
    saw ``#.#`` must not be given ``3.5``."""
    data = cfg.dataset_config
    return bool(lowercase or data.lowercase), bool(hash_digits or data.hash_digits)


class MassGenerator:
    """A model in eval mode, its dictionary, optional BPE encoder and decode options. Raw text is
    tokenized and normalised as the training text was (:func:`training_normalization`)."""

    def __init__(self, model, vocab, config, bpe=None, tokenizer: str | None = None, lowercase: bool = False,
                 hash_digits: bool = False):
        model.set_train(False)
        self.model, self.vocab, self.config, self.bpe = model, vocab, config, bpe
        self.tokenizer = tokenizer or config.dataset_config.tokenizer or "nltk"
        self.lowercase, self.hash_digits = training_normalization(config, lowercase, hash_digits)

    @classmethod
    def from_files(cls, checkpoint, vocab, codes=None, config=None, device_target="CPU", device_id=None,
                   overrides=(), mode="graph", lowercase=False, hash_digits=False):
        """Load a model from a ``.ckpt`` (config from its run state unless ``config`` is given) or an
        ``.npz`` (``config`` required), its vocabulary file and optional BPE ``codes``; the checkpoint
        is read once."""
        from src.text.dictionary import Dictionary
        from src.utils.checkpoint import read_model_file
        from src.utils.fileio import require_file

        require_file(checkpoint, "checkpoint")
        dictionary = Dictionary.load_from_persisted_dict(vocab)
        weights, state = read_model_file(checkpoint)
        cfg = resolve_config(state, checkpoint, config, overrides)
        from src.dataset.identity import check_model_vocabulary

        check_model_vocabulary(cfg.model_config.vocab_sha256, dictionary.digest(), checkpoint, vocab)
        bpe = None
        if codes:
            from src.text.byte_pair_encoding import BytePairEncoder

            bpe = BytePairEncoder(require_file(codes, "BPE codes"))
        from src.utils.device import setup_device

        setup_device(device_target, device_id, mode=mode, distributed=False)
        model = build_model(cfg, len(dictionary), weights, checkpoint)
        return cls(model, dictionary, cfg, bpe, lowercase=lowercase, hash_digits=hash_digits)

    # ---- options ------------------------------------------------------------------------------------
    def search_settings(self, **overrides):
        """The :class:`~src.transformer.search_settings.SearchSettings` of ``decode_config``, with the
        non-None ``overrides`` on top (named like its fields: beam_size, max_len_b, ...)."""
        from src.transformer.search_settings import SearchSettings

        return SearchSettings.from_decode_config(self.config.decode_config, **overrides)

    # ---- ids ----------------------------------------------------------------------------------------
    def hypotheses_for_ids(self, src_id_batches, **decode_overrides) -> list:
        """Beam search over batches of padded source ids (batch, src_len); per example, in input order,
        its n-best list of :class:`~src.transformer.beam_search.Hypothesis`."""
        from src.transformer.generator import generate

        settings = self.search_settings(**decode_overrides)
        out = []
        for src_ids in src_id_batches:
            out.extend(generate(self.model, np.asarray(src_ids), settings))
        return out

    def hypotheses_stream(self, sources, on_done=None, batch_size=None, **decode_overrides) -> list:
        """Beam search over ``sources`` (1-D id arrays, unpadded) through ``batch_size`` (default:
        ``dataset_config.batch_size``) example slots, each refilled as its example stops
        (``generate_stream``); per source, in input order, its n-best list. ``on_done(index)`` as each
        source's search ends."""
        from src.transformer.generator import generate_stream

        return generate_stream(self.model, sources, self.search_settings(**decode_overrides),
                               batch_size=batch_size or self.config.dataset_config.batch_size, on_done=on_done)

    def ids_to_text(self, tokens, detokenized=True) -> str:
        """Generated ids -> text: cut at ``</s>``, BPE removed, detokenized (or, with ``detokenized=False``,
        left as space-separated tokens, to compare with tokenized references)."""
        from src.text.tokenizer import detokenize

        words = self.vocab.decode(tokens, strip_bpe=True).split()
        return detokenize(words) if detokenized else " ".join(words)

    # ---- raw text -----------------------------------------------------------------------------------
    def encode(self, raw: str) -> np.ndarray:
        """One raw sentence -> ids with ``</s>``, preprocessed like the training data."""
        from src.text.normalize import normalize_tokens
        from src.text.tokenizer import word_tokenize

        tokens = normalize_tokens(word_tokenize(raw, self.tokenizer), lowercase=self.lowercase,
                                  hash_digits=self.hash_digits)
        line = " ".join(tokens)
        if self.bpe is not None:
            line = self.bpe.encode_line(line)
        return self.vocab.encode_line(line)

    def generate(self, raw_strings, beam_size=None, batch_size=None, **decode_overrides) -> list[str]:
        """One generated string (the best hypothesis) per raw input string, in input order, decoded through
        ``batch_size`` (default: ``dataset_config.batch_size``) example slots (``hypotheses_stream``)."""
        sequences = [self.encode(s) for s in raw_strings]
        hyps = self.hypotheses_stream(sequences, batch_size=batch_size, beam_size=beam_size, **decode_overrides)
        from src.evaluation.decode_score import best_texts

        return best_texts(hyps, self.ids_to_text)[0]  # "" where the scores were not finite numbers


def build_model(cfg, vocab_size: int, weights: dict, source):
    """A MassTransformer for ``cfg`` with ``weights`` (read from ``source``), in eval mode."""
    from config.config import with_vocab_size
    from src.transformer.transformer import MassTransformer
    from src.utils.checkpoint import assign_weights

    cfg = with_vocab_size(cfg, vocab_size, "the vocabulary file (give the one the model was trained with)")
    model = MassTransformer(cfg.model_config)
    assign_weights(model, weights, source)
    model.set_train(False)
    return model
