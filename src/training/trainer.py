"""One training phase (pre-training or fine-tuning): the plain-Python loop around the jit step.

Per optimizer step: set the learning rate from the schedule, run the step, log every
``log_every_steps`` to metrics.jsonl, validate every ``eval_every_steps`` (and at the end of each
epoch), checkpoint every ``save_ckpt_steps`` and at the end. Checkpoints carry the data position
(epoch, batch inside the epoch), so a resumed run sees exactly the batches it had not seen yet.
"""

import logging
import math
import time

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn
from mindspore.amp import DynamicLossScaler
from tqdm import tqdm

from src.dataset import schema
from src.dataset.load_dataset import data_error, dataset_size, load_from_config, resolve_datasets
from src.dataset.writer import read_manifest
from src.evaluation import scorers
from src.evaluation.ppl_score import corpus_nll, make_nll_fn, scoring_batches
from src.training.divergence import DivergenceGuard
from src.training.lr_scheduler import schedule_from_config
from src.training.optimizer import build_optimizer
from src.training.train_step import TrainStep, make_loss_scaler
from src.utils import core_share
from src.utils.checkpoint import LOSS_SCALER_ENTRIES, CheckpointManager, parameter_entries
from src.utils.errors import UserError

logger = logging.getLogger(__name__)


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
    batches = scoring_batches(_batches(load_from_config(run.cfg, valid, epoch=0, shuffle=False, training=False),
                                       valid))  # one shape: one compiled graph
    if run.nll_fn is None:
        run.nll_fn = make_nll_fn(run.net)
    total, count = corpus_nll(run.net, batches, run.nll_fn)
    loss = total / max(count, 1)
    return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 50.0)), "valid_tokens": count}


class PhaseState:
    """Position of the loop: epoch, batch inside the epoch, optimizer step; and the same for the mixed-in
    dataset (``dataset_config.mix_dataset``)."""

    def __init__(self, epoch=0, batch_in_epoch=0, step=0, mix_epoch=0, mix_batch_in_epoch=0):
        self.epoch, self.batch_in_epoch, self.step = epoch, batch_in_epoch, step
        self.mix_epoch, self.mix_batch_in_epoch = mix_epoch, mix_batch_in_epoch

    def as_dict(self, phase, cfg, best=None, best_by="loss"):
        """The run state of a checkpoint; ``best`` is the selection criterion (lower is better:
        ``scorers.as_loss`` of the validation loss or of the scorer ``best_by``'s score), stored as
        ``best_valid_loss`` or ``best_valid_<best_by>`` (the figure itself)."""
        state = {"phase": phase, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
                 "mix_epoch": self.mix_epoch, "mix_batch_in_epoch": self.mix_batch_in_epoch,
                 "config_json": cfg.to_json_text()}
        if best is not None and math.isfinite(best):
            state[f"best_valid_{best_by}"] = scorers.as_loss(best_by, best)
        return state


def warn_about_schedule(lrc, total_steps: int, phase: str):
    """A WARNING when the schedule cannot do what its settings say within this phase's steps."""
    if lrc.warmup_steps > total_steps:  # every schedule warms up (src/training/lr_scheduler.py)
        logger.warning("%s: learn_rate_config.warmup_steps %d is beyond the %d steps of this phase: the learning "
                       "rate never reaches lr=%g (it ends at %.3g)", phase, lrc.warmup_steps, total_steps, lrc.lr,
                       schedule_from_config(lrc)(max(total_steps - 1, 0)))


def best_from_state(state: dict, best_by: str) -> float:
    """The selection criterion (lower is better) recorded in a resumed run state, or +inf."""
    key = f"best_valid_{best_by}"
    if key not in state:
        return math.inf
    return scorers.as_loss(best_by, state[key])


