"""Package a pre-trained checkpoint as a released model: a folder with weights-only ``weights.npz`` (model
parameters only, no optimizer state), the vocabulary and BPE codes it was trained with, ``config.json``
(the run's config, data paths and starting checkpoint cleared) and ``manifest.json`` (each file's size and
sha256, the objective, steps, learning rate, validation loss and a description of the data).

The weights are refused if any is NaN or infinite, and if the .npz would exceed 40 MiB (--fp16 halves it).
Fine-tune from a release with train.py's ``--checkpoint_options.existed_ckpt=<folder>/weights.npz``
(datasets built with its vocab.txt and bpe.codes), or let scripts/pipeline.py do it with --pretrained.

Example:
    python scripts/release_model.py --checkpoint runs/pretrain/checkpoints/ckpt_pretrain_step14000.ckpt \
        --vocab runs/experiment/vocab/vocab.txt --codes runs/experiment/vocab/bpe.codes \
        --data "91,421 news sentences + the 10K Gigaword training articles + Cornell training responses" \
        --output models/mass-small-news-keep40
"""

import argparse
import datetime
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.utils.cli import run_cli, setup_logging  # noqa: E402
from src.utils.errors import UserError  # noqa: E402

logger = logging.getLogger("release_model")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="pre-training checkpoint (.ckpt with its run state)")
    p.add_argument("--vocab", required=True, help="the vocabulary the model was trained with")
    p.add_argument("--codes", required=True, help="the BPE codes of that vocabulary")
    p.add_argument("--data", default="", help="one line describing the pre-training data")
    p.add_argument("--note", default="", help="anything else a user should know (free text)")
    p.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the size)")
    p.add_argument("--output", required=True, help="release folder to create (must not exist)")
    return p.parse_args(argv)


def public_config(cfg_dict: dict) -> dict:
    """The run's config with what only made sense on the machine that trained it cleared."""
    cfg = {section: dict(values) if isinstance(values, dict) else values for section, values in cfg_dict.items()}
    data = cfg.get("dataset_config", {})
    for key in ("pre_train_dataset", "fine_tune_dataset", "valid_dataset", "test_dataset", "mix_dataset"):
        if key in data:
            data[key] = ""
    if "checkpoint_options" in cfg:
        cfg["checkpoint_options"]["existed_ckpt"] = ""
    return cfg


def run_valid_loss(checkpoint: Path, phase, step):
    """The validation loss of ``phase`` at ``step`` in the checkpoint's run (``<run>/checkpoints/x.ckpt`` ->
    ``<run>/metrics.jsonl``); None when the run has no such record."""
    from src.training.metrics_log import read_metrics

    metrics = checkpoint.parent.parent / "metrics.jsonl"
    if not metrics.is_file() or step is None:
        return None
    found = [r["valid_loss"] for r in read_metrics(metrics)
             if r.get("step") == step and r.get("phase", phase) == phase and r.get("valid_loss") is not None]
    return found[-1] if found else None


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    from config.config import MassConfig
    from src.text.dictionary import Dictionary
    from src.utils.checkpoint import config_of, is_model_param, read_model_file, save_npz
    from src.utils.fileio import require_file
    from src.utils.release import MAX_WEIGHTS_BYTES, write_manifest

    out = Path(args.output)
    if out.exists():
        raise UserError(f"{out}: already exists (a release is written once; remove it or choose another name)")
    for path, what in ((args.checkpoint, "--checkpoint"), (args.vocab, "--vocab"), (args.codes, "--codes")):
        require_file(path, what)
    weights, state = read_model_file(args.checkpoint)
    stored = config_of(state)
    if stored is None:
        raise UserError(f"{args.checkpoint}: no config stored in this checkpoint (a train.py checkpoint is needed)")
    cfg = MassConfig.from_dict(stored, source=f"{args.checkpoint} (stored config)")
    dictionary = Dictionary.load_from_persisted_dict(args.vocab)
    if cfg.model_config.vocab_sha256 and cfg.model_config.vocab_sha256 != dictionary.digest():
        raise UserError(f"{args.vocab}: not the vocabulary {args.checkpoint} was trained with (its sha256 differs "
                        "from the one recorded in the checkpoint's config)")
    model = {name: value for name, value in weights.items() if is_model_param(name)}
    bad = [name for name, value in model.items() if value.dtype.kind == "f" and not np.isfinite(value).all()]
    if bad:
        raise UserError(f"{args.checkpoint}: NaN or Inf in {len(bad)} weight(s), e.g. {', '.join(bad[:3])}: "
                        "not releasing a broken model")
    if args.fp16:
        model = {name: value.astype(np.float16) if value.dtype == np.float32 else value
                 for name, value in model.items()}
    size = sum(v.nbytes for v in model.values())
    if size > MAX_WEIGHTS_BYTES:
        raise UserError(f"{args.checkpoint}: {size / 2**20:.1f} MiB of weights, more than a release may hold "
                        f"({MAX_WEIGHTS_BYTES / 2**20:.0f} MiB){'' if args.fp16 else ': try --fp16'}")
    valid_loss = state.get("valid_loss")
    if valid_loss is None:  # a step checkpoint: its run's metrics.jsonl has the validation of that step
        valid_loss = run_valid_loss(Path(args.checkpoint), state.get("phase"), state.get("step"))
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_npz(tmp / "weights.npz", model)
        shutil.copyfile(args.vocab, tmp / "vocab.txt")
        shutil.copyfile(args.codes, tmp / "bpe.codes")
        MassConfig.from_dict(public_config(stored)).to_json(tmp / "config.json")
        params = int(sum(v.size for v in model.values()))
        lr = cfg.learn_rate_config
        info = {
            "created": datetime.date.today().isoformat(),
            "source_checkpoint": Path(args.checkpoint).name,
            "parameters": params, "dtype": "float16" if args.fp16 else "float32",
            "model": {k: getattr(cfg.model_config, k) for k in (
                "hidden_size", "num_hidden_layers", "num_decoder_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "vocab_size", "vocab_sha256")},
            "objective": {"mask_config": cfg.to_dict()["mask_config"]},
            "pretraining": {"phase": state.get("phase"), "steps": state.get("step"),
                            "valid_loss": valid_loss, "batch_size": cfg.dataset_config.batch_size,
                            "max_len": cfg.dataset_config.max_len, "lr": lr.lr, "lr_scheduler": lr.lr_scheduler,
                            "warmup_steps": lr.warmup_steps, "decay_steps": lr.decay_steps},
            "text": {"tokenizer": cfg.dataset_config.tokenizer or "nltk",
                     "lowercase": cfg.dataset_config.lowercase, "hash_digits": cfg.dataset_config.hash_digits},
            "data": args.data, "note": args.note,
        }
        write_manifest(tmp, {"weights": "weights.npz", "vocab": "vocab.txt", "codes": "bpe.codes",
                             "config": "config.json"}, info)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"released {params:,} parameters ({size / 2**20:.1f} MiB, {info['dtype']}) of {args.checkpoint} "
          f"(step {state.get('step')}, valid loss {valid_loss}) to {out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
