"""Evaluation of a trained model (eval.py): ROUGE of beam-search outputs with copy rates, teacher-forced
perplexity, or interactive generation; the report files.

ROUGE: the whole test set is decoded with beam search (decode_config), the hypotheses are de-BPE'd,
detokenized (or, with ``tokenized_output``, kept as tokens) and written one per line in source order.
They are scored against the raw reference file the test dataset was built from (its manifest's
"sources"; a BPE'd ``*_bpe*`` file is de-BPE'd the same way), or against ``test_ref``. PPL:
teacher-forced perplexity per subword and per word (src/evaluation/ppl_score.py). Either way a JSON
report goes to ``<output>.report.json`` and a summary table to ``<output>.summary.txt`` and stdout.
"""

import dataclasses
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from src.text.dictionary import EOS_ID
from src.utils.errors import UserError
from src.utils.fileio import atomic_open, check_output_file, count_lines, iter_lines, require_file

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalRequest:
    """What to evaluate and how: eval.py's options (see its --help)."""

    checkpoint: str = ""
    config: str = ""
    overrides: tuple = ()
    vocab: str = ""
    codes: str = ""
    metric: str = "rouge"
    output: str = "output/hypotheses.txt"
    test_dataset: str = ""
    test_src: str = ""
    test_ref: str = ""
    lowercase: bool = False
    hash_digits: bool = False
    tokenized_output: bool = False
    interactive: bool = False
    hypotheses: str = ""
    device_target: str = "CPU"
    device_id: int | None = None
    pynative: bool = False

    @classmethod
    def from_namespace(cls, args) -> "EvalRequest":
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def run_evaluation(args: EvalRequest, stdin=None, stdout=None) -> int:
    """Evaluate as requested: write the hypotheses (ROUGE), the report and the summary, or answer
    stdin line by line (interactive). The checkpoint is read once."""
    if args.hypotheses:  # scoring only: no model
        check_output_set(args, [args.hypotheses, args.test_ref])
        return score_hypotheses_file(args)
    from config.config import MassConfig

    user_cfg = MassConfig.from_json(args.config).override(list(args.overrides)) if args.config else None
    checkpoint = args.checkpoint or (user_cfg.checkpoint_options.existed_ckpt if user_cfg else "")
    if not checkpoint:
        raise UserError("no model: give --checkpoint (or --config with checkpoint_options.existed_ckpt)")
    require_file(checkpoint, "checkpoint")
    from src.evaluation.api import resolve_config
    from src.utils.checkpoint import read_model_file

    weights, state = read_model_file(checkpoint)
    cfg = resolve_config(state, checkpoint, user_cfg, () if user_cfg else args.overrides,
                         config_name=f"--config {args.config}" if user_cfg else None)
    test_dataset = "" if args.test_src or args.interactive else (args.test_dataset or cfg.dataset_config.test_dataset)
    if not (args.interactive or args.test_src or test_dataset):
        raise UserError("nothing to evaluate: give --test_dataset (or dataset_config.test_dataset), --test_src "
                        "with --test_ref, or --interactive")
    from src.dataset.identity import check_model_vocabulary

    manifest = None
    if test_dataset:
        from src.dataset.schema import KIND_PAIR
        from src.dataset.writer import dataset_files, read_manifest

        manifest = read_manifest(test_dataset)
        dataset_files(test_dataset)  # complete, unchanged and readable, before the model is built
        if manifest.get("kind") != KIND_PAIR:
            raise UserError(f"{test_dataset}: a {manifest.get('kind')} dataset; evaluation needs a pair dataset")
        check_model_vocabulary(cfg.model_config.vocab_sha256, manifest.get("vocab_sha256"), checkpoint,
                               test_dataset)
    vocab = args.vocab or (manifest or {}).get("vocab_path", "")
    if not vocab:
        raise UserError("give the vocabulary with --vocab")
    if args.codes:
        require_file(args.codes, "BPE codes")
    check_pairing(args, manifest)
    if args.interactive:
        return evaluate(args, cfg, weights, checkpoint, vocab, test_dataset, manifest, stdin, stdout)
    inputs = [checkpoint, vocab, args.codes, args.test_src, args.test_ref, args.config]
    if test_dataset:
        from src.dataset.writer import dataset_files, manifest_path

        inputs += [*dataset_files(test_dataset), manifest_path(test_dataset)]
        inputs += [resolve_source_path(p, test_dataset) for p in (manifest or {}).get("sources") or [] if p]
    check_output_set(args, inputs)  # before minutes of decoding
    from src.utils.output_lock import hold

    with hold(args.output):  # one evaluation per hypotheses file: its report always describes it
        return evaluate(args, cfg, weights, checkpoint, vocab, test_dataset, manifest)