def _build_step(run):
    cfg = run.cfg
    lrc, lsc = cfg.learn_rate_config, cfg.loss_scale_config
    optimizer = build_optimizer(run.net.trainable_params(), lrc)
    scaler = make_loss_scaler(lsc.loss_scale_mode, lsc.init_loss_scale, lsc.loss_scale_factor, lsc.scale_window)
    reducer = None
    if cfg.dataset_config.dynamic_shapes:
        logger.info("the training step is compiled once, with dynamic batch shapes (dataset_config.dynamic_shapes)")
    if run.group_size > 1:
        reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=run.group_size)
    return TrainStep(run.net, optimizer, label_smoothing=cfg.model_config.label_smoothing, scaler=scaler,
                     clip_norm=lrc.clip_norm, accumulation_steps=lrc.grad_accumulation_steps,
                     grad_reducer=reducer, max_static_shapes=cfg.dataset_config.static_shape_limit())


def _entries(step_fn):
    extra = {}
    if isinstance(step_fn.scaler, DynamicLossScaler):
        extra = dict(zip(LOSS_SCALER_ENTRIES, (step_fn.scaler.scale_value, step_fn.scaler.counter), strict=True))
    return parameter_entries(step_fn.network, step_fn.optimizer, extra=extra)


def _restore(step_fn, resume) -> PhaseState:
    from mindspore import load_param_into_net

    params, state = resume[:2]
    source = resume[2] if len(resume) > 2 else "the checkpoint to resume from"
    wanted = [p for cell in (step_fn.network, step_fn.optimizer) for p in cell.get_parameters()]
    missing = sorted({p.name for p in wanted} - set(params))
    if missing:
        raise UserError(f"{source}: cannot resume: {len(missing)} entr{'y' if len(missing) == 1 else 'ies'} of the "
                        f"model and optimizer state missing ({', '.join(missing[:5])}"
                        f"{' ...' if len(missing) > 5 else ''}); to start a new run from its weights, give it as "
                        "checkpoint_options.existed_ckpt instead")
    wrong = [f"{p.name} {tuple(params[p.name].shape)} != {tuple(p.shape)}" for p in wanted
             if tuple(params[p.name].shape) != tuple(p.shape)]
    if wrong:
        raise UserError(f"{source}: cannot resume: shapes differ (checkpoint != this run): {'; '.join(wrong[:5])}")
    for cell in (step_fn.network, step_fn.optimizer):
        not_loaded, _ = load_param_into_net(cell, params, strict_load=True)
        if not_loaded:
            raise UserError(f"{source}: cannot resume: entries missing: {', '.join(not_loaded[:10])}")
    scale, counter = LOSS_SCALER_ENTRIES
    if isinstance(step_fn.scaler, DynamicLossScaler) and scale in params:
        step_fn.scaler.scale_value.set_data(params[scale])
        step_fn.scaler.counter.set_data(params[counter])
    return PhaseState(state["epoch"], state["batch_in_epoch"], state["step"], state.get("mix_epoch", 0),
                      state.get("mix_batch_in_epoch", 0))


def train_phase(run, phase, datasets, resume=None) -> PhaseState:
    """Train ``run.net`` on ``datasets`` for ``dataset_config.epochs`` epochs (or ``run.max_steps``)."""
    return _Phase(run, phase, datasets, resume).train()


