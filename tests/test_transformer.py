import dataclasses
import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, ops

from src.text.dictionary import MASK_ID, PAD_ID
from src.transformer.attention import SelfAttention
from src.transformer.positional import sinusoid_table
from src.transformer.transformer import MassTransformer, count_parameters

ATOL = 1e-5


def make_model(config, train=False, **changes):
    model = MassTransformer(dataclasses.replace(config, **changes) if changes else config)
    model.set_train(train)
    return model


def random_ids(rng, batch, length, vocab=50):
    return rng.integers(5, vocab, size=(batch, length)).astype(np.int32)


def positions(batch, start, length):
    return np.tile(np.arange(start, start + length, dtype=np.int32), (batch, 1))


def run(model, src, dec, pos):
    return model(Tensor(src), Tensor(dec), Tensor(pos)).asnumpy()


def decode(model, src, dec, pos, memory=None):
    src = Tensor(src)
    if memory is None:
        memory, _ = model.encode(src)
    hidden, cache = model.decode(Tensor(dec), Tensor(pos), memory, model.memory_mask(src))
    assert cache is None
    return hidden.asnumpy()


@pytest.fixture
def model(tiny_model_config):
    return make_model(tiny_model_config)


@pytest.mark.parametrize("batch,src_len,tgt_len", [(1, 3, 1), (2, 7, 4), (5, 12, 9)])
def test_output_shapes(model, batch, src_len, tgt_len):
    rng = np.random.default_rng(0)
    src = random_ids(rng, batch, src_len)
    memory, src_mask = model.encode(Tensor(src))
    assert memory.shape == (batch, src_len, 16) and memory.dtype == ms.float32
    assert src_mask.shape == (batch, src_len) and src_mask.dtype == ms.bool_
    logits = run(model, src, random_ids(rng, batch, tgt_len), positions(batch, 0, tgt_len))
    assert logits.shape == (batch, tgt_len, 50) and logits.dtype == np.float32
    assert np.isfinite(logits).all()


def test_jit_forward_with_several_shapes_matches_pynative(model):
    @ms.jit
    def forward(src, dec, pos):
        return model(src, dec, pos)

    rng = np.random.default_rng(1)
    for batch, src_len, tgt_len in [(2, 6, 3), (3, 9, 5), (2, 6, 3)]:
        src, dec = random_ids(rng, batch, src_len), random_ids(rng, batch, tgt_len)
        pos = positions(batch, 1, tgt_len)
        got = forward(Tensor(src), Tensor(dec), Tensor(pos)).asnumpy()
        np.testing.assert_allclose(got, run(model, src, dec, pos), atol=ATOL)


def test_source_padding_is_invisible(model):
    """A padded source gives the same memory and decoder output as the unpadded one.

    The decoder positions reach past the source length: ModelZoo's training cross-attention mask let
    exactly those positions attend to padding.
    """
    rng = np.random.default_rng(2)
    short = random_ids(rng, 1, 5)
    padded = np.concatenate([short, np.full((1, 4), PAD_ID, np.int32)], axis=1)
    dec, pos = random_ids(rng, 1, 8), positions(1, 0, 8)
    mem_short, _ = model.encode(Tensor(short))
    mem_padded, mask = model.encode(Tensor(padded))
    np.testing.assert_array_equal(mask.asnumpy(), [[True] * 5 + [False] * 4])
    np.testing.assert_allclose(mem_padded.asnumpy()[:, :5], mem_short.asnumpy(), atol=ATOL)
    np.testing.assert_allclose(decode(model, padded, dec, pos), decode(model, short, dec, pos), atol=ATOL)
    # in a batch with a longer row the padded row still decodes as if alone
    batch_src = np.concatenate([padded, random_ids(rng, 1, 9)], axis=0)
    batch_out = decode(model, batch_src, np.repeat(dec, 2, 0), np.repeat(pos, 2, 0))
    np.testing.assert_allclose(batch_out[:1], decode(model, short, dec, pos), atol=ATOL)


