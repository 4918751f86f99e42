"""One training phase (pre-training or fine-tuning): the plain-Python loop around the jit step.

Per optimizer step: set the learning rate from the schedule, run the step, log every
``log_every_steps`` to metrics.jsonl, validate every ``eval_every_steps`` (and at the end of each
epoch), checkpoint every ``save_ckpt_steps`` and at the end. Checkpoints carry the data position
(epoch, batch inside the epoch), so a resumed run sees exactly the batches it had not seen yet.
"""

import logging
import math
import time

import numpy as np
from mindspore import Tensor, nn
from mindspore.amp import DynamicLossScaler
from tqdm import tqdm

from src.dataset import schema
from src.dataset.load_dataset import MaskSettings, dataset_size, load_dataset, resolve_datasets
from src.dataset.writer import read_manifest
from src.utils.checkpoint import CheckpointManager
from src.utils.load_weights import parameter_entries
from src.utils.lr_scheduler import schedule_from_config
from src.utils.optimizer import build_optimizer
from src.utils.ppl_score import corpus_nll, make_nll_fn
from src.utils.train_step import TrainStep, make_loss_scaler

logger = logging.getLogger(__name__)


def make_loader(cfg, datasets, *, epoch, shuffle, rank=0, group_size=1, skip_batches=0, training=True):
    """The batches of one epoch of ``datasets`` for this rank, as configured.

    Under data parallel there is no length bucketing: every rank must get the same number of batches
    (their steps are matched by the gradient all-reduce), and bucketing each rank's shard would not.
    """
    data, mask = cfg.dataset_config, cfg.mask_config
    return load_dataset(
        datasets, batch_size=data.batch_size, vocab_size=cfg.model_config.vocab_size, epoch=epoch,
        seed=cfg.model_config.random_seed, shuffle=shuffle and data.shuffle,
        mask=MaskSettings(mask.mask_type, mask.mask_ratio, tuple(mask.start_probs), tuple(mask.replace_probs)),
        num_shards=group_size if group_size > 1 else None, shard_id=rank if group_size > 1 else None,
        bucket_boundaries=list(data.bucket_boundaries) if group_size == 1 else None, max_src_len=data.max_len,
        max_tgt_len=data.max_tgt_len, noise_prob=mask.noise_prob if training else 0.0,
        skip_batches=skip_batches, num_parallel_workers=data.num_parallel_workers, pad_multiple=data.pad_multiple)


def validation_sets(cfg, train_datasets):
    """The configured validation datasets of the same kind as the training data."""
    if not cfg.dataset_config.valid_dataset:
        return []
    kind = read_manifest(resolve_datasets(train_datasets)[0])["kind"]
    return [p for p in resolve_datasets(cfg.dataset_config.valid_dataset) if read_manifest(p)["kind"] == kind]


def validate(run, valid):
    """Token NLL (no label smoothing) and perplexity over the validation sets, masks fixed (epoch 0)."""
    if not valid:
        return None
    batches = make_loader(run.cfg, valid, epoch=0, shuffle=False, training=False).create_tuple_iterator(
        num_epochs=1, output_numpy=True)
    if run.nll_fn is None:
        run.nll_fn = make_nll_fn(run.net)
    total, count = corpus_nll(run.net, batches, run.nll_fn)
    loss = total / max(count, 1)
    return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 50.0)), "valid_tokens": count}


class PhaseState:
    """Position of the loop: epoch, batch inside the epoch, optimizer step."""

    def __init__(self, epoch=0, batch_in_epoch=0, step=0):
        self.epoch, self.batch_in_epoch, self.step = epoch, batch_in_epoch, step

    def as_dict(self, phase, cfg, best=None, best_by="loss"):
        """The run state of a checkpoint; ``best`` is the selection criterion (lower is better: the
        validation loss, or minus the validation ROUGE), stored as ``best_valid_loss`` or
        ``best_valid_rouge``."""
        state = {"phase": phase, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
                 "config_json": cfg.to_json_text()}
        if best is not None and math.isfinite(best):
            state["best_valid_rouge" if best_by == "rouge" else "best_valid_loss"] = \
                -float(best) if best_by == "rouge" else float(best)
        return state


def best_from_state(state: dict, best_by: str) -> float:
    """The selection criterion (lower is better) recorded in a resumed run state, or +inf."""
    if best_by == "rouge":
        return -float(state["best_valid_rouge"]) if "best_valid_rouge" in state else math.inf
    return float(state.get("best_valid_loss", math.inf))