class _Phase:
    """One phase's loop and everything it shares between steps."""

    def __init__(self, run, phase, datasets, resume):
        cfg, opts = run.cfg, run.cfg.checkpoint_options
        self.run, self.phase, self.datasets, self.cfg, self.opts = run, phase, datasets, cfg, opts
        self.step_fn = _build_step(run)
        self.schedule = schedule_from_config(cfg.learn_rate_config)
        self.manager = CheckpointManager(run.ckpt_dir, f"{opts.ckpt_prefix}_{phase}", opts.keep_ckpt_max,
                                         enabled=run.rank == 0)
        self.pos = _restore(self.step_fn, resume) if resume else PhaseState()
        self.valid = validation_sets(cfg, datasets)
        self.validator = None  # validation by generation, for a best_by that names a scorer
        scorer = scorers.selection(opts.best_by)
        if scorer is not None and self.valid and read_manifest(self.valid[0])["kind"] == schema.KIND_PAIR:
            from src.evaluation.valid_generation import GenerationValidator

            self.validator = GenerationValidator.from_config(cfg, self.valid, scorer)
        self.best_by = scorer.name if self.validator else scorers.LOSS
        if resume:  # the best checkpoint so far must not be replaced by a worse one after a resume
            self.manager.best_loss = best_from_state(resume[1], self.best_by)
        self.window = _Window()
        self.guard = DivergenceGuard(cfg.model_config.vocab_size)
        self.bar = None
        self.saved_step = None
        data = cfg.dataset_config
        self.mixer = _Mixer(run, self.pos) if data.mix_ratio and data.mix_phase == phase else None

    def train(self) -> PhaseState:
        cfg, run, pos, step_fn = self.cfg, self.run, self.pos, self.step_fn
        accumulation = cfg.learn_rate_config.grad_accumulation_steps
        # from the manifests, not get_dataset_size(), which would run the whole pipeline once; exact
        # without length buckets, a slight underestimate with them, an overestimate with token batches
        # (for the progress bar and the log)
        examples = dataset_size(self.datasets)
        data = cfg.dataset_config
        per_batch = max(1, data.max_tokens // data.max_len) if data.max_tokens else data.batch_size  # the fewest
        batches_per_epoch = math.ceil(math.ceil(examples / run.group_size) / per_batch)
        total_steps = cfg.dataset_config.epochs * batches_per_epoch // accumulation
        if run.max_steps:
            total_steps = min(total_steps, run.max_steps)
        if (run.max_steps and pos.step >= run.max_steps) or pos.epoch >= cfg.dataset_config.epochs:
            logger.info("%s: already finished at step %d (epoch %d): nothing to do", self.phase, pos.step,
                        pos.epoch)
            return pos
        logger.info("%s: %d examples, about %d batches per epoch, %d optimizer steps in all; starting at "
                    "step %d", self.phase, examples, batches_per_epoch, total_steps, pos.step)
        warn_about_schedule(cfg.learn_rate_config, total_steps, self.phase)
        cores = core_share.for_device(ms.get_context("device_target"))
        with tqdm(total=total_steps, initial=pos.step, desc=self.phase, unit=" step", disable=run.rank != 0,
                  mininterval=2.0) as self.bar:
            while pos.epoch < cfg.dataset_config.epochs:
                loader = load_from_config(cfg, self.datasets, epoch=pos.epoch, shuffle=True, rank=run.rank,
                                          group_size=run.group_size, skip_batches=pos.batch_in_epoch)
                for batch, mixed in self.stream(loader):
                    out = step_fn(*batch, lr=self.schedule(pos.step))
                    if not mixed:
                        pos.batch_in_epoch += 1
                    self.window.add(batch, out)
                    self.window.mixed += int(mixed)
                    if not step_fn.updated:  # a micro-batch of an accumulation group
                        continue
                    pos.step += 1
                    self.bar.update()
                    cores.adapt()  # keep to the cores other processes leave (after the first step: the
                    # kernels' thread pools exist, their size is the machine's)
                    reason = self.guard.observe(self.window.last_loss)
                    if _any_rank(run, reason is not None):
                        self.diverged(reason or "the loss diverged on another device")
                    self.after_step()
                    if _stop_agreed(run) or (run.max_steps and pos.step >= run.max_steps):
                        self.save()
                        return pos
                dropped = step_fn.drop_partial_accumulation()
                if dropped:
                    logger.info("%s epoch %d: the last %d batch(es) did not fill an accumulation group and were "
                                "not applied", self.phase, pos.epoch, dropped)
                pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
                if self.opts.eval_every_steps == 0:
                    self.validate_and_keep_best()
        self.save()
        return pos

    def stream(self, loader):
        """``(batch, mixed)`` for each optimizer step of this epoch: the phase's own batches, with the
        mixer's taking the steps it is due (the main batch waits; it is counted only when used)."""
        for batch in _batches(loader, self.datasets):
            while self.mixer is not None and self.mixer.due(self.pos.step):
                yield self.mixer.next(), True
            yield batch, False

    def state(self, with_best=True) -> dict:
        best = self.manager.best_loss if with_best else None
        return self.pos.as_dict(self.phase, self.cfg, best, self.best_by)

    def save(self):
        position = (self.pos.epoch, self.pos.batch_in_epoch, self.pos.step)
        if self.saved_step == position:
            return  # the periodic save already wrote exactly this state
        self.check_parameters()
        self.run.publish_config()
        self.manager.save(_entries(self.step_fn), self.state())
        self.saved_step = position

    def check_parameters(self):
        """Parameters holding a NaN or an Inf end the training before anything is saved (every rank holds
        the same parameters, so every rank stops)."""
        bad = [p.name for p in self.run.net.trainable_params() if not np.isfinite(p.asnumpy()).all()]
        if bad:
            self.diverged(f"NaN or Inf in {len(bad)} parameter(s), e.g. {', '.join(bad[:3])}")

    def diverged(self, reason: str):
        """Stop: nothing more is saved, so the newest checkpoint stays the last good one (a best checkpoint
        is only ever written for a finite validation score)."""
        last = self.manager.latest()
        advice = (f"lower learn_rate_config.lr (now {self.cfg.learn_rate_config.lr:g}) or raise "
                  "learn_rate_config.warmup_steps")
        kept = (f"the last good checkpoint is {last}; {advice}, then --resume {last}" if last else
                f"no checkpoint was written; {advice} and start again")
        raise UserError(f"{self.run.run_dir}: the training diverged at {self.phase} step {self.pos.step} ({reason}); "
                        f"stopped without saving: {kept}")

    def after_step(self):
        opts, pos, window = self.opts, self.pos, self.window
        if pos.step % opts.log_every_steps == 0:
            seconds = time.perf_counter() - window.start
            record = {"phase": self.phase, "step": pos.step, "epoch": pos.epoch, "loss": window.loss / window.n,
                      "lr": self.schedule(pos.step - 1), "loss_scale": window.last[0], "grad_norm": window.last[1],
                      "overflow_steps": window.overflows, "src_tokens_per_s": window.src_tokens / seconds,
                      "tgt_tokens_per_s": window.tgt_tokens / seconds, "seconds_per_step": seconds / window.n}
            if self.mixer is not None:
                record["mixed_steps"] = window.mixed  # steps of this window that took a mix_dataset batch
            self.run.trim_metrics()
            self.run.metrics.write(record)
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}")
            logger.info("%s step %d: loss %.4f lr %.3g scale %.0f norm %.3f %.0f tgt tok/s", self.phase, pos.step,
                        record["loss"], record["lr"], record["loss_scale"], record["grad_norm"],
                        record["tgt_tokens_per_s"])
            window.reset()
        if opts.eval_every_steps and pos.step % opts.eval_every_steps == 0:
            self.validate_and_keep_best()
        if pos.step % opts.save_ckpt_steps == 0:
            self.save()

    def validate_and_keep_best(self):
        run, phase, pos = self.run, self.phase, self.pos
        result = validate(run, self.valid)
        if result is None:
            return
        criterion = result["valid_loss"]
        if not math.isfinite(criterion):
            self.diverged(f"the validation loss is {criterion}")
        metric = f"valid_{self.best_by}"
        if self.validator is not None:
            result.update(self.validator(run.net))
            criterion = scorers.as_loss(self.best_by, result[metric])
        run.trim_metrics()
        run.metrics.write({"phase": phase, "step": pos.step, "epoch": pos.epoch, **result})
        logger.info("%s step %d: valid loss %.4f ppl %.2f", phase, pos.step, result["valid_loss"],
                    result["valid_ppl"])
        state = self.state(with_best=False)
        if self.validator is not None:
            figures = ", ".join(f"{f} {result[f'valid_{f}']:.2f}" for f in self.validator.scorer.figures)
            logger.info("%s step %d: valid %s %.2f (%s) on %d pairs, copy rate %.2f (references %.2f), %.1f s",
                        phase, pos.step, self.best_by, result[metric], figures, result[f"{metric}_pairs"],
                        result["valid_copy_rate"], result["valid_ref_copy_rate"], result["valid_decode_seconds"])
            state[metric] = float(result[metric])
        if criterion < self.manager.best_loss:
            self.run.publish_config()
        self.manager.save_if_best(_entries(self.step_fn), state, criterion)


