"""Validation by generation: beam search over a fixed set of validation pairs, scored by a scorer of
the registry (:mod:`src.evaluation.scorers`).

Teacher-forced validation loss favours a model that is a good language model; what a headline or
translation system is for is the text it generates. With ``checkpoint_options.best_by`` naming a scorer
(``rouge``, ``bleu``, ``chrf``, ...) the trainer decodes the first ``valid_rouge_lines`` pairs of the
validation set (by line index: the same pairs at every validation) with the run's ``decode_config`` and
keeps ``<prefix>_best.ckpt`` by the scorer's criterion (ROUGE: the mean of ROUGE-1/2/L F1, rouge-score
with stemming; BLEU, chrF: sacrebleu's corpus score). Hypotheses and references are compared as tokens,
BPE removed: the references are the pairs' target ids, so a reference word outside the vocabulary counts
as ``<unk>``. The copy rates (:mod:`src.evaluation.copy_rate`) of hypotheses and references are logged
with them.
"""

import logging
import time

import numpy as np

from src.evaluation.decode_score import best_texts, score_texts
from src.utils.errors import UserError

logger = logging.getLogger(__name__)


def first_pairs(datasets, lines: int, max_src_len: int, metric: str = "rouge") -> tuple[list, list]:
    """``(source ids, target ids)`` of the first ``lines`` pairs (by index) of the pair datasets."""
    import mindspore.dataset as ds

    from src.dataset import schema
    from src.dataset.batching import cut
    from src.dataset.load_dataset import resolve_datasets
    from src.dataset.writer import dataset_files, read_manifest

    sources, targets = [], []
    for path in resolve_datasets(datasets):
        if read_manifest(path)["kind"] != schema.KIND_PAIR:
            continue
        data = ds.MindDataset(dataset_files(path), columns_list=[schema.SOURCE_IDS, schema.TARGET_IDS, schema.INDEX],
                              shuffle=False, num_parallel_workers=1)
        rows = sorted(((int(i), s, t) for s, t, i in data.create_tuple_iterator(output_numpy=True, num_epochs=1)),
                      key=lambda row: row[0])
        for _, source, target in rows[: lines - len(sources)]:
            sources.append(cut(np.asarray(source), max_src_len))
            targets.append(np.asarray(target))
        if len(sources) >= lines:
            break
    if not sources:
        raise UserError(f"best_by {metric}: no validation pair in {datasets}")
    return sources, targets


class GenerationValidator:
    """Decodes the same validation sources at every call and scores them against their targets with
    ``scorer`` (a :class:`src.evaluation.scorers.Scorer`)."""

    def __init__(self, sources, targets, dictionary, decode_config, batch_size: int, scorer):
        from src.transformer.search_settings import SearchSettings

        self.sources, self.dictionary, self.scorer = sources, dictionary, scorer
        self.references = [self.words(t) for t in targets]
        self.source_words = [self.words(s) for s in sources]
        self.settings = SearchSettings.from_decode_config(decode_config)
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, cfg, datasets, scorer):
        from src.dataset.load_dataset import resolve_datasets
        from src.dataset.writer import read_manifest
        from src.text.dictionary import Dictionary

        opts = cfg.checkpoint_options
        sources, targets = first_pairs(datasets, opts.valid_rouge_lines, cfg.dataset_config.max_len, scorer.name)
        vocab = read_manifest(resolve_datasets(datasets)[0]).get("vocab_path", "")
        dictionary = Dictionary.load_from_persisted_dict(vocab) if vocab else None
        if dictionary is None:
            raise UserError(f"{datasets}: its manifest names no vocabulary, needed to score {scorer.name}")
        return cls(sources, targets, dictionary, cfg.decode_config, cfg.dataset_config.batch_size, scorer)

    def words(self, ids) -> str:
        return self.dictionary.decode(ids, strip_bpe=True)

    def __call__(self, network, **decode_overrides) -> dict:
        """Beam-search the sources with ``network`` (switched to eval mode and back) and score them:
        ``valid_<metric>`` (the criterion), ``valid_<figure>`` for each of the scorer's figures,
        ``valid_<metric>_pairs``, copy rates, mean lengths in words and the decoding time.
        ``decode_overrides`` (named like ``SearchSettings`` fields) replace the run's decode settings."""
        from src.transformer.generator import generate_stream

        was_training = network.training
        network.set_train(False)
        start = time.perf_counter()
        try:
            nbests = generate_stream(network, self.sources, self.settings.replace(**decode_overrides),
                                     batch_size=self.batch_size)
            hypotheses, _ = best_texts(nbests, self.words)
        finally:
            network.set_train(was_training)
        name, result = self.scorer.name, score_texts(self.scorer, hypotheses, self.references, self.source_words)
        copy = result["copy"]
        return {f"valid_{name}": result["criterion"],
                **{f"valid_{figure}": float(result["scores"][figure]) for figure in self.scorer.figures},
                f"valid_{name}_pairs": len(hypotheses),
                "valid_copy_rate": copy["hypothesis_copy_rate"], "valid_ref_copy_rate": copy["reference_copy_rate"],
                "valid_hyp_words": copy["hypothesis_words"], "valid_ref_words": copy["reference_words"],
                "valid_decode_seconds": time.perf_counter() - start}