def evaluate(args: EvalRequest, cfg, weights, checkpoint, vocab, test_dataset, manifest, stdin=None,
             stdout=None) -> int:
    """The model built, then the interactive loop or the evaluation with its report."""
    from src.dataset.identity import check_model_vocabulary
    from src.evaluation.api import MassGenerator, build_model
    from src.text.dictionary import Dictionary
    from src.utils.device import setup_device

    dictionary = Dictionary.load_from_persisted_dict(vocab)
    check_model_vocabulary(cfg.model_config.vocab_sha256, dictionary.digest(), checkpoint, vocab)
    bpe = None
    if args.codes:
        from src.text.byte_pair_encoding import BytePairEncoder

        bpe = BytePairEncoder(args.codes)
    setup_device(args.device_target, args.device_id, mode="pynative" if args.pynative else "graph",
                 distributed=False)
    gen = MassGenerator(build_model(cfg, len(dictionary), weights, checkpoint), dictionary, cfg, bpe,
                        lowercase=args.lowercase, hash_digits=args.hash_digits)
    if gen.lowercase != args.lowercase or gen.hash_digits != args.hash_digits:
        logger.info("raw input normalised as the training text was: lowercase=%s hash_digits=%s", gen.lowercase,
                    gen.hash_digits)
    if args.interactive:
        return interactive(gen, stdin or sys.stdin, stdout or sys.stdout)
    info = {"checkpoint": str(checkpoint), "vocab": str(vocab), "device_target": args.device_target,
            "test_dataset": str(test_dataset) if test_dataset else None,
            "test_src": args.test_src or None}
    if args.metric == "ppl":
        report = evaluate_ppl(gen, args, test_dataset)
    else:
        report = evaluate_generation(gen, args, test_dataset, manifest)
    report = {"metric": args.metric, **info, **report}
    write_report(report, Path(args.output))
    return 0


def score_hypotheses_file(args: EvalRequest) -> int:
    """Score an existing hypotheses file against ``test_ref`` line by line with ``args.metric``'s scorer
    and write ``<output>.report.json`` / ``.summary.txt`` (the layout of a decoding run's report)."""
    from src.evaluation.scorers import get

    scorer = get(args.metric)
    hypotheses = [line for _, line in iter_lines(require_file(args.hypotheses, "--hypotheses"))]
    references = [line for _, line in iter_lines(require_file(args.test_ref, "--test_ref"))]
    if len(hypotheses) != len(references):
        raise UserError(f"{args.hypotheses}: {len(hypotheses)} lines for the {len(references)} references of "
                        f"{args.test_ref}: hypotheses and references must pair line by line")
    if not hypotheses:
        raise UserError(f"{args.hypotheses}: no line to score")
    output = Path(args.output)
    report = {"metric": args.metric, "hypotheses": str(args.hypotheses), "references": str(args.test_ref),
              "hypotheses_sha256": hashlib.sha256(Path(args.hypotheses).read_bytes()).hexdigest(),
              "pairs": len(hypotheses), "empty_references": count_empty_references(references, args.test_ref),
              scorer.report_key: scorer.score(hypotheses, references)}
    write_report(report, output)
    return 0


def check_pairing(args: EvalRequest, manifest: dict | None):
    """Sources and references pair line by line, for every metric: a count mismatch is an error now
    (never a silent score over the shorter list)."""
    if args.interactive:
        return
    if args.test_src:
        require_file(args.test_src, "--test_src")
        if not args.test_ref:
            raise UserError(f"--test_src {args.test_src} needs its references: give --test_ref")
        if count_lines(args.test_src) == 0:
            raise UserError(f"{args.test_src}: no test line: nothing to evaluate")
    if not args.test_ref:
        return
    n_ref = count_lines(require_file(args.test_ref, "--test_ref"))
    if args.test_src:
        n_src, source = count_lines(args.test_src), args.test_src
    else:
        n_src, source = manifest.get("stats", {}).get("lines", manifest["examples"]), "the test dataset"
    if n_ref != n_src:
        raise UserError(f"{args.test_ref}: {n_ref} lines for the {n_src} sources of {source}: sources and "
                        "references must pair line by line")