def test_decoder_is_causal(model):
    rng = np.random.default_rng(3)
    src, dec, pos = random_ids(rng, 2, 6), random_ids(rng, 2, 6), positions(2, 2, 6)
    changed = dec.copy()
    changed[:, 3] = (changed[:, 3] - 5 + 1) % 45 + 5  # another real token
    before, after = run(model, src, dec, pos), run(model, src, changed, pos)
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=ATOL)
    assert np.abs(after[:, 3:] - before[:, 3:]).max(axis=-1).min() > 1e-4  # every later position changes


def test_embedding_matches_manual_reference(model):
    ids = np.array([[5, 9, 0], [7, 7, 7]], np.int32)
    pos = np.array([[3, 4, 5], [0, 10, 63]], np.int32)
    table = model.embedding.table.asnumpy()
    expected = table[ids] * math.sqrt(16) + sinusoid_table(64, 16)[pos]
    np.testing.assert_allclose(model.embedding(Tensor(ids), Tensor(pos)).asnumpy(), expected, atol=1e-6)


def test_sinusoid_table_values():
    table = sinusoid_table(50, 8)
    p, i = 7, 2
    freq = 1e4 ** (-i / 3)
    assert table[p, i] == pytest.approx(math.sin(p * freq), abs=1e-6)
    assert table[p, 4 + i] == pytest.approx(math.cos(p * freq), abs=1e-6)
    np.testing.assert_array_equal(table[0], [0, 0, 0, 0, 1, 1, 1, 1])


def test_same_fragment_at_other_positions_differs(model):
    """MASS decodes a fragment at its absolute positions; the positions must matter."""
    rng = np.random.default_rng(4)
    src, dec = random_ids(rng, 1, 10), random_ids(rng, 1, 4)
    at_start = decode(model, src, dec, positions(1, 0, 4))
    at_middle = decode(model, src, dec, positions(1, 5, 4))
    assert np.abs(at_start - at_middle).max() > 1e-3
    # and the positions are read per row, not assumed to be 0..n-1
    both = decode(model, np.repeat(src, 2, 0), np.repeat(dec, 2, 0),
                  np.concatenate([positions(1, 0, 4), positions(1, 5, 4)]))
    np.testing.assert_allclose(both, np.concatenate([at_start, at_middle]), atol=ATOL)


