"""src/transformer/compiled.py: the incremental-inference call path of the decoding step runs each input shape
through a graph of its own (a graph compiled for one shape and run on another would give wrong results or fail),
with the results of the same function run eagerly; the per-model memo builds once."""

import mindspore as ms
import numpy as np
from mindspore import Tensor, ops

from src.transformer.compiled import increment_graph, per_model


def scaled_sum(a, pair):
    return ops.reduce_sum(a * pair[0], 1) + pair[1], a[:, :1] * 2


def expected(a, pair):
    return (a * pair[0]).sum(1) + pair[1], a[:, :1] * 2


def test_each_input_shape_gets_its_own_graph_with_the_eager_results():
    ms.set_context(mode=ms.GRAPH_MODE)
    call = increment_graph(scaled_sum)
    rng = np.random.default_rng(0)
    for rows, width in [(2, 3), (4, 3), (2, 3), (2, 5), (4, 3)]:
        a = rng.normal(size=(rows, width)).astype(np.float32)
        pair = (rng.normal(size=(width,)).astype(np.float32), rng.normal(size=(rows,)).astype(np.float32))
        got = call(Tensor(a), ms.mutable((Tensor(pair[0]), Tensor(pair[1]))))
        for value, want in zip(got, expected(a, pair), strict=True):
            np.testing.assert_allclose(value.asnumpy(), want, rtol=1e-5, atol=1e-6)
    assert len(call.cells) == 3  # (2, 3), (4, 3), (2, 5): a shape met again reuses its graph


def test_per_model_builds_once_per_key():
    class Model:
        pass

    model, built = Model(), []
    for key in (1, 1, 2):
        per_model(model, "f", key, lambda key=key: built.append(key) or object())
    assert built == [1, 2]