def output_set(output) -> list[Path]:
    """What an evaluation writes for ``--output``: the hypotheses file, its report and its summary."""
    output = Path(output)
    return [output, output.with_name(output.name + ".report.json"), output.with_name(output.name + ".summary.txt")]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_output_set(args: EvalRequest, inputs):
    """Before any work, a UserError when a file of the output set (``output_set``) cannot be written or is
    one of the ``inputs`` (an evaluation never overwrites what it reads), and when the hypotheses file
    beside the report would not be the one the report describes: a perplexity report writes no hypotheses
    (so ``--output`` must not hold any), a scoring-only report describes ``--hypotheses`` (so ``--output``
    must be absent or that very file)."""
    files = output_set(args.output)
    written = list(zip(files, ("--output (hypotheses file)", "the report (--output + .report.json)",
                               "the summary (--output + .summary.txt)"), strict=True))
    for path, what in written[1:] if args.hypotheses else written:  # scoring only writes no hypotheses
        for source in (Path(p) for p in inputs if p):
            if _same_file(path, source) or path.resolve() == source.resolve():
                raise UserError(f"{path}: {what} would overwrite an input of this evaluation ({source}): choose "
                                "another --output")
        check_output_file(path, what)
    output = files[0]
    if args.metric == "ppl" and not args.interactive and output.exists():
        raise UserError(f"{output}: exists; a perplexity evaluation writes no hypotheses, so its report beside "
                        "this file would not describe it: choose another --output (or remove the file)")
    if args.hypotheses and output.exists() and not _same_file(output, Path(args.hypotheses)):
        raise UserError(f"{output}: exists and is not --hypotheses {args.hypotheses}: the report beside it would "
                        "describe another file: choose another --output (or --output {args.hypotheses})")


# ---- interactive ------------------------------------------------------------------------------------------

def interactive(gen, stdin, stdout) -> int:
    """One generation per input line, printed as soon as it is ready (empty lines give empty outputs)."""
    for line in stdin:
        text = line.rstrip("\r\n")
        print(gen.generate([text])[0] if text.strip() else "", file=stdout, flush=True)
    return 0


# ---- ROUGE ------------------------------------------------------------------------------------------------

def source_cap(cfg) -> int:
    """The most source tokens a test line keeps: what the model was trained on (``dataset_config.max_len``,
    ``</s>`` included), within its position table."""
    return min(cfg.dataset_config.max_len, cfg.model_config.max_position_embeddings)


def cut_sources(sources, cap: int, where) -> tuple[list, int]:
    """``sources`` cut to ``cap`` tokens (src/dataset/batching.cut) and how many were longer: a WARNING in
    the log when any was (the report records the count too)."""
    from src.dataset.batching import cut

    longer = sum(len(s) > cap for s in sources)
    if longer:
        logger.warning("%s: %d test line(s) longer than the model's %d source positions (dataset_config.max_len) "
                       "were cut to %d tokens", where, longer, cap, cap)
    return [cut(np.asarray(s), cap) for s in sources], longer


def load_test_sources(gen, args, test_dataset) -> tuple[list, str | None, int]:
    """Per source line (index = line number), the source ids, cut to :func:`source_cap`; the dataset's
    reference file; and how many sources were cut."""
    cap = source_cap(gen.config)
    if args.test_src:
        sources = [gen.encode(line) for _, line in iter_lines(args.test_src)]
        if not sources:
            raise UserError(f"{args.test_src}: no test line: nothing to evaluate")
        sources, cut_count = cut_sources(sources, cap, args.test_src)
        return sources, None, cut_count
    import mindspore.dataset as ds

    from src.dataset import schema
    from src.dataset.writer import dataset_files, read_manifest

    data = ds.MindDataset(dataset_files(test_dataset), columns_list=[schema.SOURCE_IDS, schema.INDEX],
                          shuffle=False, num_parallel_workers=1)
    rows = {}
    for source, index in data.create_tuple_iterator(output_numpy=True, num_epochs=1):
        rows[int(index)] = np.asarray(source)
    size = max(rows) + 1 if rows else 0
    if not size:
        raise UserError(f"{test_dataset}: no test example: nothing to evaluate")
    missing = size - len(rows)
    if missing:
        logger.warning("%s: %d line(s) missing from the test set: their hypotheses are empty", test_dataset,
                       missing)
    empty = np.array([EOS_ID], dtype=np.int32)
    sources, cut_count = cut_sources([rows.get(i, empty) for i in range(size)], cap, test_dataset)  # as in training
    return sources, None if args.test_ref else dataset_reference(test_dataset, read_manifest(test_dataset)), cut_count


