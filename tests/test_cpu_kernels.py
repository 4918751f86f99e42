"""The hand-written CPU kernels of beam decoding (``src/transformer/cpu_kernels.py``): its results against the
MindSpore ops it replaces, generation with and without it, and its build (cache, fallback)."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from config.config import MassConfig
from src.transformer import cpu_kernels
from src.transformer.attention import CrossAttention, SelfAttention, SelfAttentionView, score_bias
from src.transformer.generator import generate, generate_stream
from src.transformer.search_settings import SearchSettings
from src.transformer.transformer import MassTransformer, _slot_bias


@pytest.fixture
def kernels():
    ops = cpu_kernels.step_kernels()
    if ops is None:
        pytest.skip("the CPU kernels could not be built here (no C++ compiler?): the ops path is used instead")
    return ops


def _attention(d: int, heads: int, kind=SelfAttention, seed: int = 0):
    config = MassConfig().override([f"--model_config.hidden_size={d}", f"--model_config.num_attention_heads={heads}",
                                    "--model_config.attention_dropout_prob=0.0"]).model_config
    return kind(config, np.random.default_rng(seed), ms.float32)


def _ancestors(rng, rows: int, beam: int, length: int, own_at=None) -> np.ndarray:
    """Random ancestor slots with gaps (-1); the own slot at ``own_at``, as a step always has."""
    ancestors = rng.integers(-1, beam, size=(rows, length)).astype(np.int32)
    if own_at is not None:
        ancestors[:, own_at] = np.arange(rows) % beam
    return ancestors


@pytest.mark.parametrize("batch,beam,heads,head_dim,past", [
    (3, 4, 2, 8, 32),   # vectorised head_dim, the usual beam
    (2, 3, 2, 6, 16),   # head_dim not a multiple of 8, an odd beam
    (2, 7, 1, 8, 16),   # a beam the kernel has no fixed-size variant for
    (3, 4, 2, 8, 0),    # no old part yet
])
def test_self_attention_kernel_equals_the_ops(kernels, batch, beam, heads, head_dim, past):
    """``SelfAttention.beam_step`` with the kernel equals it with MindSpore ops: the output, and the window
    the kernel writes in place equals the one the ops return."""
    rng = np.random.default_rng(batch * 100 + beam * 10 + past)
    d, width, at, rows = heads * head_dim, 16, 5, batch * beam
    layer = _attention(d, heads)
    x = Tensor(rng.standard_normal((rows, 1, d)).astype(np.float32))
    weights = layer.step_weights()
    window = [rng.standard_normal((batch, heads, beam * width, head_dim)).astype(np.float32) for _ in range(2)]
    old_k = old_v = ancestors_old = None
    if past:
        old_k = Tensor(rng.standard_normal((batch, heads, head_dim, beam * past)).astype(np.float32))
        old_v = Tensor(rng.standard_normal((batch, heads, beam * past, head_dim)).astype(np.float32))
        ancestors_old = Tensor(_ancestors(rng, rows, beam, past))
    ancestors_recent = Tensor(_ancestors(rng, rows, beam, width, own_at=at))
    at_tensor = Tensor(at, ms.int32)

    bias_old = _slot_bias(ancestors_old, beam, heads) if past else None
    expected, expected_k, expected_v = layer.beam_step(x, beam, SelfAttentionView(
        old_k, old_v, Tensor(window[0]), Tensor(window[1]), at_tensor, None, None, bias_old,
        _slot_bias(ancestors_recent, beam, heads)), weights)
    recent_k, recent_v = Tensor(window[0].copy()), Tensor(window[1].copy())
    out, out_k, out_v = layer.beam_step(x, beam, SelfAttentionView(
        old_k, old_v, recent_k, recent_v, at_tensor, ancestors_old, ancestors_recent, None, None), weights, kernels[0])
    np.testing.assert_allclose(out.asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)
    for written, want in ((recent_k, expected_k), (recent_v, expected_v)):
        np.testing.assert_array_equal(written.asnumpy(), want.asnumpy())
    assert out_k is recent_k and out_v is recent_v  # returned as they came: written in place
    assert not np.array_equal(recent_k.asnumpy(), window[0])  # the step's keys did land in the window


@pytest.mark.parametrize("batch,beam,heads,head_dim,src_len", [(3, 4, 2, 8, 64), (2, 3, 3, 6, 20), (2, 7, 1, 8, 5)])
def test_cross_attention_kernel_equals_the_ops(kernels, batch, beam, heads, head_dim, src_len):
    """``CrossAttention.beam_step`` with the kernel equals it with MindSpore ops, padded memory included."""
    rng = np.random.default_rng(batch * 100 + beam * 10 + src_len)
    d, rows = heads * head_dim, batch * beam
    layer = _attention(d, heads, CrossAttention)
    memory = Tensor(rng.standard_normal((batch, src_len, d)).astype(np.float32))
    k, v = layer.memory_kv(memory, keys_transposed=True)
    allowed = np.ones((batch, 1, 1, src_len), dtype=bool)
    allowed[0, ..., src_len // 2:] = False  # a padded source
    bias = score_bias(Tensor(allowed), (batch, heads, beam, src_len))
    x = Tensor(rng.standard_normal((rows, 1, d)).astype(np.float32))
    weights = layer.step_weights()
    expected = layer.beam_step(x, beam, k, v, bias, weights)
    out = layer.beam_step(x, beam, k, v, bias, weights, kernels[1])
    np.testing.assert_allclose(out.asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows,vocab,k,width", [(64, 10000, 8, 4), (6, 37, 5, 8), (3, 9, 9, 4), (5, 10003, 8, 12)])
def test_topk_kernel_equals_the_ops(kernels, rows, vocab, k, width):
    """The step's end in one kernel: the same token ids as log-softmax, the bans' ``-inf`` and ``ops.topk``, and
    the same log-probabilities up to float rounding. Where values tie (MindSpore's TopK orders ties in no
    stated order) the kernel puts the lower id first: a tie at the top, and the banned ids at -inf of a row
    with fewer than k allowed tokens."""
    from mindspore import ops

    from src.transformer.device_step import banned_scatter

    topk = cpu_kernels.topk_kernel(k)
    rng = np.random.default_rng(rows + vocab)
    logits = (rng.standard_normal((rows, vocab)) * 3).astype(np.float32)
    logits[0, 5] = logits[0, 7] = logits[0].max() + 1  # a tie for the best token, 5 banned below
    logits[1, 4] = logits[1, 6] = logits[1].max() + 1  # a tie for the best token
    banned = np.full((rows, width), -1)
    banned[::2, 0] = np.argmax(logits[::2], 1)  # the best token banned
    banned[1, :3] = [3, 1, 2]
    values, ids = (t.asnumpy() for t in topk(Tensor(logits), *banned_scatter(banned)))
    log_probs = ops.log_softmax(Tensor(logits), -1)
    index, on = banned_scatter(banned)
    update = ops.where(on, Tensor(-np.inf, ms.float32), ops.gather_elements(log_probs, 1, index))
    expected_values, expected_ids = (t.asnumpy() for t in ops.topk(
        ops.tensor_scatter_elements(log_probs, index, update, axis=1), k))
    np.testing.assert_allclose(values, expected_values, rtol=1e-6, atol=1e-5)
    untied = [r for r in range(rows) if r != 1 and np.isfinite(expected_values[r]).all()]
    np.testing.assert_array_equal(ids[untied], expected_ids[untied])
    assert ids[0, 0] == 7 and 5 not in ids[0][np.isfinite(values[0])] and ids[1, :2].tolist() == [4, 6]
    for r in range(rows):  # each row: the k best allowed ids (by value, then id), then banned ones, in order
        allowed = [j for j in np.argsort(-logits[r], kind="stable") if j not in banned[r]]
        want = (allowed + sorted(set(banned[r][banned[r] >= 0])))[:k]
        assert ids[r].tolist() == want


def _tiny_model(tiny_model_config):
    model = MassTransformer(tiny_model_config)
    model.set_train(False)
    return model


def test_generation_is_the_same_with_and_without_the_kernels(kernels, tiny_model_config, monkeypatch):
    """Beam search (batch and stream) gives the same hypotheses through the kernel and through the ops,
    forced past several windows so that old parts and window joins are crossed."""
    model = _tiny_model(tiny_model_config)
    rng = np.random.default_rng(3)
    sources = [rng.integers(5, 50, size=n) for n in (7, 12, 4, 9, 15)]
    width = max(len(s) for s in sources)
    batch = np.zeros((len(sources), width), dtype=np.int32)
    for i, s in enumerate(sources):
        batch[i, :len(s)] = s
    settings = SearchSettings(beam_size=3, max_len_a=0.0, max_len_b=40, min_len=40)
    results = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("MASS_CPU_KERNELS", flag)
        results[flag] = (generate(model, batch, settings),
                         generate_stream(model, sources, settings.replace(min_len=0), batch_size=2))
    for ops_hyps, kernel_hyps in zip(results["0"], results["1"], strict=True):
        for ops_example, kernel_example in zip(ops_hyps, kernel_hyps, strict=True):
            assert [h.tokens for h in kernel_example] == [h.tokens for h in ops_example]
            np.testing.assert_allclose([h.score for h in kernel_example], [h.score for h in ops_example], rtol=1e-5)
    assert len(results["1"][0][0][0].tokens) == 40


def test_kernel_build_is_cached_and_complete(tmp_path, monkeypatch):
    """The library is compiled once into the cache, under its final name only when complete."""
    monkeypatch.setenv("MASS_KERNEL_CACHE", str(tmp_path))
    try:
        library = cpu_kernels.build("beam_attention")
    except OSError as error:
        pytest.skip(f"no C++ compiler here: {error}")
    stamp = library.stat().st_mtime_ns
    assert cpu_kernels.build("beam_attention") == library and library.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [library.name]  # no temporary left behind


def test_corrupt_cached_kernel_is_compiled_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MASS_KERNEL_CACHE", str(tmp_path))
    try:
        library = cpu_kernels.build("beam_attention")
    except OSError as error:
        pytest.skip(f"no C++ compiler here: {error}")
    library.write_bytes(b"not a shared library")
    assert cpu_kernels.build("beam_attention") == library
    assert "not a loadable library" in caplog.text
    assert library.read_bytes()[:4] == b"\x7fELF"


def test_kernel_falls_back_to_ops_without_a_compiler(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MASS_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(cpu_kernels, "_OPS", {})
    assert cpu_kernels.step_kernels() is None and cpu_kernels.topk_kernel(8) is None
    assert "decoding uses MindSpore ops" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_kernel_switched_off(monkeypatch):
    monkeypatch.setenv("MASS_CPU_KERNELS", "0")
    assert cpu_kernels.step_kernels() is None and cpu_kernels.topk_kernel(8) is None
    monkeypatch.setenv("MASS_CPU_KERNELS", "1")
    assert cpu_kernels.step_kernels(ms.float16) is None  # fp16 steps keep the ops
