"""The jit train step: learning, overflow skipping, loss scaling, accumulation, clipping, the loss."""

import numpy as np
import pytest
from mindspore import Tensor, nn

from src.training.optimizer import build_optimizer, decays
from src.training.train_step import TrainStep, clip_by_global_norm, make_loss_scaler
from src.transformer.loss import label_smoothed_nll
from src.transformer.transformer import MassTransformer

VOCAB = 50


def copy_batch(rows=8, length=10, seed=0):
    """src = random tokens + </s>; the decoder must copy it (teacher forcing)."""
    rng = np.random.default_rng(seed)
    tgt = np.concatenate([rng.integers(5, VOCAB, (rows, length - 1)), np.full((rows, 1), 2)], 1).astype(np.int32)
    dec_in = np.concatenate([np.ones((rows, 1), np.int32), tgt[:, :-1]], 1)
    pos = np.tile(np.arange(length, dtype=np.int32), (rows, 1))
    return tgt.copy(), dec_in, pos, tgt


class Stepper:
    """A TrainStep at a fixed learning rate, called like the step itself."""

    def __init__(self, model_config, lr=1e-2, scaler=None, accumulation=1, clip=1.0, smoothing=0.0,
                 optimizer="adam", dynamic_shapes=False, max_static_shapes=None):
        from config.config import LearnRateConfig

        self.network = MassTransformer(model_config)
        self.optimizer = build_optimizer(self.network.trainable_params(),
                                         LearnRateConfig(lr=lr, min_lr=0.0, optimizer=optimizer))
        self.step = TrainStep(self.network, self.optimizer, label_smoothing=smoothing, scaler=scaler,
                              clip_norm=clip, accumulation_steps=accumulation,
                              max_static_shapes=0 if dynamic_shapes else max_static_shapes)
        self.lr = lr

    def __call__(self, *batch, lr=None):
        return self.step(*batch, lr=self.lr if lr is None else lr)


make_step = Stepper


def params(net):
    return {p.name: p.asnumpy().copy() for p in net.trainable_params()}


def test_loss_decreases_on_a_copy_task(tiny_model_config):
    step = make_step(tiny_model_config)
    batch = copy_batch()
    losses = [float(step(*batch)[0].asnumpy()) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]


