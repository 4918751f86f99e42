"""Loaders over MindRecord datasets: shuffle, sharding, masking in ``map``, length bucketing, padding.

Every loader yields batches of :data:`src.dataset.schema.BATCH_COLUMNS`, int32 and right-padded with
``<pad>`` = 0, ready for the model. Pre-training masks are drawn in ``map`` from a generator seeded by
(seed, epoch, example index): a new mask every epoch, the same one when a run is resumed.
"""

import logging
from pathlib import Path

import numpy as np

from config.config import MaskConfig
from src.dataset import schema
from src.dataset.batching import cut, pad_batch, pad_width, round_up
from src.dataset.modelzoo import modelzoo_transform
from src.dataset.writer import MANIFEST_SUFFIX, dataset_files, read_manifest
from src.language_model import example_rng, get_masker
from src.language_model.noise_channel_language_model import add_noise, pair_example
from src.text.dictionary import PAD_ID
from src.utils.errors import UserError

logger = logging.getLogger(__name__)



def resolve_datasets(spec) -> list[Path]:
    """Dataset paths from a path, a folder (every finished dataset in it) or a comma-separated list."""
    if isinstance(spec, (list, tuple)):
        items = [Path(s) for s in spec]
    else:
        items = [Path(s.strip()) for s in str(spec).split(",") if s.strip()]
    paths = []
    for item in items:
        if item.is_dir():
            found = sorted(Path(str(m)[: -len(MANIFEST_SUFFIX)]) for m in item.glob("*" + MANIFEST_SUFFIX))
            if not found:
                raise UserError(f"{item}: no finished dataset (*{MANIFEST_SUFFIX}) in this folder")
            paths.extend(found)
        else:
            read_manifest(item)  # raises a UserError naming the path if it is not a finished dataset
            paths.append(item)
    if not paths:
        raise UserError(f"no dataset given ({spec!r})")
    return paths


def as_batch_columns(example) -> tuple:
    """A MaskedExample in the order of ``schema.BATCH_COLUMNS``, as int32 arrays."""
    ordered = (example.encoder_input, example.decoder_input, example.decoder_positions,
               example.decoder_output)
    return tuple(np.asarray(a, dtype=np.int32) for a in ordered)


DATA_ERROR = "[dataset error] "  # marks our messages inside MindSpore's wrapping of a pipeline exception


def check_ids(ids, vocab_size, index, what="ids"):
    """An example whose ids exceed the vocabulary (a manifest that claims a smaller vocabulary than the
    data uses) would fail deep inside the model: refuse it here, naming the example."""
    if vocab_size and len(ids) and int(np.max(ids)) >= vocab_size:
        raise ValueError(f"{DATA_ERROR}example {int(index)}: {what} holds id {int(np.max(ids))}, outside the "
                         f"vocabulary of {vocab_size} symbols its manifest declares")


def data_error(exc: BaseException) -> UserError | None:
    """The UserError behind a MindSpore pipeline RuntimeError raised by :func:`check_ids`, if it is one."""
    text = str(exc)
    if DATA_ERROR not in text:
        return None
    return UserError(text.split(DATA_ERROR, 1)[1].splitlines()[0])


class MonoTransform:
    """``(ids, index) -> batch columns`` for one pre-training example (dynamic masking)."""

    def __init__(self, vocab_size, seed, epoch, mask: MaskConfig):
        self.vocab_size, self.seed, self.epoch, self.mask = vocab_size, seed, epoch, mask
        self.masker = get_masker(mask.mask_type)

    def __call__(self, ids, index):
        check_ids(ids, self.vocab_size, index)
        noise = {"decoder_replace_probs": self.mask.decoder_replace_probs} if self.mask.mask_type == "mass" else {}
        example = self.masker(ids, rng=example_rng(self.seed, self.epoch, int(index)),
                              vocab_size=self.vocab_size, mask_ratio=self.mask.mask_ratio,
                              start_probs=self.mask.start_probs, replace_probs=self.mask.replace_probs, **noise)
        return as_batch_columns(example)


