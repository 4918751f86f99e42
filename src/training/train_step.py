"""The jit-compiled training step: loss, gradients, loss scaling, overflow skip, clipping, update.

``TrainStep(...)`` is a callable ``step(src_ids, dec_in_ids, dec_positions, tgt_ids, lr)`` that always
returns the same tuple ``(loss, is_finite, loss_scale, grad_norm)``. The learning rate is an input and
is written into the optimizer inside the graph: a compiled graph does not see ``Parameter.set_data``
calls made from Python after it was compiled (measured on MindSpore 2.10), so nothing is set from
outside. Gradient accumulation over ``accumulation_steps`` micro-batches is handled inside: only every
N-th call updates the parameters (the others return ``is_finite=True`` and the running norm 0). A step
whose gradients overflow changes no parameter and no optimizer state; with dynamic scaling it lowers
the scale.

Dropout: the step puts the network in training mode (``set_train(True)``) at each call, so the
model's dropout is active in every update; a validation between steps that switches to eval mode does not
leak into the next step. (A new ``nn.Cell`` is in eval mode; until 2026-12-08 the steps ran that way, so
every run before then trained without dropout.) Dropout's random state is not part of a checkpoint: with
dropout on, a resumed run is a correct continuation but not bitwise the uninterrupted run.

Graphs and memory: a jit graph is compiled for each new batch shape and kept, with memory of its own for
all its intermediate tensors (about 0.6-1 GB per shape at the small preset, batch 32 x 64). The first
``max_static_shapes`` shapes get such a graph; batches of any later shape (e.g. the partial batch that
ends each length bucket's epoch) share one graph with dynamic (batch, length) dimensions, which gives
the same results and runs 1.6-1.9x slower per step. ``max_static_shapes=0`` (the config's
``dynamic_shapes=true``) sends every batch to the dynamic graph; ``None`` compiles every shape.
"""

import logging

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.amp import DynamicLossScaler, StaticLossScaler

from src.transformer.loss import label_smoothed_nll
from src.utils.checkpoint import ACCUM_PREFIX

logger = logging.getLogger(__name__)


def make_loss_scaler(mode: str, init_scale: float, factor: float, window: int):
    """``dynamic`` (grows after ``window`` clean steps, shrinks on overflow), ``static`` or ``none``."""
    if mode == "dynamic":
        return DynamicLossScaler(init_scale, int(factor), int(window))
    if mode == "static":
        return StaticLossScaler(init_scale)
    if mode == "none":
        return StaticLossScaler(1.0)
    raise ValueError(f"unknown loss_scale_mode {mode!r}: dynamic, static or none")


def global_norm(grads):
    return ops.sqrt(sum(ops.square(g.astype(ms.float32)).sum() for g in grads))


def clip_by_global_norm(grads, clip_norm: float, norm=None):
    """Scale all gradients by ``min(1, clip_norm / norm)``; returns ``(grads, norm)``. ``norm``: their
    global norm if already computed."""
    norm = global_norm(grads) if norm is None else norm
    factor = clip_norm / ops.maximum(norm, clip_norm)
    return tuple(g * factor.astype(g.dtype) for g in grads), norm


def _dynamic_graph(method):
    """``ms.jit(method)`` with dynamic (batch, length) dimensions for its four batch inputs, so that one graph
    serves every batch shape."""
    def step(src_ids, dec_in_ids, dec_positions, tgt_ids, *rest):  # a plain function: what enable_dynamic takes
        return method(src_ids, dec_in_ids, dec_positions, tgt_ids, *rest)

    batch = Tensor(shape=[None, None], dtype=ms.int32)
    return ms.enable_dynamic(src_ids=batch, dec_in_ids=batch, dec_positions=batch, tgt_ids=batch)(ms.jit(step))