def dataset_reference(test_dataset, manifest) -> str | None:
    """The reference file the test set was built from (its manifest's second "sources" entry), checked: a
    manifest that records its sha256 (``source_files``, builds since the digests were recorded) must find the
    file unchanged, or the references would no longer be those of the test sources (edited, reordered, another
    file in its place): a UserError before anything is decoded or written. Older manifests hold the path as
    given to the build and no digest: see :func:`resolve_source_path`; the file is taken unverified (a
    WARNING), and refused when two different files could be meant."""
    paths = manifest.get("sources") or []
    if len(paths) < 2 or not paths[1]:
        return None
    if not isinstance(paths[1], str):
        raise UserError(f"{test_dataset}: its manifest's 'sources' must list file paths")
    ref = resolve_source_path(paths[1], test_dataset)
    records = manifest.get("source_files")
    record = records[1] if isinstance(records, list) and len(records) > 1 else None
    if record is None:
        return _unverified_reference(paths[1], ref, test_dataset)
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise UserError(f"{test_dataset}: its manifest's 'source_files' must hold a path, sha256 and line count "
                        "per source file")
    if not Path(ref).is_file():
        raise UserError(f"{ref}: not found: the reference file of the test set {test_dataset} was moved or "
                        "deleted: give it with --test_ref")
    from src.dataset.writer import file_sha256

    digest = file_sha256(ref)
    if digest != record["sha256"]:
        lines = f", {record['lines']} lines" if isinstance(record.get("lines"), int) else ""
        raise UserError(f"{ref}: changed since the test set {test_dataset} was built (sha256 {digest[:16]}..., "
                        f"{count_lines(ref)} lines; built from sha256 {record['sha256'][:16]}...{lines}): give the "
                        "right file with --test_ref")
    return ref


def _unverified_reference(recorded, ref, test_dataset) -> str:
    """The reference file of an old manifest (a path as given to the build, no digest)."""
    from src.dataset.writer import file_sha256

    candidates = {str(p) for p in _relative_candidates(recorded, test_dataset) if p.is_file()}
    if len(candidates) > 1 and len({file_sha256(p) for p in candidates}) > 1:
        raise UserError(f"{test_dataset}: its manifest names the reference file {recorded} relative to the folder "
                        f"of the build, and two different files could be meant ({' and '.join(sorted(candidates))}): "
                        "give the right file with --test_ref")
    logger.warning("%s: its manifest records no sha256 of its reference file (built before the digests were "
                   "recorded): %s is taken unverified; build the test set again or give --test_ref", test_dataset,
                   ref)
    return ref


def _relative_candidates(path, dataset) -> list:
    """Where a relative manifest path may be: beside the dataset's folder first, then the working folder."""
    path = Path(path)
    if path.is_absolute():
        return [path]
    return [Path(dataset).parent / path, path]


def resolve_source_path(path, dataset) -> str:
    """A manifest's source path. New builds record absolute paths: taken as they are (never a file that lies at
    the same relative path in another working folder). Older manifests hold the path as given to the build,
    relative to a working folder no longer known: taken beside the dataset's folder first, else in the working
    folder (:func:`dataset_reference` refuses a reference file when both hold different files)."""
    candidates = _relative_candidates(path, dataset)
    return str(next((p for p in candidates if p.is_file()), candidates[-1]))


def count_empty_references(references, where) -> int:
    """How many references are empty: a UserError when all are (no score means anything), a WARNING when
    some are (those pairs score 0 whatever the hypothesis; the report and summary record the count)."""
    empty = sum(1 for r in references if not r.split())
    if references and empty == len(references):
        raise UserError(f"{where}: every reference line is empty: nothing to score against")
    if empty:
        logger.warning("%s: %d of %d reference line(s) are empty: those pairs score 0", where, empty,
                       len(references))
    return empty