def _build_step(run):
    cfg = run.cfg
    lrc, lsc = cfg.learn_rate_config, cfg.loss_scale_config
    optimizer = build_optimizer(run.net.trainable_params(), lrc)
    scaler = make_loss_scaler(lsc.loss_scale_mode, lsc.init_loss_scale, lsc.loss_scale_factor, lsc.scale_window)
    reducer = None
    if run.group_size > 1:
        reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=run.group_size)
    return TrainStep(run.net, optimizer, label_smoothing=cfg.model_config.label_smoothing, scaler=scaler,
                     clip_norm=lrc.clip_norm, accumulation_steps=lrc.grad_accumulation_steps,
                     grad_reducer=reducer)


def _entries(step_fn):
    extra = {}
    if isinstance(step_fn.scaler, DynamicLossScaler):
        extra = {"loss_scaler.scale_value": step_fn.scaler.scale_value,
                 "loss_scaler.counter": step_fn.scaler.counter}
    return parameter_entries(step_fn.network, step_fn.optimizer, extra=extra)


def _restore(step_fn, resume) -> PhaseState:
    from mindspore import load_param_into_net

    params, state = resume
    for cell in (step_fn.network, step_fn.optimizer):
        not_loaded, _ = load_param_into_net(cell, params, strict_load=True)
        if not_loaded:
            raise RuntimeError(f"resume: parameters missing from the checkpoint: {not_loaded[:10]}")
    if isinstance(step_fn.scaler, DynamicLossScaler) and "loss_scaler.scale_value" in params:
        step_fn.scaler.scale_value.set_data(params["loss_scaler.scale_value"])
        step_fn.scaler.counter.set_data(params["loss_scaler.counter"])
    return PhaseState(state["epoch"], state["batch_in_epoch"], state["step"])


def train_phase(run, phase, datasets, resume=None):
    """Train ``run.net`` on ``datasets`` for ``dataset_config.epochs`` epochs (or ``run.max_steps``)."""
    cfg, opts = run.cfg, run.cfg.checkpoint_options
    step_fn = _build_step(run)
    schedule = schedule_from_config(cfg.learn_rate_config)
    manager = CheckpointManager(run.ckpt_dir, f"{opts.ckpt_prefix}_{phase}", opts.keep_ckpt_max,
                                enabled=run.rank == 0)
    pos = _restore(step_fn, resume) if resume else PhaseState()
    valid = validation_sets(cfg, datasets)
    run.rouge_validator = None
    if opts.best_by == "rouge" and valid and read_manifest(valid[0])["kind"] == schema.KIND_PAIR:
        from src.utils.valid_rouge import RougeValidator

        run.rouge_validator = RougeValidator.from_config(cfg, valid)
    run.best_by = "rouge" if run.rouge_validator else "loss"
    if resume:  # the best checkpoint so far must not be replaced by a worse one after a resume
        manager.best_loss = best_from_state(resume[1], run.best_by)
    accumulation = cfg.learn_rate_config.grad_accumulation_steps
    # from the manifests, not get_dataset_size(), which would run the whole pipeline once; exact
    # without length buckets, a slight underestimate with them (for the progress bar and the log)
    examples = dataset_size(datasets)
    batches_per_epoch = math.ceil(math.ceil(examples / run.group_size) / cfg.dataset_config.batch_size)
    total_steps = cfg.dataset_config.epochs * batches_per_epoch // accumulation
    logger.info("%s: %d examples, about %d batches per epoch and %d optimizer steps in all; starting at "
                "step %d", phase, examples, batches_per_epoch, total_steps, pos.step)
    window = _Window()
    with tqdm(total=total_steps, initial=pos.step, desc=phase, unit=" step", disable=run.rank != 0,
              mininterval=2.0) as bar:
        while pos.epoch < cfg.dataset_config.epochs:
            loader = make_loader(cfg, datasets, epoch=pos.epoch, shuffle=True, rank=run.rank,
                                 group_size=run.group_size, skip_batches=pos.batch_in_epoch)
            for batch in loader.create_tuple_iterator(num_epochs=1, output_numpy=True):
                out = step_fn(*batch, lr=schedule(pos.step))
                pos.batch_in_epoch += 1
                window.add(batch, out)
                if pos.batch_in_epoch % accumulation:
                    continue
                pos.step += 1
                bar.update()
                _after_step(run, phase, pos, step_fn, manager, valid, window, schedule, bar)
                if _stop_agreed(run) or (run.max_steps and pos.step >= run.max_steps):
                    manager.save(_entries(step_fn), pos.as_dict(phase, cfg, manager.best_loss, run.best_by))
                    return pos
            if step_fn.drop_partial_accumulation():
                logger.info("%s epoch %d: the last %d batch(es) did not fill an accumulation group and were "
                            "not applied", phase, pos.epoch, pos.batch_in_epoch % accumulation)
            pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
            if opts.eval_every_steps == 0:
                _validate_and_keep_best(run, phase, pos, step_fn, manager, valid)
    manager.save(_entries(step_fn), pos.as_dict(phase, cfg, manager.best_loss, run.best_by))
    return pos