class PairTransform:
    """``(source_ids, target_ids, index) -> batch columns``.

    Sources and targets longer than the model's caps are cut (keeping the final ``</s>``); that only
    happens for test sets, which keep every line. With ``noise_prob`` (training), source tokens become
    ``<mask>`` with that probability, drawn anew every epoch from (seed, epoch, index).
    """

    def __init__(self, max_src_len=None, max_tgt_len=None, noise_prob=0.0, seed=1, epoch=0, vocab_size=None):
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        self.noise_prob, self.seed, self.epoch, self.vocab_size = noise_prob, seed, epoch, vocab_size

    def __call__(self, source, target, index):
        check_ids(source, self.vocab_size, index, "the source")
        check_ids(target, self.vocab_size, index, "the target")
        source = cut(source, self.max_src_len)
        if self.noise_prob > 0:
            source = add_noise(source, rng=example_rng(self.seed, self.epoch, int(index)), prob=self.noise_prob)
        return as_batch_columns(pair_example(source, cut(target, self.max_tgt_len)))


def load_dataset(datasets, *, batch_size, vocab_size=None, epoch=0, seed=1, mask: MaskConfig = None,
                 shuffle=True, num_shards=None, shard_id=None, bucket_boundaries=None, pad_multiple=8,
                 drop_remainder=False, max_src_len=None, max_tgt_len=None, noise_prob=0.0, skip_batches=0,
                 num_parallel_workers=1, max_tokens=0, round_robin=None):
    """A MindSpore dataset of padded batches from finished datasets (see :func:`resolve_datasets`).

    The dataset kind (pre-training, pairs, ModelZoo static) is read from the manifests; all the given
    datasets must be of one kind. ``bucket_boundaries`` groups examples of similar source length into
    the same batch (fewer pad tokens); ``pad_multiple`` rounds every padded length up so the jit-compiled
    step sees few distinct shapes. ``skip_batches`` resumes inside an epoch. ``noise_prob`` masks pair
    sources dynamically (fine-tuning).
    ``max_tokens`` > 0 batches by tokens (see :func:`token_batch_sizes`). ``round_robin=(rank, ranks)``
    batches the whole data identically on every rank and gives rank ``r`` batch ``r`` of every complete
    group of ``ranks`` consecutive batches (a :class:`RoundRobin`): every rank gets the same number of
    batches, bucketed or not; ``skip_batches`` then counts this rank's batches.
    """
    import mindspore.dataset as ds

    paths = resolve_datasets(datasets)
    manifests = [read_manifest(p) for p in paths]
    kinds = {m["kind"] for m in manifests}
    if len(kinds) != 1:
        found = {str(p): m["kind"] for p, m in zip(paths, manifests, strict=True)}
        raise UserError(f"datasets of different kinds cannot be mixed: {found}")
    kind = kinds.pop()
    vocab_size = vocab_size or max(m["vocab_size"] for m in manifests)
    files = [f for p in paths for f in dataset_files(p)]

    ds.config.set_seed(int(seed) * 1009 + int(epoch))  # a new, reproducible order every epoch
    columns, transform = _columns_and_transform(kind, vocab_size, seed, epoch, mask, max_src_len, max_tgt_len,
                                                noise_prob)
    data = ds.MindDataset(files, columns_list=list(columns), shuffle=shuffle, num_shards=num_shards,
                          shard_id=shard_id, num_parallel_workers=num_parallel_workers)
    data = data.map(operations=transform, input_columns=list(columns),
                    output_columns=list(schema.BATCH_COLUMNS), num_parallel_workers=num_parallel_workers)
    data = data.project(list(schema.BATCH_COLUMNS))
    data = _batch(data, batch_size, bucket_boundaries, pad_multiple, drop_remainder, max_tokens, max_src_len)
    ranks = round_robin[1] if round_robin else 1
    if skip_batches:
        data = data.skip(skip_batches * ranks)
    return RoundRobin(data, *round_robin) if ranks > 1 else data


class RoundRobin:
    """Rank ``rank``'s share of a batch stream that every rank builds alike: batch ``rank`` of each
    complete group of ``ranks`` consecutive batches (the last, incomplete group is dropped), so that all
    ranks take the same number of steps whatever the batching. Iterated like a MindSpore dataset."""

    def __init__(self, data, rank: int, ranks: int):
        if not 0 <= rank < ranks:
            raise ValueError(f"rank {rank} outside 0..{ranks - 1}")
        self.data, self.rank, self.ranks = data, rank, ranks

    def create_tuple_iterator(self, **kwargs):
        return self._turns(self.data.create_tuple_iterator(**kwargs))

    def create_dict_iterator(self, **kwargs):
        return self._turns(self.data.create_dict_iterator(**kwargs))

    def _turns(self, batches):
        group = []
        for batch in batches:
            group.append(batch)
            if len(group) == self.ranks:
                yield group[self.rank]
                group = []