class _Mixer:
    """Batches of ``dataset_config.mix_dataset`` interleaved with a phase's own (multi-task training, e.g.
    Gigaword pairs in the last part of MASS pre-training).

    Optimizer step ``s`` (counted from 0) takes a mixed batch when ``floor((s + 1) r) > floor(s r)`` and
    ``s >= mix_from_step``: a share ``r`` of the steps, spread evenly, decided by the step number alone,
    so that a resumed run mixes exactly as an uninterrupted one. The mixed dataset is read epoch after
    epoch (its own shuffle per epoch); its position is part of the run state.
    """

    def __init__(self, run, pos):
        data = run.cfg.dataset_config
        if run.cfg.learn_rate_config.grad_accumulation_steps != 1:
            raise UserError("dataset_config.mix_ratio does not work with gradient accumulation "
                            "(learn_rate_config.grad_accumulation_steps must be 1)")
        self.run, self.pos, self.ratio, self.start = run, pos, data.mix_ratio, data.mix_from_step
        self.datasets = data.mix_dataset
        self.iterator = None

    def due(self, step: int) -> bool:
        return step >= self.start and math.floor((step + 1) * self.ratio) > math.floor(step * self.ratio)

    def next(self):
        run, pos = self.run, self.pos
        while True:
            if self.iterator is None:
                loader = load_from_config(run.cfg, self.datasets, epoch=pos.mix_epoch, shuffle=True, rank=run.rank,
                                          group_size=run.group_size, skip_batches=pos.mix_batch_in_epoch)
                self.iterator = _batches(loader, self.datasets)
            batch = next(self.iterator, None)
            if batch is not None:
                pos.mix_batch_in_epoch += 1
                return batch
            if pos.mix_batch_in_epoch == 0:
                raise UserError(f"{self.datasets}: dataset_config.mix_dataset gives no batch")
            self.iterator = None
            pos.mix_epoch, pos.mix_batch_in_epoch = pos.mix_epoch + 1, 0