def test_dynamic_shapes_train_like_one_graph_per_shape(tiny_model_config):
    """One graph with dynamic (batch, length) dimensions gives the losses and parameters of a graph
    compiled per shape, over batches of two shapes."""
    shapes = [(8, 10), (5, 7), (8, 10)]
    runs = []
    for dynamic in (False, True):
        step = make_step(tiny_model_config, smoothing=0.1, dynamic_shapes=dynamic)
        losses = [float(step(*copy_batch(rows, length, seed=i))[0].asnumpy())
                  for i, (rows, length) in enumerate(shapes)]
        runs.append((losses, params(step.network)))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    assert len(set(np.round(runs[0][0], 4))) == len(shapes)  # the steps differ: the test can see a wrong one
    for name, value in runs[0][1].items():
        np.testing.assert_allclose(runs[1][1][name], value, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_shapes_past_the_static_limit_share_the_dynamic_graph_and_train_alike(tiny_model_config, accumulation):
    """With max_static_shapes=1 the first shape keeps its own graph and the later ones go through the
    dynamic-shape graph (update and accumulation alike): the same losses and parameters as one graph per
    shape."""
    shapes = [(8, 10), (5, 7), (8, 10), (6, 9), (5, 7), (8, 10)]
    runs = {}
    for limit in (None, 1):
        step = make_step(tiny_model_config, smoothing=0.1, accumulation=accumulation, max_static_shapes=limit)
        losses = [float(step(*copy_batch(rows, length, seed=i))[0].asnumpy())
                  for i, (rows, length) in enumerate(shapes)]
        runs[limit] = (losses, params(step.network), step.step)
    limited = runs[1][2]
    assert limited.static_shapes == {((8, 10),) * 4}
    assert limited.dynamic_calls == 3                  # (5, 7), (6, 9), (5, 7)
    assert runs[None][2].dynamic_calls == 0 and len(runs[None][2].static_shapes) == 3
    np.testing.assert_allclose(runs[1][0], runs[None][0], rtol=1e-5)
    assert len(set(np.round(runs[None][0], 4))) == len(shapes)
    for name, value in runs[None][1].items():
        np.testing.assert_allclose(runs[1][1][name], value, atol=1e-5, err_msg=name)


def test_overflow_changes_no_parameter_and_lowers_the_scale(tiny_model_config):
    step = make_step(tiny_model_config, scaler=make_loss_scaler("dynamic", 1024.0, 2.0, 100))
    # set up before the first (compiling) call: a graph does not see later Parameter.set_data calls
    table = step.network.embedding.table
    poisoned = table.asnumpy().copy()
    poisoned[43] = 1e38  # x sqrt(d_model) is past float32: token 43 overflows, gradients are inf/nan
    table.set_data(Tensor(poisoned))
    for p in step.optimizer.get_parameters():  # pretend earlier steps left non-zero moments
        if p.name.startswith("moment"):
            p.set_data(Tensor(np.full(p.shape, 0.01, np.float32)))
    before = params(step.network)
    state = {p.name: p.asnumpy().copy() for p in step.optimizer.get_parameters()}
    batch = copy_batch()
    assert (batch[0] == 43).any()
    _, finite, scale, _ = step(*batch)
    assert not bool(finite.asnumpy())
    assert float(scale.asnumpy()) == 512.0
    for name, value in params(step.network).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    for p in step.optimizer.get_parameters():  # moments, step counter and learning rate untouched too
        np.testing.assert_array_equal(p.asnumpy(), state[p.name], err_msg=p.name)
    _, finite, scale, _ = step(*batch)
    assert not bool(finite.asnumpy()) and float(scale.asnumpy()) == 256.0


def test_learning_rate_is_an_input_of_the_compiled_step(tiny_model_config):
    step = make_step(tiny_model_config)
    batch = copy_batch()
    step(*batch)                      # compiles
    before = params(step.network)
    step(*batch, lr=0.0)              # Adam with lr 0 must not move any parameter
    for name, value in params(step.network).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    step(*batch, lr=1e-2)
    assert any(not np.array_equal(v, before[k]) for k, v in params(step.network).items())


def test_dynamic_scale_grows_after_the_window(tiny_model_config):
    step = make_step(tiny_model_config, scaler=make_loss_scaler("dynamic", 4.0, 2.0, 3))
    scales = [float(step(*copy_batch())[2].asnumpy()) for _ in range(4)]
    assert scales == [4.0, 4.0, 8.0, 8.0]


@pytest.mark.slow
def test_accumulation_equals_the_big_batch(tiny_model_config):
    # momentum, not Adam: Adam's first update is lr * sign(g), which turns float noise in gradients that
    # are zero in exact arithmetic (e.g. the key biases) into full-size differences
    big = copy_batch(rows=8)
    halves = [tuple(a[:4] for a in big), tuple(a[4:] for a in big)]
    one = make_step(tiny_model_config, optimizer="momentum")
    one(*big)
    two = make_step(tiny_model_config, accumulation=2, optimizer="momentum")
    before = params(two.network)
    two(*halves[0])
    for name, value in params(two.network).items():  # the first micro-batch does not update
        np.testing.assert_array_equal(value, before[name])
    two(*halves[1])
    for name, value in params(one.network).items():
        np.testing.assert_allclose(params(two.network)[name], value, atol=1e-7, err_msg=name)


def test_label_smoothed_nll_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 7)).astype(np.float32)
    labels = np.array([[5, 6, 0], [2, 0, 0]], np.int32)
    eps = 0.1
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = np.full(logits.shape, eps / 6)
    np.put_along_axis(q, labels[..., None], 1 - eps, -1)
    expected = -(q * logp).sum(-1)[labels != 0].sum()
    loss, n = label_smoothed_nll(Tensor(logits), Tensor(labels), eps)
    assert float(n.asnumpy()) == 3
    assert float(loss.asnumpy()) == pytest.approx(expected, rel=1e-5)
    plain, _ = label_smoothed_nll(Tensor(logits), Tensor(labels), 0.0)
    assert float(plain.asnumpy()) == pytest.approx(-np.take_along_axis(logp, labels[..., None], -1)[..., 0][
        labels != 0].sum(), rel=1e-5)