def test_self_attention_matches_numpy_reference(tiny_model_config):
    rng = np.random.default_rng(5)
    attention = SelfAttention(tiny_model_config, rng, ms.float32)
    attention.set_train(False)
    x = rng.normal(size=(2, 4, 16)).astype(np.float32)
    allowed = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool).reshape(2, 1, 1, 4)
    got = attention(Tensor(x), Tensor(allowed)).asnumpy()

    w, b = attention.qkv.weight.asnumpy(), attention.qkv.bias.asnumpy()
    qkv = x @ w.T + b  # (2, 4, 48)
    q, k, v = (qkv[..., i * 16:(i + 1) * 16].reshape(2, 4, 2, 8).transpose(0, 2, 1, 3) for i in range(3))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(8) + np.where(allowed, 0.0, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(2, 4, 16)
    expected = context @ attention.out.weight.asnumpy().T + attention.out.bias.asnumpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("hide", [False, True])
def test_hide_masked_source_from_decoder(tiny_model_config, hide):
    model = make_model(tiny_model_config, hide_masked_source_from_decoder=hide)
    src = np.array([[5, 6, MASK_ID, MASK_ID, 9, 2, PAD_ID]], np.int32)
    expected_mask = [[True, True, not hide, not hide, True, True, False]]
    np.testing.assert_array_equal(model.memory_mask(Tensor(src)).asnumpy(), expected_mask)

    rng = np.random.default_rng(6)
    dec, pos = random_ids(rng, 1, 2), positions(1, 2, 2)
    memory, _ = model.encode(Tensor(src))
    noise = np.zeros(memory.shape, np.float32)
    noise[:, 2:4] = rng.normal(size=(1, 2, 16))  # change the memory only at the <mask> positions
    base = decode(model, src, dec, pos, memory)
    perturbed = decode(model, src, dec, pos, memory + Tensor(noise))
    if hide:
        np.testing.assert_allclose(perturbed, base, atol=ATOL)
    else:
        assert np.abs(perturbed - base).max() > 1e-3


def incremental(model, src, dec, pos, chunks, max_len):
    """Decode ``dec`` chunk by chunk with the cache; return the concatenated hidden states."""
    src_t = Tensor(src)
    memory, _ = model.encode(src_t)
    memory_mask = model.memory_mask(src_t)
    cache = model.init_cache(memory, max_len)
    outputs, start = [], 0
    for size in chunks:
        stop = start + size
        hidden, cache = model.decode(Tensor(dec[:, start:stop]), Tensor(pos[:, start:stop]), memory,
                                     memory_mask, cache)
        assert int(cache[0]) == stop
        outputs.append(hidden.asnumpy())
        start = stop
    return np.concatenate(outputs, axis=1), cache


@pytest.mark.parametrize("chunks", [[1] * 6, [2, 1, 3]])
def test_cached_decode_equals_full_recomputation(tiny_model_config, chunks):
    model = make_model(tiny_model_config, hide_masked_source_from_decoder=True)
    rng = np.random.default_rng(7)
    src = random_ids(rng, 3, 9)
    src[0, 6:] = PAD_ID
    src[1, 2:4] = MASK_ID
    dec, pos = random_ids(rng, 3, 6), positions(3, 2, 6)
    full = decode(model, src, dec, pos)
    cached, cache = incremental(model, src, dec, pos, chunks, max_len=8)
    np.testing.assert_allclose(cached, full, atol=ATOL)
    assert np.abs(np.diff(full, axis=1)).max() > 1e-3  # the steps are not trivially equal
    assert len(cache) == 1 + 4 * 2
    assert cache[1].shape == (3, 2, 8, 8) and cache[3].shape == (3, 2, 9, 8)


def test_reorder_cache_follows_the_batch(model):
    rng = np.random.default_rng(8)
    src, dec, pos = random_ids(rng, 3, 5), random_ids(rng, 3, 3), positions(3, 0, 3)
    _, cache = incremental(model, src, dec[:, :2], pos[:, :2], [2], max_len=3)
    order = np.array([2, 2, 0], np.int32)
    cache = model.reorder_cache(cache, Tensor(order))
    memory, _ = model.encode(Tensor(src[order]))
    hidden, _ = model.decode(Tensor(dec[order, 2:]), Tensor(pos[order, 2:]), memory,
                             model.memory_mask(Tensor(src[order])), cache)
    full = decode(model, src[order], dec[order], pos[order])
    np.testing.assert_allclose(hidden.asnumpy(), full[:, 2:], atol=ATOL)


def test_cached_step_under_jit(model):
    """A jit-compiled step takes the cache as ``ms.mutable`` (no recompilation as the values change)."""
    rng = np.random.default_rng(9)
    src, dec, pos = random_ids(rng, 2, 5), random_ids(rng, 2, 4), positions(2, 0, 4)

    @ms.jit
    def step(tokens, token_positions, memory, memory_mask, cache):
        hidden, cache = model.decode(tokens, token_positions, memory, memory_mask, cache)
        return model.logits(hidden), cache

    memory, _ = model.encode(Tensor(src))
    memory_mask, cache = model.memory_mask(Tensor(src)), model.init_cache(memory, 4)
    outputs = []
    for t in range(4):
        logits, cache = step(Tensor(dec[:, t:t + 1]), Tensor(pos[:, t:t + 1]), memory, memory_mask,
                             ms.mutable(cache))
        outputs.append(logits.asnumpy())
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), run(model, src, dec, pos), atol=ATOL)


def test_logits_use_the_tied_embedding(model):
    table = model.embedding.table
    vocab_rows = [name for name, p in model.parameters_and_names() if p.shape[0] == 50]
    assert vocab_rows == ["embedding.table"]  # no separate output matrix, no output bias

    rng = np.random.default_rng(10)
    hidden = rng.normal(size=(2, 3, 16)).astype(np.float32)
    weights = rng.normal(size=(2, 3, 50)).astype(np.float32)
    np.testing.assert_allclose(model.logits(Tensor(hidden)).asnumpy(), hidden @ table.asnumpy().T, atol=1e-5)
    grad = ms.grad(lambda h: (model.logits(h) * Tensor(weights)).sum(), grad_position=None, weights=[table])
    (table_grad,) = grad(Tensor(hidden))
    np.testing.assert_allclose(table_grad.asnumpy(), np.einsum("bnv,bnd->vd", weights, hidden), atol=1e-4)