def _batches(loader, datasets):
    """The loader's batches; a bad example of ``datasets`` (see load_dataset.check_ids) is a UserError
    naming them, not a traceback."""
    iterator = loader.create_tuple_iterator(num_epochs=1, output_numpy=True)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError as exc:
            error = data_error(exc)
            if error is None:
                raise
            names = ", ".join(str(p) for p in resolve_datasets(datasets))
            raise UserError(f"{names}: {error}") from None
        yield batch


def _stop_agreed(run) -> bool:
    """Whether to stop now; under data parallel every rank must stop at the same step (a rank that
    left early would leave the others waiting in the gradient all-reduce), so the flags are OR-ed."""
    run.stop_requested = _any_rank(run, run.stop_requested)
    return run.stop_requested


def _any_rank(run, flag: bool) -> bool:
    """``flag`` OR-ed over the data-parallel ranks (itself on one device)."""
    if run.group_size == 1:
        return flag
    from mindspore import ops

    total = ops.AllReduce(ops.ReduceOp.SUM)(Tensor(np.array([float(flag)], np.float32)))  # CPU: only SUM
    return bool(total.asnumpy()[0] > 0)


class _Window:
    """Running sums between two log lines."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.loss, self.n, self.src_tokens, self.tgt_tokens, self.overflows, self.mixed = 0.0, 0, 0, 0, 0, 0
        self.start = time.perf_counter()
        self.last = None

    def add(self, batch, out):
        loss, finite, scale, norm = (o.asnumpy() if isinstance(o, Tensor) else o for o in out)
        self.n += 1
        self.last_loss = float(loss)
        self.loss += self.last_loss
        self.overflows += int(not bool(finite))
        self.src_tokens += int(np.count_nonzero(batch[schema.SRC]))
        self.tgt_tokens += int(np.count_nonzero(batch[schema.TGT]))
        self.last = (float(scale), float(norm))