def test_clip_by_global_norm():
    grads = (Tensor(np.array([3.0, 0.0], np.float32)), Tensor(np.array([[4.0]], np.float32)))
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert float(norm.asnumpy()) == pytest.approx(5.0)
    np.testing.assert_allclose(clipped[0].asnumpy(), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(clipped[1].asnumpy(), [[0.8]], rtol=1e-6)
    same, _ = clip_by_global_norm(grads, 10.0)
    np.testing.assert_allclose(same[0].asnumpy(), [3.0, 0.0])


def test_weight_decay_groups_and_optimizers(tiny_model_config):
    from config.config import LearnRateConfig

    net = MassTransformer(tiny_model_config)
    names = [p.name for p in net.trainable_params()]
    assert not decays("embedding.table") and not decays("encoder_norm.gamma")
    assert any(decays(n) for n in names) and not all(decays(n) for n in names)
    for kind in ("adam", "momentum", "lamb"):
        opt = build_optimizer(net.trainable_params(), LearnRateConfig(optimizer=kind, weight_decay=0.01))
        assert isinstance(opt, nn.Optimizer)
    with pytest.raises(ValueError, match="loss_scale_mode"):
        make_loss_scaler("bogus", 1.0, 2.0, 1)


@pytest.mark.slow
def test_a_dropped_partial_accumulation_leaves_no_trace(tiny_model_config):
    big = copy_batch(rows=8)
    halves = [tuple(a[:4] for a in big), tuple(a[4:] for a in big)]
    clean = make_step(tiny_model_config, accumulation=2, optimizer="momentum")
    clean(*halves[0])
    clean(*halves[1])
    dropped = make_step(tiny_model_config, accumulation=2, optimizer="momentum")
    dropped(*copy_batch(rows=4, seed=9))          # a micro-batch at the end of an epoch ...
    assert dropped.step.drop_partial_accumulation()  # ... is forgotten
    assert not dropped.step.drop_partial_accumulation()
    dropped(*halves[0])
    dropped(*halves[1])
    for name, value in params(clean.network).items():
        np.testing.assert_allclose(params(dropped.network)[name], value, atol=1e-7, err_msg=name)


def _dropout_stepper(model_config, p, state=None):
    """A Stepper (lr 1e-2) over a fresh network, global seed 7, dropout ``p``, its weights copied from
    ``state`` when given; the network is still in eval mode, as a new Cell is."""
    import dataclasses

    import mindspore as ms

    ms.set_seed(7)
    stepper = Stepper(dataclasses.replace(model_config, hidden_dropout_prob=p, attention_dropout_prob=p))
    if state is not None:
        ms.load_param_into_net(stepper.network, {k: ms.Parameter(Tensor(v), name=k) for k, v in state.items()})
    assert not stepper.network.training
    return stepper


def test_the_step_trains_with_the_models_dropout(tiny_model_config):
    """The step itself turns training mode on (the trainer never did: until 2026-12-08 every run trained
    without dropout): with dropout the first loss differs from the same weights' loss without it, two
    runs from the same seed agree, and a validation between steps (eval mode) does not switch dropout
    off for the next step."""
    batch = copy_batch()
    plain = _dropout_stepper(tiny_model_config, 0.0)
    state = params(plain.network)
    first_plain = float(plain(*batch)[0].asnumpy())

    def run(validate_between):
        step = _dropout_stepper(tiny_model_config, 0.3, state)
        out = [float(step(*batch)[0].asnumpy())]
        assert step.network.training
        if validate_between:
            step.network.set_train(False)  # what valid_generation / ppl_score do, restoring it afterwards or not
        out.append(float(step(*batch)[0].asnumpy()))
        return out

    straight, validated = run(False), run(True)
    assert abs(straight[0] - first_plain) > 1e-3
    assert straight == validated


def test_validation_between_dropout_steps_scores_without_dropout(tiny_model_config):
    """The trainer's validation (corpus_nll, one compiled nll function reused) between steps that train
    with dropout scores the model in eval mode: the same figure twice, the same as a fresh eval-mode
    copy of the weights, and training goes on with dropout afterwards."""
    from src.evaluation.ppl_score import corpus_nll, make_nll_fn

    batch = copy_batch()
    step = _dropout_stepper(tiny_model_config, 0.3)
    net = step.network
    nll_fn = make_nll_fn(net)
    for _ in range(2):
        step(*batch)
        first, second = corpus_nll(net, [batch], nll_fn), corpus_nll(net, [batch], nll_fn)
        assert first == second and net.training
        copy = _dropout_stepper(tiny_model_config, 0.3, params(net)).network
        assert corpus_nll(copy, [batch]) == pytest.approx(first, rel=1e-6)