def _stop_agreed(run) -> bool:
    """Whether to stop now; under data parallel every rank must stop at the same step (a rank that
    left early would leave the others waiting in the gradient all-reduce), so the flags are OR-ed."""
    if run.group_size == 1:
        return run.stop_requested
    from mindspore import ops

    flag = Tensor(np.array([float(run.stop_requested)], np.float32))
    agreed = bool(ops.AllReduce(ops.ReduceOp.SUM)(flag).asnumpy()[0] > 0)  # CPU: only SUM
    run.stop_requested = agreed
    return agreed


class _Window:
    """Running sums between two log lines."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.loss, self.n, self.src_tokens, self.tgt_tokens, self.overflows = 0.0, 0, 0, 0, 0
        self.start = time.perf_counter()
        self.last = None

    def add(self, batch, out):
        loss, finite, scale, norm = (o.asnumpy() if isinstance(o, Tensor) else o for o in out)
        self.n += 1
        self.loss += float(loss)
        self.overflows += int(not bool(finite))
        self.src_tokens += int(np.count_nonzero(batch[0]))
        self.tgt_tokens += int(np.count_nonzero(batch[3]))
        self.last = (float(scale), float(norm))


def _after_step(run, phase, pos, step_fn, manager, valid, window, schedule, bar):
    opts = run.cfg.checkpoint_options
    if pos.step % opts.log_every_steps == 0:
        seconds = time.perf_counter() - window.start
        record = {"phase": phase, "step": pos.step, "epoch": pos.epoch, "loss": window.loss / window.n,
                  "lr": schedule(pos.step - 1), "loss_scale": window.last[0], "grad_norm": window.last[1],
                  "overflow_steps": window.overflows, "src_tokens_per_s": window.src_tokens / seconds,
                  "tgt_tokens_per_s": window.tgt_tokens / seconds, "seconds_per_step": seconds / window.n}
        run.metrics.write(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}")
        logger.info("%s step %d: loss %.4f lr %.3g scale %.0f norm %.3f %.0f tgt tok/s", phase, pos.step,
                    record["loss"], record["lr"], record["loss_scale"], record["grad_norm"],
                    record["tgt_tokens_per_s"])
        window.reset()
    if opts.eval_every_steps and pos.step % opts.eval_every_steps == 0:
        _validate_and_keep_best(run, phase, pos, step_fn, manager, valid)
    if pos.step % opts.save_ckpt_steps == 0:
        manager.save(_entries(step_fn), pos.as_dict(phase, run.cfg, manager.best_loss, run.best_by))


def _validate_and_keep_best(run, phase, pos, step_fn, manager, valid):
    result = validate(run, valid)
    if result is None:
        return
    criterion = result["valid_loss"]
    if run.rouge_validator is not None:
        result.update(run.rouge_validator(run.net))
        criterion = -result["valid_rouge"]
    run.metrics.write({"phase": phase, "step": pos.step, "epoch": pos.epoch, **result})
    logger.info("%s step %d: valid loss %.4f ppl %.2f", phase, pos.step, result["valid_loss"],
                result["valid_ppl"])
    if run.rouge_validator is not None:
        logger.info("%s step %d: valid ROUGE-1/2/L %.2f / %.2f / %.2f on %d pairs, copy rate %.2f (references "
                    "%.2f), %.1f s", phase, pos.step, result["valid_rouge1"], result["valid_rouge2"],
                    result["valid_rougeL"], result["valid_rouge_pairs"], result["valid_copy_rate"],
                    result["valid_ref_copy_rate"], result["valid_decode_seconds"])
    state = pos.as_dict(phase, run.cfg)
    if run.rouge_validator is not None:
        state["valid_rouge"] = float(result["valid_rouge"])
    manager.save_if_best(_entries(step_fn), state, criterion)