def read_references(path, from_bpe: bool, detokenized=True) -> list[str]:
    """Reference lines; a BPE'd file (``*_bpe*``) is de-BPE'd and detokenized like the hypotheses."""
    require_file(path, "reference file")
    lines = [line for _, line in iter_lines(path)]
    if not from_bpe:
        return lines
    from src.text.dictionary import strip_bpe
    from src.text.tokenizer import detokenize

    return [detokenize(strip_bpe(line).split()) if detokenized else strip_bpe(line) for line in lines]


def decode_all(gen, sources, detokenized=True) -> list[str]:
    """Best hypothesis text per source, in source order (``MassGenerator.hypotheses_stream``: every decoder
    step works on ``batch_size`` examples still searching; ``decode_score.best_texts``)."""
    start, every = time.time(), max(1, len(sources) // 20)
    done = 0

    def progress(_):
        nonlocal done
        done += 1
        if done % every == 0 or done == len(sources):
            logger.info("decoded %d/%d (%.1f sentences/s)", done, len(sources), done / (time.time() - start))

    from src.evaluation.decode_score import best_texts

    texts, lost = best_texts(gen.hypotheses_stream(sources, on_done=progress),
                             lambda tokens: gen.ids_to_text(tokens, detokenized))
    if lost:  # every candidate's score was NaN or -inf: a model that produces garbage
        logger.warning("%d source(s) got no hypothesis at all (the model's scores are not finite numbers): their "
                       "hypotheses are empty", lost)
    return texts


def evaluate_generation(gen, args, test_dataset, manifest) -> dict:
    """Decode the test sources, write the hypotheses, score them with ``args.metric``'s scorer
    (src/evaluation/scorers.py)."""
    from src.evaluation.scorers import get

    scorer = get(args.metric)
    sources, dataset_ref, cut_count = load_test_sources(gen, args, test_dataset)
    ref_path = args.test_ref or dataset_ref
    if not ref_path:
        raise UserError(f"{test_dataset}: its manifest names no reference file: give --test_ref")
    from_bpe = not args.test_ref and "_bpe" in Path(ref_path).name
    detokenized = not args.tokenized_output
    references = read_references(ref_path, from_bpe, detokenized)
    if len(references) != len(sources):
        raise UserError(f"{ref_path}: {len(references)} references for {len(sources)} test sources")
    empty_references = count_empty_references(references, ref_path)
    start = time.time()
    hypotheses = decode_all(gen, sources, detokenized)
    seconds = time.time() - start
    from src.evaluation.decode_score import score_texts

    source_words = [gen.vocab.decode(ids, strip_bpe=True) for ids in sources]
    result = score_texts(scorer, hypotheses, references, source_words)  # scored before anything is replaced
    output = Path(args.output)
    text = "".join(h + "\n" for h in hypotheses)
    for stale in output_set(output)[1:]:  # never an old report beside the new hypotheses, even if stopped here
        stale.unlink(missing_ok=True)
    with atomic_open(output) as handle:
        handle.write(text)
    return {"hypotheses": str(output), "references": str(ref_path), "references_de_bpe": from_bpe,
            "hypotheses_detokenized": detokenized,
            "hypotheses_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "pairs": len(hypotheses), "empty_references": empty_references, "sources_cut": cut_count,
            "source_max_len": source_cap(gen.config),
            "decode": gen.search_settings().options(), "decode_seconds": round(seconds, 3),
            "sentences_per_second": round(len(hypotheses) / seconds, 3) if seconds > 0 else None,
            scorer.report_key: result["scores"], "copy": result["copy"]}


# ---- perplexity -------------------------------------------------------------------------------------------

def ppl_pairs(gen, args, test_dataset) -> tuple[list, int, int]:
    """The test pairs (dataset, or raw --test_src/--test_ref) as 1-row teacher-forced batches, in line order,
    sources cut to :func:`source_cap` and targets to the position table as in training; and how many
    sources and targets were cut (a WARNING each; the report records the counts)."""
    from src.dataset.batching import cut
    from src.dataset.load_dataset import as_batch_columns
    from src.language_model.noise_channel_language_model import pair_example

    cfg = gen.config
    cap_tgt = cfg.model_config.max_position_embeddings
    if test_dataset:
        import mindspore.dataset as ds

        from src.dataset import schema
        from src.dataset.writer import dataset_files

        data = ds.MindDataset(dataset_files(test_dataset), columns_list=[schema.SOURCE_IDS, schema.TARGET_IDS,
                                                                          schema.INDEX],
                              shuffle=False, num_parallel_workers=1)
        rows = sorted((int(i), np.asarray(s), np.asarray(t))
                      for s, t, i in data.create_tuple_iterator(output_numpy=True, num_epochs=1))
        sources, targets, where = [s for _, s, _ in rows], [t for _, _, t in rows], test_dataset
    else:
        sources = [gen.encode(line) for _, line in iter_lines(args.test_src)]
        targets = [gen.encode(line) for _, line in iter_lines(args.test_ref)]
        where = args.test_src
    sources, sources_cut = cut_sources(sources, source_cap(cfg), where)
    targets_cut = sum(len(t) > cap_tgt for t in targets)
    if targets_cut:
        logger.warning("%s: %d test target(s) longer than the model's %d positions were cut to %d tokens",
                       where, targets_cut, cap_tgt, cap_tgt)
    pairs = [tuple(c[None, :] for c in as_batch_columns(pair_example(s, cut(np.asarray(t), cap_tgt))))
             for s, t in zip(sources, targets, strict=True)]
    return pairs, sources_cut, targets_cut


def evaluate_ppl(gen, args, test_dataset) -> dict:
    """Teacher-forced perplexity over the test pairs, every batch in the one scoring shape
    (``ppl_score.scoring_batches``: one compiled graph)."""
    from src.evaluation.ppl_score import continuation_mask, corpus_perplexity, scoring_batches

    start = time.time()
    pairs, sources_cut, targets_cut = ppl_pairs(gen, args, test_dataset)
    result = corpus_perplexity(gen.model, scoring_batches(pairs), continuation_mask(gen.vocab.symbols))
    if result.subword_tokens == 0:
        raise UserError("the test set has no target token")
    figures = result.as_dict()
    if not all(np.isfinite(float(figures[k])) for k in ("subword_ppl", "word_ppl")):
        raise UserError(f"{args.checkpoint or 'the model'}: its test loss is not a finite number (perplexity "
                        f"{figures['subword_ppl']} per subword): the weights produce garbage; no report written")
    return {"ppl": figures, "label_smoothing": 0.0, "seconds": round(time.time() - start, 3),
            "pairs": len(pairs), "sources_cut": sources_cut, "targets_cut": targets_cut,
            "source_max_len": source_cap(gen.config)}


# ---- report -----------------------------------------------------------------------------------------------

def summary_table(report: dict) -> str:
    from src.evaluation.scorers import SCORERS

    rows = [("metric", report["metric"])]
    if report.get("hypotheses"):
        rows += [("hypotheses", f"{report['hypotheses']} (sha256 {report['hypotheses_sha256'][:12]})")]
    scorer = SCORERS.get(report["metric"])
    if scorer is not None and scorer.report_key in report:
        rows += scorer.rows(report[scorer.report_key])
    if report.get("empty_references"):
        rows += [("WARNING: empty references", f"{report['empty_references']} of {report['pairs']} (score 0)")]
    if report.get("sources_cut"):
        rows += [("WARNING: sources cut", f"{report['sources_cut']} longer than {report['source_max_len']} tokens")]
    if report.get("targets_cut"):
        rows += [("WARNING: targets cut", f"{report['targets_cut']} longer than the model's positions")]
    if "copy" in report:
        c = report["copy"]
        rows += [("copy rate (hypotheses / references)",
                  f"{c['hypothesis_copy_rate']:.3f} / {c['reference_copy_rate']:.3f}"),
                 ("words (hypotheses / references)", f"{c['hypothesis_words']:.2f} / {c['reference_words']:.2f}")]
    if "ppl" in report:
        p = report["ppl"]
        rows += [("subword tokens", p["subword_tokens"]), ("words", p["words"]),
                 ("PPL per subword", f"{p['subword_ppl']:.3f}"), ("PPL per word", f"{p['word_ppl']:.3f}")]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'':{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k:{width}} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def write_report(report: dict, output: Path):
    report_path = output.with_name(output.name + ".report.json")
    with atomic_open(report_path) as handle:
        json.dump(report, handle, indent=2, default=str)
        handle.write("\n")
    table = summary_table(report)
    with atomic_open(output.with_name(output.name + ".summary.txt")) as handle:
        handle.write(table)
    sys.stdout.write(table)
    sys.stdout.flush()
    logger.info("report written to %s", report_path)