class TrainStep:
    """Holds the compiled functions and the accumulation buffers; see the module docstring."""

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, *, label_smoothing=0.0, scaler=None,
                 clip_norm=0.0, accumulation_steps=1, grad_reducer=None, max_static_shapes=None):
        self.network = network
        self.optimizer = optimizer
        self.scaler = scaler or StaticLossScaler(1.0)
        self.clip_norm = float(clip_norm)
        self.accumulation_steps = int(accumulation_steps)
        self.grad_reducer = grad_reducer
        self.label_smoothing = float(label_smoothing)
        self.params = optimizer.parameters
        self._micro = 0
        self.updated = False  # whether the last call applied an update (False inside an accumulation group)
        self._grad_fn = ms.value_and_grad(self._forward, None, self.params, has_aux=True)
        if self.accumulation_steps > 1:
            self.buffers = ms.ParameterTuple(
                Parameter(ops.zeros_like(p), name=f"{ACCUM_PREFIX}{p.name}", requires_grad=False)
                for p in self.params)
        self.max_static_shapes = max_static_shapes
        if self.max_static_shapes is not None and self.max_static_shapes < 0:
            raise ValueError(f"max_static_shapes must be >= 0 or None, not {max_static_shapes}")
        self.static_shapes = set()   # the batch shapes that have (or will get) a graph of their own
        self.dynamic_calls = 0       # calls that went to the shared dynamic-shape graph
        self._static = (ms.jit(self._update_impl), ms.jit(self._accumulate_impl))
        self._dynamic = None         # (update, accumulate) with dynamic shapes, built on first use
        self._zero = ms.jit(self._zero_impl)

    def _forward(self, src_ids, dec_in_ids, dec_positions, tgt_ids):
        logits = self.network(src_ids, dec_in_ids, dec_positions)
        loss_sum, n_tokens = label_smoothed_nll(logits, tgt_ids, self.label_smoothing)
        loss = loss_sum / ops.maximum(n_tokens, 1.0)
        return self.scaler.scale(loss), loss

    def _grads(self, *batch):
        (_, loss), grads = self._grad_fn(*batch)
        if self.grad_reducer is not None:
            grads = self.grad_reducer(grads)
        return loss, grads

    def _accumulate_impl(self, src_ids, dec_in_ids, dec_positions, tgt_ids):
        loss, grads = self._grads(src_ids, dec_in_ids, dec_positions, tgt_ids)
        for i in range(len(grads)):  # zip(strict=...) is not supported inside a graph
            ops.assign_add(self.buffers[i], grads[i])
        return loss

    def _zero_impl(self):
        for i in range(len(self.buffers)):
            ops.assign(self.buffers[i], ops.zeros_like(self.buffers[i]))
        return self.buffers[0].sum()

    def drop_partial_accumulation(self) -> int:
        """Forget micro-batches accumulated since the last update (the trainer calls this at the end of
        an epoch, so that accumulation groups never straddle epochs); returns how many there were."""
        dropped = self._micro
        if self.accumulation_steps == 1 or dropped == 0:
            return 0
        self._zero()  # in the graph: a compiled graph would not see Parameter.set_data
        self._micro = 0
        return dropped

    def _update_impl(self, src_ids, dec_in_ids, dec_positions, tgt_ids, lr):
        loss, grads = self._grads(src_ids, dec_in_ids, dec_positions, tgt_ids)
        if self.accumulation_steps > 1:
            n = self.accumulation_steps
            grads = tuple((grads[i] + self.buffers[i]) / n for i in range(len(grads)))
            for buf in self.buffers:
                ops.assign(buf, ops.zeros_like(buf))
        grads = self.scaler.unscale(grads)
        norm = global_norm(grads)
        # any inf / nan gradient makes the norm inf / nan: one check instead of one per tensor
        # (all_finite costs about 3% of a CPU step); a finite norm above float32's range (gradients over
        # 1e19) also counts as an overflow, which is what it is
        is_finite = ops.isfinite(norm)
        if is_finite:
            if self.clip_norm > 0:
                grads, norm = clip_by_global_norm(grads, self.clip_norm, norm)
            loss = ops.depend(loss, ops.assign(self.optimizer.learning_rate, lr))
            loss = ops.depend(loss, self.optimizer(grads))
        if isinstance(self.scaler, DynamicLossScaler):
            self.scaler.adjust(is_finite)
        return loss, is_finite, self.scaler.scale_value, norm

    def _graphs(self, batch):
        """(update, accumulate) for this batch: its own static graphs, or the shared dynamic ones."""
        shape = tuple(tuple(b.shape) for b in batch)
        if shape in self.static_shapes or self.max_static_shapes is None \
                or len(self.static_shapes) < self.max_static_shapes:
            self.static_shapes.add(shape)
            return self._static
        if self._dynamic is None:
            if self.max_static_shapes:
                logger.info("batch shape %s/%s is past the first %d shapes: it and every later new shape share "
                            "one dynamic-shape graph (dataset_config.max_static_shapes)",
                            "x".join(map(str, shape[0])), shape[3][1], self.max_static_shapes)
            self._dynamic = (_dynamic_graph(self._update_impl), _dynamic_graph(self._accumulate_impl))
        self.dynamic_calls += 1
        return self._dynamic

    def __call__(self, src_ids, dec_in_ids, dec_positions, tgt_ids, lr: float):
        batch = tuple(Tensor(b) if not isinstance(b, Tensor) else b
                      for b in (src_ids, dec_in_ids, dec_positions, tgt_ids))
        if not self.network.training:  # a validation between steps left it in eval mode
            self.network.set_train(True)
        update, accumulate = self._graphs(batch)
        self._micro += 1
        self.updated = self._micro >= self.accumulation_steps
        if not self.updated:
            loss = accumulate(*batch)
            return loss, Tensor(True), self.scaler.scale_value, Tensor(0.0, ms.float32)
        self._micro = 0
        return update(*batch, Tensor(lr, ms.float32))