def test_every_parameter_gets_a_gradient(model):
    rng = np.random.default_rng(11)
    src, dec, pos = random_ids(rng, 2, 6, vocab=20), random_ids(rng, 2, 4, vocab=20), positions(2, 1, 4)
    params = model.trainable_params()
    loss = lambda s, d, p: ops.log_softmax(model(s, d, p), -1)[..., 7].mean()  # noqa: E731
    grads = ms.grad(loss, grad_position=None, weights=params)(Tensor(src), Tensor(dec), Tensor(pos))
    for param, grad in zip(params, grads, strict=True):
        assert np.abs(grad.asnumpy()).max() > 0, param.name
    table_grad = grads[0].asnumpy()
    assert params[0].name == "embedding.table"
    assert np.abs(table_grad[30:]).max() > 0  # tokens absent from the inputs: only the output projection


def test_dropout_only_in_training(tiny_model_config):
    model = make_model(tiny_model_config, hidden_dropout_prob=0.3, attention_dropout_prob=0.3)
    rng = np.random.default_rng(12)
    src, dec, pos = random_ids(rng, 2, 6), random_ids(rng, 2, 4), positions(2, 0, 4)
    eval_out = run(model, src, dec, pos)
    np.testing.assert_array_equal(run(model, src, dec, pos), eval_out)
    model.set_train(True)
    first, second = run(model, src, dec, pos), run(model, src, dec, pos)
    assert np.abs(first - second).max() > 1e-3 and np.abs(first - eval_out).max() > 1e-3
    model.set_train(False)
    np.testing.assert_array_equal(run(model, src, dec, pos), eval_out)


def test_float16_compute_stays_close_to_float32(tiny_model_config):
    fp32, fp16 = MassTransformer(tiny_model_config, "float32"), MassTransformer(tiny_model_config, "float16")
    fp32.set_train(False)
    fp16.set_train(False)
    rng = np.random.default_rng(13)
    src, dec, pos = random_ids(rng, 2, 6), random_ids(rng, 2, 4), positions(2, 0, 4)
    low, high = run(fp16, src, dec, pos), run(fp32, src, dec, pos)
    assert low.dtype == np.float32  # logits are returned in fp32
    assert fp16.embedding.table.dtype == ms.float32  # parameters stay fp32
    np.testing.assert_allclose(low, high, atol=2e-2 * np.abs(high).max())


def test_count_parameters(model):
    d, f, v = 16, 32, 50
    ln, ffn = 2 * d, d * f + f + f * d + d
    self_attn = 3 * d * d + 3 * d + d * d + d
    cross_attn = d * d + d + 2 * d * d + 2 * d + d * d + d
    encoder = 2 * (2 * ln + self_attn + ffn) + ln
    decoder = 2 * (3 * ln + self_attn + cross_attn + ffn) + ln
    assert count_parameters(model) == v * d + encoder + decoder


def test_initialisation(tiny_model_config):
    a, b = MassTransformer(tiny_model_config), MassTransformer(tiny_model_config)
    other = MassTransformer(dataclasses.replace(tiny_model_config, random_seed=1))
    assert not np.any(a.embedding.table.asnumpy()[PAD_ID])
    assert np.std(a.embedding.table.asnumpy()[5:]) == pytest.approx(16 ** -0.5, rel=0.15)
    for (name, pa), pb in zip(a.parameters_and_names(), b.get_parameters(), strict=True):
        np.testing.assert_array_equal(pa.asnumpy(), pb.asnumpy(), err_msg=name)
    assert not np.array_equal(a.embedding.table.asnumpy(), other.embedding.table.asnumpy())
    qkv = a.encoder_layers[0].attention.qkv.weight.asnumpy()
    assert np.abs(qkv).max() <= math.sqrt(6 / (16 + 48))
    assert not np.any(a.encoder_layers[0].attention.qkv.bias.asnumpy())


def test_vocab_size_must_be_resolved(tiny_model_config):
    with pytest.raises(ValueError, match="vocab_size"):
        MassTransformer(dataclasses.replace(tiny_model_config, vocab_size=None))
