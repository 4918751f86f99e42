r"""The whole MASS pipeline, stage by stage, with MASS pre-training compared to training from scratch.

Runs the toolkit's own scripts, in the ModelZoo order, each as a subprocess with its log in
``<work>/logs/<stage>.log``:

 1. tokenize the monolingual news (lower-cased, digits as '#', the Gigaword convention) and the
    Cornell training dialogs; the Gigaword files are already tokenized;
 2. learn joint BPE codes, apply them, build the vocabulary;
 3. build the MindRecord datasets: pre-training (news + Gigaword training articles + Cornell training
    responses: monolingual text of the training splits only), Gigaword pairs, Cornell pairs;
 4. MASS pre-training;
 5. Gigaword fine-tuning from the pre-trained model and from scratch, the same number of steps, then
    beam search on the test set and ROUGE-1/2/L (rouge-score, stemming);
 6. Cornell fine-tuning, MASS and scratch, then test perplexity;
 7. training curves (PNG) and a report (``report.md``, ``report.json``).

A finished stage leaves ``<work>/stages/<stage>.json`` and is skipped when the pipeline runs again, so
an interrupted experiment continues where it stopped (``--force`` redoes everything).

Examples:
    python scripts/pipeline.py --work runs/demo --config config/tiny.json \
        --news scripts/demo_corpus/news.txt --gigaword scripts/demo_corpus/gigaword \
        --cornell scripts/demo_corpus/cornell --bpe_merges 1500 --pretrain_steps 600 --finetune_steps 300
    bash scripts/run_experiment.sh            # the real-data experiment of docs/RESULTS.md
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from config.config import CheckpointOptions  # noqa: E402
from src.text import text_options  # noqa: E402
from src.training.metrics_log import read_metrics  # noqa: E402
from src.utils.cli import run_cli  # noqa: E402
from src.utils.errors import UserError  # noqa: E402
from src.utils.fileio import atomic_open, require_dir, require_file  # noqa: E402

GIGAWORD_FILES = {  # harvardnlp sumdata layout -> our names
    "train_src": "sumdata/train/train.article.txt",
    "train_ref": "sumdata/train/train.title.txt",
    "valid_src": "sumdata/train/valid.article.filter.txt",
    "valid_ref": "sumdata/train/valid.title.filter.txt",
    "test_src": "Giga/input.txt",
    "test_ref": "Giga/task1_ref0.txt",
}
SYSTEMS = ("mass", "scratch")
# --transfer: parameter-name patterns that keep their fresh initialisation (checkpoint_options.existed_ckpt_skip)
TRANSFER = {
    "full": (),
    "encoder": (r"^decoder_layers\.", r"^decoder_norm\."),  # encoder and the (tied) embeddings
    "embeddings": (r"^encoder_layers\.", r"^encoder_norm\.", r"^decoder_layers\.", r"^decoder_norm\."),
    "no_embeddings": (r"^embedding\.",),
    "no_cross_attention": (r"\.cross_attention\.", r"\.cross_norm\."),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="folder for every artefact of the run (created)")
    p.add_argument("--config", default="config/tiny.json", help="model / training preset")
    p.add_argument("--news", default="",
                   help="raw monolingual text, one sentence per line (several: comma-separated); not needed "
                        "with --pretrained")
    p.add_argument("--pretrained", default="",
                   help="a released pre-trained model (a models/ folder with manifest.json): its BPE codes and "
                        "vocabulary are used and pre-training is skipped; --config defaults to its config.json")
    p.add_argument("--gigaword", required=True, help="Gigaword folder in the harvardnlp layout (sumdata/, Giga/)")
    p.add_argument("--cornell", required=True, help="folder with movie_lines.txt and movie_conversations.txt")
    p.add_argument("--bpe_merges", type=int, default=10000, help="BPE merge operations")
    p.add_argument("--max_len", type=int, default=64, help="longest pre-training sentence / source, in tokens")
    p.add_argument("--gigaword_weight", type=int, default=1, metavar="N",
                   help="the Gigaword training articles appear N times in the pre-training text (in-domain text "
                        "weighted up; training split only; default 1: once, like every other sentence)")
    p.add_argument("--pretrain_steps", type=int, default=1000)
    p.add_argument("--finetune_steps", type=int, default=500, help="Gigaword fine-tuning steps (each system)")
    p.add_argument("--cornell_steps", type=int, default=0, help="Cornell fine-tuning steps (default: finetune_steps)")
    p.add_argument("--evals", type=int, default=5, help="validations (and checkpoints) per training phase")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate of pre-training, and of fine-tuning unless given below "
                        "(default: the config's)")
    p.add_argument("--finetune_lr", type=float, default=None,
                   help="peak learning rate of Gigaword fine-tuning from the pre-trained model (default: --lr)")
    p.add_argument("--scratch_lr", type=float, default=None,
                   help="peak learning rate of Gigaword training from scratch (default: --finetune_lr)")
    p.add_argument("--cornell_lr", type=float, default=None,
                   help="peak learning rate of both Cornell systems (default: --lr)")
    p.add_argument("--finetune_warmup", type=float, default=None,
                   help="warm-up of the fine-tuning phases, as a share of their steps (default: --warmup)")
    p.add_argument("--finetune_dropout", type=float, default=None,
                   help="hidden and attention dropout of the fine-tuning phases (default: the config's)")
    p.add_argument("--pretrain_dropout", type=float, default=None,
                   help="hidden and attention dropout of the pre-training (default: the config's)")
    p.add_argument("--transfer", default="full", choices=sorted(TRANSFER),
                   help="what the MASS systems take from the pre-trained model; the rest starts from the "
                        "fresh initialisation (default: full)")
    p.add_argument("--select_by", default="rouge", choices=("rouge", "loss"),
                   help="Gigaword checkpoint selection: ROUGE on --valid_rouge_lines validation pairs, or the "
                        "validation loss (Cornell: always the loss)")
    p.add_argument("--valid_rouge_lines", type=int, default=300,
                   help="validation pairs decoded at each Gigaword validation (--select_by rouge)")
    p.add_argument("--pad_multiple", type=int, default=0,
                   help="pad batches to a multiple of this (fewer shapes to compile; default: the config's)")
    p.add_argument("--train_option", action="append", default=[], metavar="--SECTION.KEY=VALUE",
                   help="config override for every training phase (repeatable), e.g. "
                        "--train_option=--dataset_config.batch_size=64")
    p.add_argument("--pretrain_option", action="append", default=[], metavar="--SECTION.KEY=VALUE",
                   help="config override for pre-training only (repeatable), e.g. "
                        "--pretrain_option=--mask_config.replace_probs=[0.6,0.1,0.3]")
    p.add_argument("--finetune_option", action="append", default=[], metavar="--SECTION.KEY=VALUE",
                   help="config override for the fine-tuning phases only, MASS and scratch (repeatable)")
    p.add_argument("--decode_option", action="append", default=[], metavar="--decode_config.KEY=VALUE",
                   help="decoding setting of the Gigaword test decoding only (repeatable; validation during "
                        "training keeps the config's), e.g. --decode_option=--decode_config.length_penalty_weight=1.4")
    p.add_argument("--scratch_decode_option", action="append", default=None, metavar="--decode_config.KEY=VALUE",
                   help="the same for the scratch system's test decoding (default: --decode_option)")
    p.add_argument("--average", default="none", metavar="none|last:K|best:K",
                   help="decode the Gigaword test set with the average of each system's last K step checkpoints, "
                        "or of its K best by validation (weights_average.py --last/--best), instead of its best "
                        "checkpoint (default: none)")
    p.add_argument("--scratch_average", default=None, metavar="none|last:K|best:K",
                   help="the same for the scratch system (default: --average)")
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up, as a share of each phase's steps")
    p.add_argument("--test_lines", type=int, default=0,
                   help="decode only the first N Gigaword test lines (0: all; a quick look, not a result)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--force", action="store_true", help="redo every stage, even those already done")
    p.add_argument("--stop_after", default="", metavar="STAGE",
                   help="stop once this stage is done (e.g. datasets, pretrain); later stages are not run")
    p.add_argument("--quiet", action="store_true", help="print stage names only, no table")
    args = p.parse_args(argv)
    config_given = any(a == "--config" or a.startswith("--config=") for a in (sys.argv[1:] if argv is None else argv))
    if args.pretrained:
        from src.utils.release import verify_release

        manifest = verify_release(args.pretrained)
        if not config_given:
            args.config = str(Path(args.pretrained) / manifest["config"])
    elif not args.news:
        p.error("--news is required (or start from a released model with --pretrained)")
    args.cornell_steps = args.cornell_steps or args.finetune_steps
    args.finetune_lr = args.finetune_lr or args.lr
    args.scratch_lr = args.scratch_lr or args.finetune_lr
    args.cornell_lr = args.cornell_lr or args.lr
    args.finetune_warmup = args.warmup if args.finetune_warmup is None else args.finetune_warmup
    args.scratch_decode_option = args.decode_option if args.scratch_decode_option is None \
        else args.scratch_decode_option
    args.scratch_average = args.average if args.scratch_average is None else args.scratch_average
    args.averaging = {"mass": parse_average(args.average), "scratch": parse_average(args.scratch_average)}
    bad = [o for o in args.decode_option + args.scratch_decode_option if not o.startswith("--decode_config.")]
    if bad:
        p.error(f"--decode_option takes --decode_config.KEY=VALUE settings, got {bad[0]}")
    for name in ("bpe_merges", "pretrain_steps", "finetune_steps", "evals", "max_len", "gigaword_weight"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in ("pretrain_dropout", "finetune_dropout"):  # NaN fails the comparison too
        value = getattr(args, name)
        if value is not None and not 0.0 <= value < 1.0:
            raise UserError(f"--{name} must lie in [0, 1), got {value}")
    return args


def parse_average(text: str) -> tuple[str, int]:
    """``--average``: ``("none", 0)``, ``("last", K)`` or ``("best", K)``.

    >>> parse_average("best:3"), parse_average("none")
    (('best', 3), ('none', 0))
    """
    if text == "none":
        return "none", 0
    mode, _, k = text.partition(":")
    if mode not in ("last", "best") or not k.isdigit() or int(k) < 1:
        raise UserError(f"--average: expected none, last:K or best:K (K >= 1), got {text!r}")
    return mode, int(k)


class StopAfter(Exception):
    """Raised once the stage named by --stop_after is done."""


class Pipeline:
    """Runs the stages as subprocesses, times them, and remembers which are done."""

    def __init__(self, args):
        self.args = args
        self.work = Path(args.work).resolve()
        self.config = require_file(Path(args.config).resolve(), "--config")
        for sub in ("logs", "stages"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "GLOG_v": os.environ.get("GLOG_v", "3"), "PYTHONPATH": str(REPO)}
        self.timings = {}
        self.fingerprints = {}

    def path(self, *parts) -> Path:
        return self.work.joinpath(*parts)

    def stage(self, name, commands, fresh=(), after=(), extra=""):
        """Run ``commands`` (lists of arguments) unless the stage is done; record the wall time.

        A stage is done when its marker holds the same fingerprint: a hash of its commands (the Python
        executable left out) and of the fingerprints of the stages named in ``after``, whose outputs it
        reads. So changing an option, or redoing an earlier stage, redoes this one. The folders
        ``fresh`` are removed first, so that a re-run never mixes with an older one. ``extra`` is hashed
        with the commands (e.g. the digest of a released model the stage reads).
        """
        marker = self.path("stages", f"{name}.json")
        commands = [[str(c) for c in cmd] for cmd in commands]
        fingerprint = self.fingerprint(commands, after, extra)
        done = json.loads(marker.read_text()) if marker.exists() else None
        if done and not self.args.force and done.get("fingerprint") == fingerprint:
            self.timings[name] = done["seconds"]
            self.fingerprints[name] = fingerprint
            print(f"[{name}] done before ({self.timings[name]:.0f} s), skipped", flush=True)
            self._maybe_stop(name)
            return
        if done and not self.args.force:
            print(f"[{name}] options or inputs changed since it ran: redoing", flush=True)
        print(f"[{name}] ...", end="", flush=True)
        marker.unlink(missing_ok=True)
        for folder in fresh:
            shutil.rmtree(folder, ignore_errors=True)
        log = self.path("logs", f"{name}.log")
        start = time.time()
        with open(log, "w", encoding="utf-8") as out:
            for cmd in commands:
                out.write("$ " + " ".join(cmd) + "\n")
                out.flush()
                rc = subprocess.run(cmd, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT).returncode
                if rc != 0:
                    print(" failed", flush=True)
                    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                    raise UserError(f"stage {name} failed (exit {rc}): {' '.join(cmd)}\n  "
                                    + "\n  ".join(tail) + f"\n(whole log: {log})")
        seconds = time.time() - start
        self.timings[name] = seconds
        with atomic_open(marker) as handle:
            json.dump({"seconds": seconds, "commands": commands, "fingerprint": fingerprint}, handle)
        self.fingerprints[name] = fingerprint
        print(f" {seconds:.0f} s", flush=True)
        self._maybe_stop(name)

    def fingerprint(self, commands, after, extra="") -> str:
        missing = [a for a in after if a not in self.fingerprints]
        if missing:  # pragma: no cover - a pipeline wiring error
            raise RuntimeError(f"stages {missing} must run first")
        text = json.dumps([[cmd[1:] if cmd and cmd[0] == sys.executable else cmd for cmd in commands],
                           [self.fingerprints[a] for a in after]] + ([extra] if extra else []))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _maybe_stop(self, name):
        if self.args.stop_after == name:
            raise StopAfter(name)

    def py(self, script, *args):
        return [sys.executable, str(REPO / script), *args]


def train_command(pipe, run, steps, overrides, lr=None, warmup=None, phase_options=()):
    """train.py for one phase of ``steps`` optimizer steps, ``--evals`` validations and checkpoints,
    peak learning rate ``lr`` (None: the config's) and ``warmup`` (share of the steps; None: --warmup);
    ``phase_options`` come after --train_option, ``overrides`` last."""
    args = pipe.args
    every = max(1, steps // args.evals)
    warmup = args.warmup if warmup is None else warmup
    options = [
        f"--learn_rate_config.decay_steps={steps}",
        f"--learn_rate_config.warmup_steps={max(1, int(steps * warmup))}",
        f"--checkpoint_options.save_ckpt_steps={every}",
        f"--checkpoint_options.eval_every_steps={every}",
        f"--checkpoint_options.log_every_steps={max(1, min(50, every // 4))}",
        f"--checkpoint_options.keep_ckpt_max={args.evals + 1}",
        "--dataset_config.epochs=100000",
        f"--dataset_config.max_len={args.max_len}",
    ]
    if lr:
        options.append(f"--learn_rate_config.lr={lr}")
    if args.pad_multiple:
        options.append(f"--dataset_config.pad_multiple={args.pad_multiple}")
    options += [*args.train_option, *phase_options]
    return pipe.py("train.py", "--config", pipe.config, "--output", pipe.path("runs", run),
                   "--max_steps", str(steps), *options, *overrides)


def pretrain_command(pipe, data: Path, name: str):
    """train.py for the pre-training on ``data/<name>.mindrecord`` (validation: ``<name>_valid``), with
    --pretrain_dropout and --pretrain_option."""
    args = pipe.args
    return train_command(pipe, "pretrain", args.pretrain_steps, [
        f"--dataset_config.pre_train_dataset={data / (name + '.mindrecord')}",
        f"--dataset_config.valid_dataset={data / (name + '_valid.mindrecord')}"], lr=args.lr,
        phase_options=[*dropout_options(args.pretrain_dropout), *args.pretrain_option])


def dropout_options(p) -> list:
    """The overrides that set the model's hidden and attention dropout to ``p`` (none for None)."""
    if p is None:
        return []
    return [f"--model_config.hidden_dropout_prob={p}", f"--model_config.attention_dropout_prob={p}"]


def finetune_command(pipe, task, system, steps, train, valid, pretrained):
    """train.py for one fine-tuning run: the task's pairs, the system's start and learning rate, the
    fine-tuning recipe (warm-up, dropout, --finetune_option) and the checkpoint selection."""
    args = pipe.args
    options = [f"--dataset_config.fine_tune_dataset={train}", f"--dataset_config.valid_dataset={valid}"]
    if system == "mass":
        options.append(f"--checkpoint_options.existed_ckpt={pretrained}")
        if TRANSFER[args.transfer]:
            options.append("--checkpoint_options.existed_ckpt_skip=" + json.dumps(list(TRANSFER[args.transfer])))
    if task == "gigaword" and args.select_by == "rouge":
        options += ["--checkpoint_options.best_by=rouge",
                    f"--checkpoint_options.valid_rouge_lines={args.valid_rouge_lines}"]
    recipe = [*dropout_options(args.finetune_dropout), *args.finetune_option]
    lr = args.cornell_lr if task == "cornell" else args.finetune_lr if system == "mass" else args.scratch_lr
    return train_command(pipe, f"{task}_{system}", steps, options, lr=lr, warmup=args.finetune_warmup,
                         phase_options=recipe)


def best_checkpoint(pipe, run, phase):
    from src.utils.checkpoint import best_checkpoint_name

    opts = CheckpointOptions  # the pipeline keeps the defaults: checkpoints/ckpt_<phase>_*.ckpt
    return pipe.path("runs", run, opts.ckpt_path, best_checkpoint_name(f"{opts.ckpt_prefix}_{phase}"))


def prepare_data(pipe):
    args = pipe.args
    giga = require_dir(Path(args.gigaword).resolve(), "--gigaword")
    giga_files = {k: require_file(giga / v, f"Gigaword {k}") for k, v in GIGAWORD_FILES.items()}
    cornell = require_dir(Path(args.cornell).resolve(), "--cornell")
    news = ",".join(str(require_file(Path(n).resolve(), "--news")) for n in args.news.split(",") if n)
    tok, tok_eval, bpe, bpe_eval, mono, data = (pipe.path(d) for d in
                                                ("tok", "tok_eval", "bpe", "bpe_eval", "mono", "data"))
    codes, vocab = pipe.path("vocab", "bpe.codes"), pipe.path("vocab", "vocab.txt")
    procs = str(args.processes)
    case = ["--lowercase", "--hash_digits"]

    def copy_gigaword():  # already tokenized (Treebank style, as nltk's), lower-cased, digits as '#'
        for d in (tok, tok_eval):
            d.mkdir(parents=True, exist_ok=True)
        for key, src in giga_files.items():
            dst = (tok if key.startswith("train") else tok_eval) / f"giga_{key}.txt"
            shutil.copyfile(src, dst)
            text_options.record(dst, text_options.options("nltk", lowercase=True, hash_digits=True))

    copy_gigaword()
    release = release_files(pipe)  # a released model brings its codes and vocabulary: no news, no BPE learning
    news_tokenize = [] if release else [
        pipe.py("tokenize_corpus.py", "--corpus_folder", news, "--output_folder", tok, "--pool_size", procs, *case)]
    pipe.stage("tokenize", [
        *news_tokenize,
        pipe.py("cornell_dialog.py", "--raw_folder", cornell, "--output_folder", pipe.path("cornell_raw")),
        pipe.py("tokenize_corpus.py", "--corpus_folder",
                ",".join(str(pipe.path("cornell_raw", f"cornell_train_{side}.txt")) for side in ("src", "tgt")),
                "--output_folder", tok, "--pool_size", procs, "--keep_lines", *case),
    ])
    if release:
        codes.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(release["codes"], codes)
        shutil.copyfile(release["vocab"], vocab)
        learn = [pipe.py("apply_bpe_encoding.py", "--codes", codes, "--src_folder", tok, "--output_folder", bpe,
                         "--existed_vocab", vocab, "--processes", procs)]
    else:
        learn = [["bash", REPO / "scripts" / "learn_subword.sh", "-i", tok, "-o", codes, "-s", str(args.bpe_merges)],
                 pipe.py("apply_bpe_encoding.py", "--codes", codes, "--src_folder", tok, "--output_folder", bpe,
                         "--vocab_path", vocab, "--processes", procs)]
    pipe.stage("bpe", [
        *learn,
        pipe.py("apply_bpe_encoding.py", "--codes", codes, "--src_folder", tok_eval, "--output_folder", bpe_eval,
                "--existed_vocab", vocab, "--processes", procs),
    ], after=["tokenize"], extra=release.get("digest", "") if release else "")
    if not release:
        pretraining_text(bpe, mono, args.gigaword_weight)
    length = str(args.max_len)
    pretraining_data = [] if release else [
        pipe.py("news_crawl.py", "--src_folder", mono, "--existed_vocab", vocab, "--output_folder", data,
                "--max_len", length, "--min_len", "5", "--valid_every", "100", "--processes", procs)]
    weight = f"gigaword_weight {args.gigaword_weight}" if args.gigaword_weight > 1 and not release else ""
    pipe.stage("datasets", [
        *pretraining_data,
        pipe.py("gigaword.py", *[a for key in GIGAWORD_FILES for a in
                                 (f"--{key}", (bpe if key.startswith("train") else bpe_eval) / f"giga_{key}_bpe.txt")],
                "--existed_vocab", vocab, "--max_len", length, "--max_tgt_len", "32", "--output_folder", data,
                "--processes", procs),
        pipe.py("cornell_dialog.py", "--raw_folder", cornell, "--output_folder", data / "cornell", "--codes", codes,
                "--existed_vocab", vocab, "--max_len", length, "--max_tgt_len", length, "--processes", procs, *case),
    ], after=["bpe"], extra=weight)
    return {"giga_test_ref": giga_files["test_ref"], "data": data, "vocab": vocab, "codes": codes,
            "release": release}


GIGAWORD_COPIES = "zz_giga_copies_bpe.txt"  # sorts after the files it repeats: news_crawl.py reads in name order


def pretraining_text(bpe: Path, mono: Path, gigaword_weight: int = 1) -> list:
    """Fill ``mono`` with the monolingual pre-training text, as news_crawl.py reads it (every file, in name
    order): links to every BPE'd training file but the Cornell contexts (they repeat the responses) and the
    Gigaword titles (the fine-tuning targets); with ``gigaword_weight`` N > 1, one more file holding N - 1
    copies of the Gigaword training articles. Returns the files, in order."""
    from src.utils.fileio import atomic_open

    mono.mkdir(parents=True, exist_ok=True)
    for f in mono.glob("*.txt"):
        f.unlink()
    for f in sorted(bpe.glob("*_bpe.txt")):
        if "cornell_train_src" not in f.name and "giga_train_ref" not in f.name:
            os.symlink(f, mono / f.name)
    if gigaword_weight > 1:
        articles = (bpe / "giga_train_src_bpe.txt").read_text(encoding="utf-8")
        if articles and not articles.endswith("\n"):
            articles += "\n"
        with atomic_open(mono / GIGAWORD_COPIES) as out:
            for _ in range(gigaword_weight - 1):
                out.write(articles)
    return sorted(mono.glob("*.txt"))


def release_files(pipe) -> dict | None:
    """The verified files of --pretrained (weights, vocab, codes by path) and a digest of its manifest;
    None without --pretrained."""
    if not pipe.args.pretrained:
        return None
    from src.utils.release import MANIFEST, verify_release

    folder = Path(pipe.args.pretrained).resolve()
    manifest = verify_release(folder)
    digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()[:16]
    return {"weights": folder / manifest["weights"], "vocab": folder / manifest["vocab"],
            "codes": folder / manifest["codes"], "digest": digest}


def run_experiment(pipe, paths):
    args = pipe.args
    data = paths["data"]
    pre_name = f"news_crawl_len_{args.max_len}"
    release = paths["release"]
    if release:  # a released model: no pre-training stage
        pretrained, pre_stages = release["weights"], []
    else:
        pipe.stage("pretrain", [pretrain_command(pipe, data, pre_name)], fresh=[pipe.path("runs", "pretrain")],
                   after=["datasets"])
        pretrained, pre_stages = best_checkpoint(pipe, "pretrain", "pretrain"), ["pretrain"]
    tasks = {
        "gigaword": (args.finetune_steps, data / "gigaword_train.mindrecord", data / "gigaword_valid.mindrecord"),
        "cornell": (args.cornell_steps, data / "cornell" / "cornell_train.mindrecord",
                    data / "cornell" / "cornell_valid.mindrecord"),
    }
    results = {}
    pipe.path("results").mkdir(exist_ok=True)
    for task, (steps, train, valid) in tasks.items():
        for system in SYSTEMS:
            run = f"{task}_{system}"
            upstream = ["datasets", *pre_stages] if system == "mass" else ["datasets"]
            pipe.stage(run, [finetune_command(pipe, task, system, steps, train, valid, pretrained)],
                       fresh=[pipe.path("runs", run)], after=upstream,
                       extra=release["digest"] if release and system == "mass" else "")
            out = pipe.path("results", f"{run}.txt")
            if task == "gigaword":
                test = [f"--test_dataset={data / 'gigaword_test.mindrecord'}", "--test_ref", paths["giga_test_ref"]]
                if args.test_lines:
                    test = ["--test_src", _head(pipe.path("tok_eval", "giga_test_src.txt"), args.test_lines),
                            "--test_ref", _head(paths["giga_test_ref"], args.test_lines), "--codes", paths["codes"],
                            "--vocab", paths["vocab"]]
                model, after = ["--checkpoint", best_checkpoint(pipe, run, "finetune")], [run]
                mode, k = args.averaging[system]
                if mode != "none":  # the average of K step checkpoints, with the run's config
                    average = pipe.path("runs", run, f"average_{mode}{k}.npz")
                    pipe.stage(f"{run}_average", [pipe.py(
                        "weights_average.py", "--input_folder", pipe.path("runs", run, CheckpointOptions.ckpt_path),
                        f"--{mode}", str(k), "--output_file", average)], after=[run])
                    model = ["--checkpoint", average, "--config", pipe.path("runs", run, "config.json")]
                    after = [f"{run}_average"]
                # Gigaword references are tokenized text: hypotheses stay tokens too
                cmd = pipe.py("eval.py", *model, "--metric", "rouge", "--tokenized_output", "--output", out,
                              *[str(t) for t in test],
                              *(args.decode_option if system == "mass" else args.scratch_decode_option))
            else:
                cmd = pipe.py("eval.py", "--checkpoint", best_checkpoint(pipe, run, "finetune"), "--metric", "ppl",
                              f"--test_dataset={data / 'cornell' / 'cornell_test.mindrecord'}", "--output", out)
            pipe.stage(f"{run}_test", [cmd], after=after if task == "gigaword" else [run])
            results[run] = json.loads(Path(f"{out}.report.json").read_text())
    runs = [*pre_stages, *[f"{t}_{s}" for t in tasks for s in SYSTEMS]]
    pipe.stage("curves", [pipe.py("scripts/plot_curves.py", "--output", pipe.path("results", "curves.png"),
                                  *[pipe.path("runs", r) for r in runs])], after=runs)
    return results


def _head(path, lines):
    """The first ``lines`` lines of a file, written next to the work folder's copies."""
    out = Path(str(path) + f".first{lines}")
    with open(path, encoding="utf-8") as src, atomic_open(out) as dst:
        for i, line in enumerate(src):
            if i >= lines:
                break
            dst.write(line)
    return out


def valid_summary(run_dir):
    """Best validation loss and its step, best validation ROUGE (when decoded) and its step, the step
    that chose the best checkpoint, training steps and last training loss, from a run's metrics.jsonl."""
    records = read_metrics(Path(run_dir) / "metrics.jsonl")
    valid = [r for r in records if r.get("valid_loss") is not None]
    train = [r for r in records if "loss" in r]
    best = min(valid, key=lambda r: r["valid_loss"]) if valid else {}
    summary = {"best_valid_loss": best.get("valid_loss"), "best_valid_step": best.get("step"),
               "best_valid_ppl": best.get("valid_ppl"), "steps": max((r["step"] for r in records), default=0),
               "last_train_loss": train[-1]["loss"] if train else None, "selected_step": best.get("step")}
    decoded = [r for r in valid if "valid_rouge" in r]
    if decoded:
        top = max(decoded, key=lambda r: (r["valid_rouge"], -r["step"]))  # the trainer keeps the first best
        summary.update(selected_step=top["step"], valid_rouge={k: top[f"valid_{k}"] for k in
                                                              ("rouge1", "rouge2", "rougeL")},
                       valid_copy_rate=top["valid_copy_rate"], valid_ref_copy_rate=top["valid_ref_copy_rate"])
    return summary


def cpu_model() -> str:
    """The CPU model name (Linux), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rounded(value, digits=4):
    """``value`` with every float rounded to ``digits`` decimals (reports show what was measured, not
    the float's last bits).

    >>> rounded({"loss": 5.494966506958008, "steps": [300, 0.30000000000000004]})
    {'loss': 5.495, 'steps': [300, 0.3]}
    """
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def _num(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _selection(args) -> str:
    if args.select_by == "rouge":
        return f"mean ROUGE-1/2/L on the first {args.valid_rouge_lines} validation pairs"
    return "validation loss"


def final_results(pipe, results) -> dict:
    """The headline numbers in the layout of docs/results.json."""
    giga = {s: {k: results[f"gigaword_{s}"]["rouge"][k] for k in ("rouge1", "rouge2", "rougeL")} for s in SYSTEMS}
    cornell = {s: {"ppl": results[f"cornell_{s}"]["ppl"]["subword_ppl"]} for s in SYSTEMS}
    return {"gigaword": giga, "cornell": cornell, "cpu": cpu_model(),
            "wall_seconds": round(sum(pipe.timings.values()), 1)}


def write_report(pipe, results):
    args = pipe.args
    runs = {r.name: valid_summary(r) for r in sorted(pipe.path("runs").iterdir()) if (r / "metrics.jsonl").exists()}
    rows = []
    for task in ("gigaword", "cornell"):
        for system in SYSTEMS:
            run = f"{task}_{system}"
            res = results[run]
            if task == "gigaword":
                s, c = res["rouge"], res["copy"]
                score = (f"ROUGE-1/2/L F1 {s['rouge1']:.2f} / {s['rouge2']:.2f} / {s['rougeL']:.2f}, copy rate "
                         f"{c['hypothesis_copy_rate']:.2f} (references {c['reference_copy_rate']:.2f})")
            else:
                s = res["ppl"]
                score = f"PPL {s['subword_ppl']:.2f} per subword, {s['word_ppl']:.2f} per word"
            summary = runs[run]
            rows.append((task, system, summary["steps"], summary["selected_step"],
                         f"{summary['best_valid_loss']:.3f}", score))
    table = ["| task | system | fine-tuning steps | selected step | best valid loss | test |",
             "|---|---|---|---|---|---|"]
    table += [f"| {' | '.join(str(c) for c in row)} |" for row in rows]
    pre = runs.get("pretrain", {})
    lines = [
        "# MASS pipeline report", "",
        f"- work folder: `{pipe.work}`", f"- config: `{pipe.config}` (+ the pipeline's options below)",
        f"- options: `{' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPU(s), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        f"- pre-training: {pre.get('steps')} steps, best valid loss {_num(pre.get('best_valid_loss'))} "
        f"(step {pre.get('best_valid_step')})",
        f"- checkpoint selection: Gigaword by {_selection(args)}, Cornell by validation loss", "",
        *table, "",
        "| stage | wall time (s) |", "|---|---|",
        *[f"| {name} | {seconds:.0f} |" for name, seconds in pipe.timings.items()],
        f"| **total** | {sum(pipe.timings.values()):.0f} |", "",
        "Artefacts:",
        f"- vocabulary and BPE codes: `{pipe.path('vocab')}`",
        f"- MindRecord datasets (with manifests): `{pipe.path('data')}`",
        f"- runs (config.json, metrics.jsonl, train.log, checkpoints/): `{pipe.path('runs')}`",
        f"- hypotheses, scores (`*.report.json`): `{pipe.path('results')}`; headline numbers: "
        f"`{pipe.path('results.json')}`",
        f"- training curves: `{pipe.path('results', 'curves.png')}`",
        f"- stage logs: `{pipe.path('logs')}`",
    ]
    report = {"options": vars(args), "runs": rounded(runs), "results": results, "timings_s": rounded(pipe.timings, 1),
              "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform()}}
    with atomic_open(pipe.path("report.json")) as handle:
        json.dump(report, handle, indent=2, default=str)
    with atomic_open(pipe.path("results.json")) as handle:
        json.dump(final_results(pipe, results), handle, indent=2)
        handle.write("\n")
    with atomic_open(pipe.path("report.md")) as handle:
        handle.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    pipe = Pipeline(args)
    try:
        paths = prepare_data(pipe)
        results = run_experiment(pipe, paths)
    except StopAfter as done:
        print(f"stopped after stage {done} (--stop_after)")
        return 0
    text = write_report(pipe, results)
    if not args.quiet:
        print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