def token_batch_sizes(boundaries, max_len: int, pad_multiple: int, max_tokens: int) -> list[int]:
    """Examples per batch of each source-length bucket (``bucket_batch_by_length``'s ``boundaries``, and
    one bucket past the last, up to ``max_len``) for batches of at most ``max_tokens`` source tokens,
    padding included: ``max_tokens // (the bucket's widest padded source)``, at least 1.

    >>> token_batch_sizes([16, 32, 48], 64, 8, 4096)
    [256, 128, 85, 64]
    """
    uppers = [b - 1 for b in boundaries] + [max_len]  # the longest source of each bucket
    return [max(1, max_tokens // max(1, round_up(u, pad_multiple))) for u in uppers]


def _columns_and_transform(kind, vocab_size, seed, epoch, mask, max_src_len, max_tgt_len, noise_prob):
    if kind == schema.KIND_MONO:
        return (schema.IDS, schema.INDEX), MonoTransform(vocab_size, seed, epoch, mask or MaskConfig())
    if kind == schema.KIND_PAIR:
        return ((schema.SOURCE_IDS, schema.TARGET_IDS, schema.INDEX),
                PairTransform(max_src_len, max_tgt_len, noise_prob, seed, epoch, vocab_size))
    return schema.MODELZOO_COLUMNS, modelzoo_transform


def _batch(data, batch_size, bucket_boundaries, pad_multiple, drop_remainder, max_tokens=0, max_len=None):
    columns = list(schema.BATCH_COLUMNS)
    if max_tokens:
        if not max_len:
            raise ValueError("token batches need the source length cap (max_src_len)")
        if not bucket_boundaries:  # every padded width its own bucket
            bucket_boundaries = list(range(pad_multiple + 1, max_len + 1, pad_multiple))
        sizes = token_batch_sizes(sorted(int(b) for b in bucket_boundaries), max_len, pad_multiple, max_tokens)
    else:
        sizes = None

    def pad_fn(src_ids, dec_in_ids, dec_positions, tgt_ids, batch_info):  # one list per column
        del batch_info
        return tuple(pad_batch((src_ids, dec_in_ids, dec_positions, tgt_ids), pad_multiple))

    if not bucket_boundaries:
        return data.batch(batch_size, drop_remainder=drop_remainder, per_batch_map=pad_fn,
                          input_columns=columns, output_columns=columns)
    boundaries = sorted(int(b) for b in bucket_boundaries)
    data = data.bucket_batch_by_length(
        column_names=[schema.SRC_IDS], bucket_boundaries=boundaries,
        bucket_batch_sizes=sizes or [batch_size] * (len(boundaries) + 1),
        pad_info={c: (None, PAD_ID) for c in columns}, drop_remainder=drop_remainder)

    def round_fn(src_ids, dec_in_ids, dec_positions, tgt_ids):
        return tuple(pad_width(b, pad_multiple) for b in (src_ids, dec_in_ids, dec_positions, tgt_ids))

    return data.map(operations=round_fn, input_columns=columns, output_columns=columns)


def load_from_config(cfg, datasets, *, epoch, shuffle, rank=0, group_size=1, skip_batches=0, training=True):
    """The batches of one epoch of ``datasets`` for this rank, as configured.

    Under data parallel every rank must get the same number of batches (their steps are matched by the
    gradient all-reduce). Sentence batches without buckets shard the examples (each rank reads its
    own); with length buckets or token batches, whose count a shard would change, every rank batches
    all of the data alike and takes its turn of each group of batches (:class:`RoundRobin`).
    """
    data, mask = cfg.dataset_config, cfg.mask_config
    buckets = list(data.bucket_boundaries)
    shard = group_size > 1 and not buckets and not data.max_tokens
    return load_dataset(
        datasets, batch_size=data.batch_size, vocab_size=cfg.model_config.vocab_size, epoch=epoch,
        seed=cfg.model_config.random_seed, shuffle=shuffle and data.shuffle,
        mask=mask,
        num_shards=group_size if shard else None, shard_id=rank if shard else None,
        round_robin=(rank, group_size) if group_size > 1 and not shard else None,
        bucket_boundaries=buckets, max_src_len=data.max_len, max_tokens=data.max_tokens,
        max_tgt_len=data.max_tgt_len, noise_prob=mask.noise_prob if training else 0.0,
        skip_batches=skip_batches, num_parallel_workers=data.num_parallel_workers, pad_multiple=data.pad_multiple)


def dataset_size(datasets) -> int:
    """Number of examples in the given finished datasets, from their manifests."""
    return sum(read_manifest(p)["examples"] for p in resolve_datasets(datasets))
