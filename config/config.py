"""One typed configuration for MASS: nested dataclasses loaded from JSON, overridable from the CLI.

The JSON files keep the ModelZoo section names (``dataset_config``, ``model_config``, ...). Every key is
declared here with its type; an unknown key, a value of the wrong type (``"4"`` or ``1.5`` for an
int) or an out-of-range value raises :class:`~src.utils.errors.UserError` naming the key and,
when it came from a file, the file. An int is accepted where a float is declared. Keys left out of a
file take the defaults below, which are ``config/config.json`` (ModelZoo's values where they make sense).

>>> cfg = MassConfig.from_json("config/tiny.json")                      # doctest: +SKIP
>>> cfg = cfg.override(["--learn_rate_config.lr=5e-4", "--dataset_config.batch_size=8"])  # doctest: +SKIP
>>> cfg.learn_rate_config.lr                                           # doctest: +SKIP
0.0005

Sections are frozen: change a config with :meth:`MassConfig.override` (which re-validates everything),
never by assignment. ``to_json`` writes the keys in declaration order, so ``from_json(p).to_json(q)``
reproduces a file written by ``to_json`` byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Literal

from src.utils.errors import UserError
from src.utils.fileio import atomic_open, require_file

PROB_TOLERANCE = 1e-6


def _fail(key: str, message: str):
    raise UserError(f"{key}: {message}")


def _require(condition: bool, key: str, message: str):
    if not condition:
        _fail(key, message)


def _check_probs(values, key: str, length: int):
    _require(len(values) == length, key, f"expected {length} probabilities, got {len(values)}")
    _require(all(0.0 <= p <= 1.0 for p in values), key, f"probabilities must lie in [0, 1], got {values}")
    _require(abs(sum(values) - 1.0) <= PROB_TOLERANCE, key, f"probabilities must sum to 1, got {sum(values)}")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Data files and batching. Dataset paths are files or folders of MindRecord shards ("" = unused)."""

    epochs: int = 20
    batch_size: int = 192
    pre_train_dataset: str = ""
    fine_tune_dataset: str = ""
    valid_dataset: str = ""
    test_dataset: str = ""
    max_len: int = 64  # source length cap (tokens, ``</s>`` included)
    max_tgt_len: int = 64  # target length cap
    # exclusive upper bounds of the source-length buckets (bucket_batch_by_length): a batch holds examples
    # of one bucket; [] (and data parallel) batches in data order. Every batch is padded to its longest
    # example rounded up to a multiple of pad_multiple, so the jit step sees few shapes (each new shape
    # is compiled once and its graph kept, with memory of its own: a larger multiple means fewer graphs,
    # less memory and more padding; the presets use 32, see bench/bench_memory.py)
    bucket_boundaries: tuple[int, ...] = (16, 32, 48)
    pad_multiple: int = 32
    # compile the training step once with dynamic (batch, length) dimensions instead of once per batch
    # shape: its memory stays that of the largest batch (a training of the small preset at batch 32 keeps
    # about 1 GB per shape otherwise) but every step runs slower (1.6-1.8x in bench/bench_memory.py)
    dynamic_shapes: bool = False
    # the most batch shapes that get a graph of their own (null: one per (source, target) width pair that
    # max_len, max_tgt_len and pad_multiple allow, so every full batch runs at full speed): batches of
    # any later shape (the partial batch that ends each bucket's epoch, one more graph each) share one
    # dynamic-shape graph, slower per step (1.6-1.9x), with the same results; 0 is dynamic_shapes=true
    max_static_shapes: int | None = None
    # token batches (fairseq's --max-tokens): > 0 gives each bucket batches of max_tokens // (its padded
    # source width) examples instead of batch_size (at least 1); without bucket_boundaries every padded
    # width is its own bucket. 0: sentence batches of batch_size
    max_tokens: int = 0
    shuffle: bool = True
    num_parallel_workers: int = 4
    # how the training text was tokenized and normalised (src/text/text_options.py): recorded by train.py
    # from the datasets' manifests (null: unknown); eval.py and the API normalise raw input the same way
    tokenizer: str | None = None
    lowercase: bool | None = None
    hash_digits: bool | None = None
    # multi-task: batches of mix_dataset (e.g. Gigaword pairs) take a share mix_ratio of the optimizer
    # steps of the phase mix_phase, from step mix_from_step on (src/training/trainer.py, _Mixer)
    mix_dataset: str = ""
    mix_ratio: float = 0.0
    mix_phase: Literal["pretrain", "finetune"] = "pretrain"
    mix_from_step: int = 0

    def static_shape_limit(self) -> int | None:
        """The training step's ``max_static_shapes``: 0 with dynamic_shapes, else the configured limit,
        or (null) the number of (source, target) padded width pairs."""
        if self.dynamic_shapes:
            return 0
        if self.max_static_shapes is not None:
            return self.max_static_shapes
        return math.ceil(self.max_len / self.pad_multiple) * math.ceil(self.max_tgt_len / self.pad_multiple)

    def __post_init__(self):
        for key in ("epochs", "batch_size", "max_len", "max_tgt_len", "num_parallel_workers", "pad_multiple"):
            _require(getattr(self, key) > 0, f"dataset_config.{key}", "must be positive")
        _require(self.max_tokens >= 0, "dataset_config.max_tokens", "must be >= 0 (0: sentence batches)")
        _require(self.max_static_shapes is None or self.max_static_shapes >= 0, "dataset_config.max_static_shapes",
                 "must be >= 0 (0: every batch through the dynamic-shape graph) or null")
        bounds = self.bucket_boundaries
        key = "dataset_config.bucket_boundaries"
        _require(all(b > 0 for b in bounds), key, f"must be positive, got {list(bounds)}")
        increasing = all(a < b for a, b in zip(bounds, bounds[1:], strict=False))
        _require(increasing, key, "must be strictly increasing")
        _require(all(b <= self.max_len for b in bounds), key, f"must not exceed max_len={self.max_len}")
        _require(0.0 <= self.mix_ratio < 1.0, "dataset_config.mix_ratio", "must lie in [0, 1)")
        _require(self.mix_from_step >= 0, "dataset_config.mix_from_step", "must be >= 0")
        _require(not self.mix_ratio or self.mix_dataset, "dataset_config.mix_ratio",
                 "needs dataset_config.mix_dataset")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The encoder-decoder Transformer (see ``src/transformer``)."""

    random_seed: int = 100
    vocab_size: int | None = 45744  # null: the size of the dictionary the run is given
    hidden_size: int = 1024
    num_hidden_layers: int = 6  # encoder layers
    num_decoder_layers: int = 6
    num_attention_heads: int = 8
    intermediate_size: int = 4096
    hidden_act: Literal["relu", "gelu"] = "relu"
    hidden_dropout_prob: float = 0.2
    attention_dropout_prob: float = 0.2
    max_position_embeddings: int = 64
    initializer_range: float = 0.0  # std of the embedding init; 0 means hidden_size ** -0.5
    compute_type: Literal["auto", "float32", "float16"] = "auto"  # auto: float32 on CPU, float16 elsewhere
    hide_masked_source_from_decoder: bool = True  # cross-attention ignores <mask> source positions (MASS)
    label_smoothing: float = 0.1
    vocab_sha256: str | None = None  # identity of the vocabulary (Dictionary.digest); train.py sets it

    def __post_init__(self):
        for key in ("hidden_size", "num_hidden_layers", "num_decoder_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings"):
            _require(getattr(self, key) > 0, f"model_config.{key}", "must be positive")
        _require(self.vocab_size is None or self.vocab_size > 5, "model_config.vocab_size",
                 "must exceed the 5 special tokens")
        _require(self.hidden_size % self.num_attention_heads == 0, "model_config.hidden_size",
                 f"{self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}")
        _require(self.hidden_size % 2 == 0, "model_config.hidden_size", "must be even (sinusoid table)")
        for key in ("hidden_dropout_prob", "attention_dropout_prob", "label_smoothing"):
            _require(0.0 <= getattr(self, key) < 1.0, f"model_config.{key}", "must lie in [0, 1)")
        _require(self.initializer_range >= 0.0, "model_config.initializer_range", "must be >= 0")


@dataclasses.dataclass(frozen=True)
class MaskConfig:
    """How pre-training examples are masked (``src/language_model``)."""

    mask_type: Literal["mass", "loose", "bert"] = "mass"
    mask_ratio: float = 0.5  # fragment length / sentence length
    start_probs: tuple[float, ...] = (0.2, 0.2, 0.6)  # fragment starts at 0 / at the end / anywhere
    replace_probs: tuple[float, ...] = (0.8, 0.1, 0.1)  # a fragment token becomes <mask> / random / kept
    # the decoder's input tokens become <mask> / random / kept (ModelZoo: [0.1, 0.1, 0.8]); mask_type mass only
    decoder_replace_probs: tuple[float, ...] = (0.0, 0.0, 1.0)
    noise_prob: float = 0.0  # fine-tuning source noise (noise channel language model)

    def __post_init__(self):
        _require(0.0 < self.mask_ratio <= 1.0, "mask_config.mask_ratio", "must lie in (0, 1]")
        _require(0.0 <= self.noise_prob < 1.0, "mask_config.noise_prob", "must lie in [0, 1)")
        _check_probs(self.start_probs, "mask_config.start_probs", 3)
        _check_probs(self.replace_probs, "mask_config.replace_probs", 3)
        _check_probs(self.decoder_replace_probs, "mask_config.decoder_replace_probs", 3)
        _require(self.mask_type == "mass" or tuple(self.decoder_replace_probs) == (0.0, 0.0, 1.0),
                 "mask_config.decoder_replace_probs", f"applies to mask_type mass only, not {self.mask_type}")


@dataclasses.dataclass(frozen=True)
class LossScaleConfig:
    loss_scale_mode: Literal["dynamic", "static", "none"] = "dynamic"
    init_loss_scale: float = 65536.0
    loss_scale_factor: float = 2.0
    scale_window: int = 200  # overflow-free steps before a dynamic scale grows

    def __post_init__(self):
        _require(self.init_loss_scale >= 1.0, "loss_scale_config.init_loss_scale", "must be >= 1")
        _require(self.loss_scale_factor > 1.0, "loss_scale_config.loss_scale_factor", "must be > 1")
        _require(self.scale_window > 0, "loss_scale_config.scale_window", "must be positive")


@dataclasses.dataclass(frozen=True)
class LearnRateConfig:
    """Optimizer and schedule; the schedules are ``src/training/lr_scheduler.py``."""

    optimizer: Literal["adam", "momentum", "lamb"] = "adam"
    lr: float = 1e-4  # peak learning rate
    lr_scheduler: Literal["poly", "isr", "constant"] = "poly"
    poly_lr_scheduler_power: float = 0.5
    decay_steps: int = 10000  # poly: steps from the peak down to min_lr
    warmup_steps: int = 4000
    min_lr: float = 1e-6
    weight_decay: float = 0.0  # not applied to biases, LayerNorm parameters or the embedding
    clip_norm: float = 1.0  # global gradient-norm clipping; 0 disables it
    grad_accumulation_steps: int = 1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-8
    momentum: float = 0.9  # the momentum optimizer's coefficient

    def __post_init__(self):
        _require(self.lr > 0.0, "learn_rate_config.lr", "must be positive")
        _require(0.0 <= self.min_lr <= self.lr, "learn_rate_config.min_lr", "must lie in [0, lr]")
        _require(self.poly_lr_scheduler_power > 0.0, "learn_rate_config.poly_lr_scheduler_power",
                 "must be positive")
        _require(self.decay_steps > 0, "learn_rate_config.decay_steps", "must be positive")
        _require(self.warmup_steps >= 0, "learn_rate_config.warmup_steps", "must be >= 0")
        _require(self.weight_decay >= 0.0, "learn_rate_config.weight_decay", "must be >= 0")
        _require(self.clip_norm >= 0.0, "learn_rate_config.clip_norm", "must be >= 0")
        _require(self.grad_accumulation_steps > 0, "learn_rate_config.grad_accumulation_steps",
                 "must be positive")
        for key in ("adam_beta1", "adam_beta2", "momentum"):
            _require(0.0 <= getattr(self, key) < 1.0, f"learn_rate_config.{key}", "must lie in [0, 1)")
        _require(self.adam_epsilon > 0.0, "learn_rate_config.adam_epsilon", "must be positive")


@dataclasses.dataclass(frozen=True)
class CheckpointOptions:
    existed_ckpt: str = ""  # .ckpt or .npz to start from ("" = fresh initialisation)
    save_ckpt_steps: int = 2500
    keep_ckpt_max: int = 50
    ckpt_prefix: str = "ckpt"
    ckpt_path: str = "checkpoints"
    log_every_steps: int = 100
    eval_every_steps: int = 2500  # 0: validate only at the end of each epoch
    # regular expressions (re.search) over parameter names: the matching parameters keep their fresh
    # initialisation when existed_ckpt is loaded, e.g. ["^decoder_layers\\.", "^decoder_norm\\."] transfers
    # the encoder and the embeddings only
    existed_ckpt_skip: tuple[str, ...] = ()
    # what chooses <prefix>_best.ckpt: "loss" (the validation loss), or (pair data) a metric of
    # src/evaluation/scorers.py over the beam-search outputs for the first valid_rouge_lines validation
    # pairs (references: their target ids): "rouge" (the mean of ROUGE-1/2/L F1), "bleu", "chrf", ...
    best_by: str = "loss"
    valid_rouge_lines: int = 300

    def __post_init__(self):
        for key in ("save_ckpt_steps", "keep_ckpt_max", "log_every_steps", "valid_rouge_lines"):
            _require(getattr(self, key) > 0, f"checkpoint_options.{key}", "must be positive")
        _require(self.eval_every_steps >= 0, "checkpoint_options.eval_every_steps", "must be >= 0")
        _require(bool(self.ckpt_prefix), "checkpoint_options.ckpt_prefix", "must not be empty")
        _require(bool(re.fullmatch(r"[a-z][a-z0-9_]*", self.best_by)), "checkpoint_options.best_by",
                 "must be loss or a metric name (rouge, bleu, chrf, ...)")
        for i, pattern in enumerate(self.existed_ckpt_skip):
            try:
                re.compile(pattern)
            except re.error as exc:
                _fail(f"checkpoint_options.existed_ckpt_skip[{i}]", f"not a regular expression ({exc})")


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """Beam search. The maximum output length is ``max_decode_length_a * src_len + max_decode_length_b``."""

    beam_width: int = 4
    length_penalty_weight: float = 1.0
    length_penalty_type: Literal["gnmt", "power"] = "gnmt"  # ((5 + len) / 6) ** w  or  len ** w
    min_decode_length: int = 0
    max_decode_length_a: float = 0.0
    max_decode_length_b: int = 64
    no_repeat_ngram_size: int = 0  # 0 disables the constraint
    n_best: int = 1

    def __post_init__(self):
        _require(self.beam_width > 0, "decode_config.beam_width", "must be positive")
        _require(0 < self.n_best <= self.beam_width, "decode_config.n_best", "must lie in [1, beam_width]")
        for key in ("length_penalty_weight", "min_decode_length", "max_decode_length_a",
                    "no_repeat_ngram_size"):
            _require(getattr(self, key) >= 0, f"decode_config.{key}", "must be >= 0")
        _require(self.max_decode_length_b >= 1 or self.max_decode_length_a > 0,
                 "decode_config.max_decode_length_b", "the maximum decode length must be positive")


@dataclasses.dataclass(frozen=True)
class MassConfig:
    dataset_config: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    model_config: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    mask_config: MaskConfig = dataclasses.field(default_factory=MaskConfig)
    loss_scale_config: LossScaleConfig = dataclasses.field(default_factory=LossScaleConfig)
    learn_rate_config: LearnRateConfig = dataclasses.field(default_factory=LearnRateConfig)
    checkpoint_options: CheckpointOptions = dataclasses.field(default_factory=CheckpointOptions)
    decode_config: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)

    def __post_init__(self):
        data, model = self.dataset_config, self.model_config
        longest = max(data.max_len, data.max_tgt_len)
        _require(model.max_position_embeddings >= longest, "model_config.max_position_embeddings",
                 f"{model.max_position_embeddings} rows cannot hold max_len/max_tgt_len {longest}")
        decode = self.decode_config
        _require(decode.min_decode_length < model.max_position_embeddings, "decode_config.min_decode_length",
                 f"{decode.min_decode_length} cannot be met within the model's {model.max_position_embeddings} "
                 "positions (a hypothesis ends there)")
        _require(decode.max_decode_length_a > 0 or decode.min_decode_length <= decode.max_decode_length_b,
                 "decode_config.min_decode_length", f"{decode.min_decode_length} exceeds max_decode_length_b "
                 f"{decode.max_decode_length_b}: no hypothesis could reach it")

    # construction -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> MassConfig:
        """Build and validate a config; ``source`` (a file name) is quoted in error messages."""
        try:
            return _build(cls, data, prefix="")
        except UserError as exc:
            raise UserError(f"{source}: {exc}" if source else str(exc)) from None

    @classmethod
    def from_json(cls, path) -> MassConfig:
        path = require_file(path, "config file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))

    def override(self, args) -> MassConfig:
        """Return a new config with ``--section.key=value`` overrides applied (values parsed as JSON).

        A value that is not JSON is taken as a plain string, so ``--dataset_config.test_dataset=/d/t``
        needs no quotes; ``--x.y=null`` sets None where None is allowed.
        """
        data = self.to_dict()
        for arg in args:
            section, key, value = _parse_override(arg)
            if section not in data:
                raise UserError(f"{arg}: unknown config section '{section}'")
            if key not in data[section]:
                raise UserError(f"{arg}: unknown config key '{section}.{key}'")
            data[section][key] = value
        return MassConfig.from_dict(data, source="command line")

    def replace(self, section: str, **values) -> MassConfig:
        """A new config with ``values`` set in ``section`` (typed Python values, validated like a file:
        ``cfg.replace("model_config", vocab_size=10000)``); an unknown section or key is a UserError.

        >>> MassConfig().replace("learn_rate_config", lr=1e-3).learn_rate_config.lr
        0.001
        """
        data = self.to_dict()
        if section not in data:
            raise UserError(f"unknown config section '{section}'")
        unknown = sorted(set(values) - set(data[section]))
        if unknown:
            raise UserError(f"unknown config key(s) {', '.join(f'{section}.{k}' for k in unknown)}")
        data[section].update({key: _to_plain(value) for key, value in values.items()})
        return MassConfig.from_dict(data, source="the program")

    # output -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return _to_plain(self)

    def to_json_text(self) -> str:
        """JSON with one key per line and lists kept on their line (``"start_probs": [0.2, 0.2, 0.6]``)."""
        sections = []
        for section, values in self.to_dict().items():
            lines = [f"    {json.dumps(key)}: {json.dumps(value)}" for key, value in values.items()]
            sections.append(f"  {json.dumps(section)}: {{\n" + ",\n".join(lines) + "\n  }")
        return "{\n" + ",\n".join(sections) + "\n}\n"

    def to_json(self, path) -> Path:
        path = Path(path)
        with atomic_open(path) as handle:
            handle.write(self.to_json_text())
        return path


def with_vocab_size(cfg: MassConfig, vocab_size: int, source: str) -> MassConfig:
    """``cfg`` with ``model_config.vocab_size`` set to ``vocab_size`` when it is null; a UserError when it
    is set to something else (``source`` says where ``vocab_size`` came from)."""
    configured = cfg.model_config.vocab_size
    if configured is None:
        return cfg.replace("model_config", vocab_size=vocab_size)
    if configured != vocab_size:
        raise UserError(f"model_config.vocab_size is {configured} but {source} has {vocab_size} symbols")
    return cfg


# model_config keys that shape the weights or what they compute: a checkpoint works only with its own values
# (the vocabulary's identity is compared by src/dataset/identity.py). The other model_config keys
# (dropout, compute_type, label_smoothing, random_seed, initializer_range, hide_masked_source_from_decoder)
# and every other section (decode_config, dataset_config, ...) may differ when a checkpoint is evaluated.
WEIGHT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_decoder_layers", "num_attention_heads",
               "intermediate_size", "hidden_act", "max_position_embeddings")
# with existed_ckpt_skip, parts of the model are fresh and may have other shapes: only the keys that change
# what the loaded weights compute without changing their shapes are compared
MEANING_KEYS = ("num_attention_heads", "hidden_act")


def model_differences(stored: dict, given: ModelConfig, keys=WEIGHT_KEYS) -> list[str]:
    """``model_config.<key>: <given> here, <stored> in the checkpoint`` for each of ``keys`` whose values
    differ (``stored``: a checkpoint's model_config section as a dict; a null on either side is not
    compared).

    >>> model_differences({"num_attention_heads": 2, "hidden_size": 16}, ModelConfig(hidden_size=16,
    ...                   num_attention_heads=4))
    ['model_config.num_attention_heads: 4 here, 2 in the checkpoint']
    """
    found = []
    for key in keys:
        mine, theirs = getattr(given, key), stored.get(key)
        if mine is not None and theirs is not None and mine != theirs:
            found.append(f"model_config.{key}: {mine} here, {theirs} in the checkpoint")
    return found


def resolve_compute_type(compute_type: str, device_target: str) -> str:
    """``auto`` becomes float32 on CPU (float16 is slow or unsupported there) and float16 elsewhere."""
    if compute_type != "auto":
        return compute_type
    return "float32" if device_target.upper() == "CPU" else "float16"


def _parse_override(arg: str):
    if not arg.startswith("--") or "=" not in arg:
        raise UserError(f"{arg}: expected --section.key=value")
    name, text = arg[2:].split("=", 1)
    if name.count(".") != 1:
        raise UserError(f"{arg}: expected --section.key=value")
    section, key = name.split(".")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return section, key, value


def _build(cls, data, prefix: str):
    if not isinstance(data, dict):
        _fail(prefix.rstrip(".") or "config", f"expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in names]
    if unknown:
        _fail(prefix + unknown[0], f"unknown key (known: {', '.join(names)})")
    values = {}
    for name in names:
        if name in data:
            values[name] = _convert(hints[name], data[name], prefix + name)
    return cls(**values)


def _convert(kind, value, key: str):
    """Check ``value`` against the declared type ``kind`` and return it in its stored form."""
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, prefix=key + ".")
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key)
    if origin is Literal:
        _require(value in args, key, f"expected one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        _require(isinstance(value, list | tuple), key, f"expected a list, got {value!r}")
        return tuple(_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    return _convert_scalar(kind, value, key)


def _convert_scalar(kind, value, key: str):
    if kind is bool:
        _require(isinstance(value, bool), key, f"expected true or false, got {value!r}")
    elif kind is int:
        _require(isinstance(value, int) and not isinstance(value, bool), key,
                 f"expected an integer, got {value!r}")
    elif kind is float:
        _require(isinstance(value, int | float) and not isinstance(value, bool), key,
                 f"expected a number, got {value!r}")
        _require(math.isfinite(value), key, f"expected a finite number, got {value!r}")
        return float(value)
    elif kind is str:
        _require(isinstance(value, str), key, f"expected a string, got {value!r}")
    else:  # pragma: no cover - a declaration error, not a user error
        raise TypeError(f"{key}: unsupported config type {kind}")
    return value


def _to_plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(item) for item in obj]
    return obj
