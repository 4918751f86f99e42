"""Beam search against exhaustive search and greedy decoding, the constraints on a 3-token
vocabulary, and the cached MindSpore generator against a search that recomputes every prefix."""

import numpy as np
import pytest
from mindspore import Tensor, ops

from src.dataset.batching import cut_batch
from src.transformer.beam_search import (
    Hypothesis,
    beam_search,
    length_normalizer,
    row_candidates,
    stream_beam_search,
)
from src.transformer.decode_cache import PointerCache
from src.transformer.decoding_constraints import (
    CONSTRAINTS,
    StepView,
    ban,
    banned_ids,
    eos_before_min_len,
    never_generated,
    repeated_ngram_tokens,
    repeated_ngrams,
)
from src.transformer.device_step import banned_scatter, blocked_topk
from src.transformer.generator import generate, generate_stream
from src.transformer.reference_decoding import reference_generate
from src.transformer.search_settings import SearchSettings as Settings
from src.transformer.transformer import MassTransformer

BOS, EOS = 1, 2
PENALTIES = [(0.0, "gnmt"), (1.0, "gnmt"), (0.0, "power"), (1.0, "power")]


class PrefixTable:
    """A toy model: the log-probs of the next token are a seeded random function of (example, prefix).

    Its ``step_fn`` follows ``beam_indices`` to know the prefix of every row, as a real adapter
    reorders its cache. ``examples`` names the example of each batch position (to split a batch).
    """

    def __init__(self, vocab, beam_size, examples, seed=0, eos_bonus=0.0):
        self.vocab, self.seed, self.eos_bonus = vocab, seed, eos_bonus
        self.row_example = np.repeat(np.asarray(examples), beam_size)  # (rows,)
        self.prefixes = None
        self.steps = 0

    def log_probs(self, example, prefix):
        rng = np.random.default_rng([self.seed, example, len(prefix), *prefix])
        logits = 2.0 * rng.normal(size=self.vocab)
        logits[EOS] += self.eos_bonus
        return logits - np.logaddexp.reduce(logits)

    def step_fn(self, last_tokens, beam_indices, step):
        if beam_indices is None:
            assert step == 0 and np.all(last_tokens == BOS)
            self.prefixes = [()] * len(last_tokens)
        else:
            self.prefixes = [self.prefixes[i] + (int(t),) for i, t in zip(beam_indices, last_tokens, strict=True)]
        self.steps += 1
        return np.stack([self.log_probs(e, p) for e, p in zip(self.row_example, self.prefixes, strict=True)])


def exhaustive(table, example, *, max_len, min_len=0, alpha, kind, forbid=()):
    """Every hypothesis ending with </s> or reaching max_len, scored like beam search, best first."""
    hyps = []

    def expand(prefix, total):
        log_probs = table.log_probs(example, prefix)
        for token in range(table.vocab):
            if token in forbid or (token == EOS and len(prefix) < min_len):
                continue
            seq, seq_total = prefix + (token,), total + log_probs[token]
            if token == EOS or len(seq) == max_len:
                hyps.append(Hypothesis(list(seq), seq_total / float(length_normalizer(len(seq), alpha, kind)),
                                       seq_total))
            else:
                expand(seq, seq_total)

    expand((), 0.0)
    return sorted(hyps, key=lambda h: -h.score)


def assert_same(got, expected, atol=1e-9):
    assert [h.tokens for h in got] == [h.tokens for h in expected]
    np.testing.assert_allclose([h.score for h in got], [h.score for h in expected], atol=atol)
    np.testing.assert_allclose([h.log_prob for h in got], [h.log_prob for h in expected], atol=atol)


def test_length_normalizer_formulas():
    assert length_normalizer(7, 1.0) == pytest.approx(2.0)
    assert length_normalizer(3, 0.5) == pytest.approx((8 / 6) ** 0.5)
    assert length_normalizer(7, 2.0, "power") == pytest.approx(49.0)
    assert length_normalizer(5, 0.0, "power") == length_normalizer(5, 0.0) == 1.0
    with pytest.raises(ValueError, match="length_penalty_type"):
        length_normalizer(3, 1.0, "linear")


@pytest.mark.parametrize("alpha,kind", PENALTIES)
@pytest.mark.parametrize("n_best", [3, 121])
def test_wide_beam_equals_exhaustive_search(alpha, kind, n_best):
    """Vocab 4, up to 4 tokens: 1 + 3 + 9 + 27 sequences end with </s> and 81 reach max_len: 121."""
    table = PrefixTable(vocab=4, beam_size=121, examples=[0])
    expected = exhaustive(table, 0, max_len=4, alpha=alpha, kind=kind)
    assert len(expected) == 121
    (got,) = beam_search(table.step_fn, 1, Settings(beam_size=121, length_penalty=alpha, length_penalty_type=kind,
                                                    n_best=n_best, forbid=()), max_len=4)
    assert_same(got, expected[:n_best])


def test_length_penalty_changes_the_winner():
    """The table is such that alpha decides between a short and a long hypothesis (the test has teeth)."""
    winners = set()
    for seed in range(20):
        table = PrefixTable(vocab=4, beam_size=1, examples=[0], seed=seed)
        short = exhaustive(table, 0, max_len=4, alpha=0.0, kind="gnmt")[0].tokens
        long = exhaustive(table, 0, max_len=4, alpha=2.0, kind="power")[0].tokens
        winners.add(short != long)
    assert winners == {True, False}


def greedy(table, example, *, max_len, forbid):
    tokens, total = [], 0.0
    while len(tokens) < max_len:
        log_probs = table.log_probs(example, tuple(tokens)).copy()
        log_probs[list(forbid)] = -np.inf
        token = int(np.argmax(log_probs))
        tokens.append(token)
        total += log_probs[token]
        if token == EOS:
            break
    return tokens, total


@pytest.mark.parametrize("alpha,kind", PENALTIES)
def test_beam_one_is_greedy(alpha, kind):
    examples = list(range(6))
    table = PrefixTable(vocab=7, beam_size=1, examples=examples, seed=3, eos_bonus=1.0)
    got = beam_search(table.step_fn, len(examples), Settings(beam_size=1, length_penalty=alpha,
                                                             length_penalty_type=kind, forbid=(0, 4)), max_len=6)
    lengths = set()
    for example, (hyp,) in zip(examples, got, strict=True):
        tokens, total = greedy(table, example, max_len=6, forbid=(0, 4))
        assert hyp.tokens == tokens
        assert hyp.log_prob == pytest.approx(total)
        assert hyp.score == pytest.approx(total / length_normalizer(len(tokens), alpha, kind))
        lengths.add((len(tokens), tokens[-1] == EOS))
    assert len(lengths) > 1  # some end with </s> early, some run to max_len


def test_early_exit_once_no_live_beam_can_win():
    """</s> is by far the likeliest first token: with alpha 0 the search stops after one step."""
    table = PrefixTable(vocab=5, beam_size=3, examples=[0, 1], eos_bonus=30.0)
    got = beam_search(table.step_fn, 2, Settings(beam_size=3, length_penalty=0.0, forbid=()), max_len=8)
    assert table.steps == 1
    assert [h.tokens for (h,) in got] == [[EOS], [EOS]]


def test_min_and_max_len_per_example():
    max_len, min_len = np.array([1, 3, 4]), np.array([0, 2, 3])
    for eos_bonus in (0.0, 5.0):  # with the bonus min_len binds: the best stops as early as allowed
        table = PrefixTable(vocab=4, beam_size=81, examples=[0, 1, 2], seed=7, eos_bonus=eos_bonus)
        got = beam_search(table.step_fn, 3, Settings(beam_size=81, length_penalty=1.0, n_best=5, forbid=()),
                          max_len=max_len, min_len=min_len)
        for example in range(3):
            expected = exhaustive(table, example, max_len=max_len[example], min_len=min_len[example],
                                  alpha=1.0, kind="gnmt")
            assert_same(got[example], expected[:5])
            assert all(len(h.tokens) <= max_len[example] for h in got[example])
            assert all(len(h.tokens) > min_len[example] for h in got[example] if h.tokens[-1] == EOS)
        if eos_bonus:
            assert [len(hyps[0].tokens) for hyps in got] == [1, 3, 4]
            assert [hyps[0].tokens[-1] == EOS for hyps in got] == [True, True, True]


def test_batch_equals_single_examples():
    settings = Settings(beam_size=3, length_penalty=1.0, no_repeat_ngram_size=2, n_best=2, forbid=(0,))
    max_len = np.array([5, 3, 6])
    table = PrefixTable(vocab=6, beam_size=3, examples=[0, 1, 2], seed=11)
    batched = beam_search(table.step_fn, 3, settings, max_len=max_len)
    for example in range(3):
        single = PrefixTable(vocab=6, beam_size=3, examples=[example], seed=11)
        (got,) = beam_search(single.step_fn, 1, settings, max_len=max_len[example])
        assert_same(batched[example], got, atol=0)


class StreamTable:
    """``PrefixTable``'s log-probs for ``stream_beam_search``: each slot's rows decode the example that last
    entered it (``refill``), following ``beam_indices``; a row at position 0 starts an empty prefix. The
    ``banned`` ids are set to -inf here, on the whole distribution, then each row's ``k`` best kept."""

    def __init__(self, table, batch, beam):
        self.table, self.beam = table, beam
        self.slot_example = np.zeros(batch, dtype=int)
        self.prefixes = [()] * (batch * beam)
        self.entered = []  # (step, examples) of each refill

    def refill(self, slots, examples):
        self.slot_example[slots] = examples
        self.entered.append(examples.tolist())

    def topk_fn(self, last, beam_indices, positions, k, banned):
        rows = len(last)
        self.prefixes = [() if positions[r] == 0 else self.prefixes[beam_indices[r]] + (int(last[r]),)
                         for r in range(rows)]
        log_probs = np.stack([self.table.log_probs(self.slot_example[r // self.beam], p)
                              for r, p in enumerate(self.prefixes)])
        return row_candidates(ban(log_probs, banned), k)


@pytest.mark.parametrize("batch", [1, 3, 9])
def test_stream_search_equals_single_examples(batch):
    """Seven examples of different lengths through ``batch`` slots (fewer, and more, than the examples):
    each example's hypotheses are those of ``beam_search`` on it alone."""
    max_len, min_len = np.array([5, 3, 6, 2, 7, 4, 5]), np.array([0, 1, 2, 0, 3, 0, 1])
    settings = Settings(beam_size=3, length_penalty=1.0, no_repeat_ngram_size=2, n_best=2, forbid=(0,))
    stream = StreamTable(PrefixTable(vocab=6, beam_size=3, examples=[0], seed=11, eos_bonus=1.0), batch, 3)
    done = []
    got = stream_beam_search(stream.topk_fn, 7, settings, batch_size=batch, max_len=max_len, min_len=min_len,
                             refill_fn=stream.refill, on_done=done.append)
    assert sorted(done) == list(range(7)) and sum(stream.entered, []) == list(range(7))
    if batch < 7:
        assert len(stream.entered) > 1  # slots were refilled
    with pytest.raises(ValueError, match="batch_size"):
        stream_beam_search(stream.topk_fn, 7, settings, batch_size=0, max_len=max_len)
    for example in range(7):
        single = PrefixTable(vocab=6, beam_size=3, examples=[example], seed=11, eos_bonus=1.0)
        (expected,) = beam_search(single.step_fn, 1, settings, max_len=max_len[example], min_len=min_len[example])
        assert_same(got[example], expected, atol=0)


def test_no_repeat_ngram_in_search():
    table = PrefixTable(vocab=4, beam_size=4, examples=[0, 1, 2, 3], seed=5)
    got = beam_search(table.step_fn, 4, Settings(beam_size=4, no_repeat_ngram_size=1, n_best=4, forbid=(0,)),
                      max_len=7)
    for hyps in got:
        assert hyps and all(len(set(h.tokens)) == len(h.tokens) for h in hyps)


# --- constraints on a 3-token vocabulary with uniform log-probs --------------------------------

def allowed(constraints, tokens, steps, settings, min_len=0, vocab=3):
    """Which of ``vocab`` tokens each row may choose after ``constraints``; checks the contract on the way
    (ids padded with -1 to a multiple of 4, the view left unchanged)."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(len(steps), -1)
    view = StepView(tokens, np.asarray(steps), np.broadcast_to(np.asarray(min_len), (len(steps),)))
    before = tokens.copy()
    banned = banned_ids(view, settings, constraints)
    assert banned.shape[0] == len(steps) and banned.shape[1] % 4 == 0 and banned.shape[1] >= 4
    np.testing.assert_array_equal(tokens, before)
    return np.isfinite(ban(np.zeros((len(steps), vocab)), banned)).tolist()


def test_never_generated():
    assert allowed([never_generated], [[], []], [0, 0], Settings(forbid=(0, 2))) == [[False, True, False]] * 2
    assert allowed([never_generated], [[1], [0]], [1, 1], Settings(forbid=())) == [[True] * 3] * 2


def test_eos_before_min_len():
    eos2 = Settings(eos=2)
    assert allowed([eos_before_min_len], [[0], [1]], [1, 1], eos2, min_len=2) == [[True, True, False]] * 2
    assert allowed([eos_before_min_len], [[0, 1], [1, 1]], [2, 2], eos2, min_len=2) == [[True] * 3] * 2
    assert allowed([eos_before_min_len], [[0, 1], [1, 1]], [2, 2], eos2, min_len=[1, 3]) == [[True] * 3,
                                                                                            [True, True, False]]


def test_repeated_ngrams():
    def case(n, tokens, steps):
        return allowed([repeated_ngrams], tokens, steps, Settings(no_repeat_ngram_size=n))

    assert case(2, [[0, 1, 0], [1, 1, 2]], [3, 3]) == [[True, False, True], [True] * 3]
    assert case(1, [[0, 1, 0], [1, 1, 2]], [3, 3]) == [[False, False, True], [True, False, False]]
    assert case(3, [[0, 1, 0, 1], [1, 1, 1, 1]], [4, 4]) == [[False, True, True], [True, False, True]]
    assert case(3, [[0, 0], [1, 1]], [2, 2]) == [[True] * 3] * 2  # shorter than n: nothing to repeat
    assert case(0, [[0, 0], [0, 0]], [2, 2]) == [[True] * 3] * 2  # 0: off
    # rows at different steps (a stream search) each see their own hypothesis only
    assert case(1, [[0, 1, 2, 2], [1, 1, 0, 0]], [2, 1]) == [[False, False, True], [True, False, True]]


def test_banned_ids_gather_the_constraints_in_one_array():
    tokens, settings = [[0, 1], [2, 2]], Settings(forbid=(0,), no_repeat_ngram_size=1, eos=2)
    assert allowed(CONSTRAINTS, tokens, [2, 2], settings, min_len=3) == [[False, False, False], [False, True, False]]

    def seven(view, settings):  # an extra constraint: one function, nothing else to change
        return np.full((len(view.steps), 1), 7)

    view = StepView(np.zeros((2, 0), np.int64), np.zeros(2, int), np.zeros(2, int))
    got = banned_ids(view, Settings(forbid=(0, 4)), (*CONSTRAINTS, seven))
    assert got.shape == (2, 4) and got.tolist() == [[0, 4, -1, 7]] * 2  # eos allowed: its column is -1
    assert banned_ids(view, Settings(forbid=()), []).tolist() == [[-1] * 4] * 2
    log_probs = np.zeros((2, 9))
    assert ban(log_probs, got) is not log_probs and (log_probs == 0).all()


# --- the MindSpore generator --------------------------------------------------------------------

def full_recompute_step(model, src_ids, beam_size):
    """A step function without cache: decode the whole prefix with ``model(src, dec_in, positions)``."""
    src = Tensor(np.repeat(src_ids, beam_size, axis=0).astype(np.int32))  # (rows, src_len)
    state = {}

    def step_fn(last_tokens, beam_indices, step):
        prefix = state["prefix"][beam_indices] if beam_indices is not None else np.zeros((len(last_tokens), 0))
        prefix = np.concatenate([prefix, last_tokens[:, None]], axis=1).astype(np.int32)  # (rows, step + 1)
        state["prefix"] = prefix
        positions = np.tile(np.arange(step + 1, dtype=np.int32), (len(prefix), 1))  # (rows, step + 1)
        logits = model(src, Tensor(prefix), Tensor(positions)).asnumpy()[:, -1].astype(np.float64)
        return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)  # (rows, vocab)

    return step_fn


@pytest.fixture
def eval_model(tiny_model_config):
    model = MassTransformer(tiny_model_config)
    model.set_train(False)
    return model


@pytest.mark.parametrize("beam_size,n_best", [(1, 1), (3, 2)])
def test_generate_equals_search_without_cache(eval_model, beam_size, n_best):
    src = np.array([[9, 14, 23, 7, 31, 8, 2], [12, 40, 6, 2, 0, 0, 0]], dtype=np.int32)
    settings = Settings(beam_size=beam_size, max_len_a=0.5, max_len_b=3, min_len=2, length_penalty=1.0,
                        length_penalty_type="gnmt", no_repeat_ngram_size=2, n_best=n_best)
    assert settings.forbid == (0, 1, 4)  # <pad>, <s> and <mask>, the dictionary's
    got = generate(eval_model, src, settings)
    max_len = np.array([int(0.5 * 7 + 3), int(0.5 * 4 + 3)])  # 6 and 5
    expected = beam_search(full_recompute_step(eval_model, src, beam_size), 2, settings, max_len=max_len)
    for hyps_got, hyps_expected in zip(got, expected, strict=True):
        assert len(hyps_got) == n_best
        assert_same(hyps_got, hyps_expected, atol=1e-4)
    assert max(len(h.tokens) for h in got[0]) <= 6 and max(len(h.tokens) for h in got[1]) <= 5


def test_generate_past_cache_windows_equals_the_reordered_cache(eval_model):
    """A decode of 36 tokens fills the pointer cache's recent window twice (CACHE_LENGTH_MULTIPLE 16):
    at step 16 it becomes the old part, at step 32 it joins it; beams reorder all along. The hypotheses
    and scores stay those of the classic cache, gathered by beam every step (``reference_generate``; that
    cache equals a full recomputation: test_transformer)."""
    src = np.array([[9, 14, 23, 7, 31, 8, 2], [12, 40, 6, 2, 0, 0, 0]], dtype=np.int32)
    settings = Settings(beam_size=3, max_len_a=0.0, max_len_b=36, min_len=34, length_penalty=1.0, n_best=2)
    got = generate(eval_model, src, settings)
    expected = reference_generate(eval_model, src, settings)
    for hyps_got, hyps_expected in zip(got, expected, strict=True):
        assert min(len(h.tokens) for h in hyps_got) >= 35  # the search went past step 32
        assert_same(hyps_got, hyps_expected, atol=1e-4)


def test_pointer_cache_step_equals_the_reordered_cache(eval_model):
    """``beam_step`` over a ``PointerCache`` with random beam reorders, 20 steps and windows of 6 (three
    joins), gives the hidden states of ``decode`` over the classic cache gathered by the same reorders."""
    model, rng = eval_model, np.random.default_rng(12)
    batch, beam, steps = 2, 3, 20
    rows = batch * beam
    src = Tensor(rng.integers(5, 50, size=(batch, 7)).astype(np.int32))
    tile = Tensor(np.repeat(np.arange(batch), beam).astype(np.int32))
    memory, mask = ops.gather(model.encode(src)[0], tile, 0), ops.gather(model.memory_mask(src), tile, 0)
    cache = model.init_cache(memory, steps)
    pointer = PointerCache(model, model.cross_cache(model.encode(src)[0], keys_transposed=True), batch, beam, steps,
                           width=6)
    order = None
    for step in range(steps):
        tokens = Tensor(rng.integers(5, 50, size=(rows, 1)).astype(np.int32))
        positions = Tensor(np.full((rows, 1), step, dtype=np.int32))
        if order is not None:
            cache = model.reorder_cache(cache, Tensor(order))
        expected, cache = model.decode(tokens, positions, memory, mask, cache)
        got, pointer.recent = model.beam_step(tokens, positions, model.memory_bias(model.memory_mask(src), beam), beam,
                                              pointer.advance(order, step), model.step_weights())
        np.testing.assert_allclose(got.asnumpy(), expected.asnumpy(), atol=1e-5)
        # each row continues a random beam of its own example
        order = (np.arange(rows) // beam * beam + rng.integers(0, beam, size=rows)).astype(np.int32)
    keys, values = pointer.old[0], pointer.old[1]  # the keys transposed
    assert pointer.old_len == 18 and keys.shape[3] == values.shape[2] == 3 * 18


@pytest.mark.parametrize("batch_size", [3, 8])
def test_generate_stream_equals_generate(eval_model, batch_size):
    """Seven sources of different lengths (so different decode lengths: max_len_a) through 3 slots (refilled
    as examples stop; the cache's old part shifts every 16 global steps) or 8 (one slot stays empty): each
    source's hypotheses are those of ``generate`` on it alone."""
    rng = np.random.default_rng(4)
    sources = [np.r_[rng.integers(5, 50, size=n), EOS].astype(np.int32) for n in [3, 9, 5, 14, 2, 7, 11]]
    settings = Settings(beam_size=3, max_len_a=2.0, max_len_b=3, min_len=1, length_penalty=1.0, n_best=2,
                        no_repeat_ngram_size=2)
    done = []
    got = generate_stream(eval_model, sources, settings, batch_size=batch_size, on_done=done.append)
    assert sorted(done) == list(range(7))
    for source, hyps in zip(sources, got, strict=True):
        (expected,) = generate(eval_model, source[None], settings)
        assert_same(hyps, expected, atol=1e-4)
    assert max(len(h.tokens) for h in got[3]) == 2 * 15 + 3  # the longest decode ran to its limit
    assert generate_stream(eval_model, [], settings, batch_size=batch_size) == []


def test_generate_stream_of_short_decodes_replaces_a_one_window_old_part(eval_model):
    """Decodes of at most 5 tokens keep one window of past positions (``past_length``): eight sources
    through one slot run past 16 global steps, so each full window replaces the whole old part."""
    rng = np.random.default_rng(7)
    sources = [np.r_[rng.integers(5, 50, size=n), EOS].astype(np.int32) for n in [4, 6, 3, 8, 5, 2, 7, 4]]
    settings = Settings(beam_size=2, max_len_a=0.0, max_len_b=5, min_len=4, length_penalty=1.0, n_best=1)
    got = generate_stream(eval_model, sources, settings, batch_size=1)
    for source, hyps in zip(sources, got, strict=True):
        (expected,) = generate(eval_model, source[None], settings)
        assert_same(hyps, expected, atol=1e-4)
    assert sum(len(hyps[0].tokens) for hyps in got) > 16 + 5


@pytest.mark.parametrize("no_repeat", [0, 1, 2])
def test_device_top_k_equals_the_full_distribution_on_the_host(eval_model, no_repeat):
    """The device keeps each row's 2 * beam best tokens after the constraints; the host path sees every
    token. Same hypotheses and scores, with a minimum length and repeated n-grams forbidden."""
    rng = np.random.default_rng(3)
    src = np.concatenate([rng.integers(5, 50, size=(3, 9)), np.full((3, 1), EOS)], axis=1).astype(np.int32)
    settings = Settings(beam_size=3, max_len_a=0.0, max_len_b=7, min_len=3, length_penalty=1.0,
                        no_repeat_ngram_size=no_repeat, n_best=2)
    device = generate(eval_model, src, settings)
    host = reference_generate(eval_model, src, settings)
    for got, expected in zip(device, host, strict=True):
        assert [h.tokens for h in got] == [h.tokens for h in expected]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in expected], rtol=1e-6)


def test_repeated_ngram_tokens_against_a_loop():
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 4, size=(6, 9))
    for n in (1, 2, 3):
        banned = repeated_ngram_tokens(tokens, n, 9)
        for row in range(6):
            seq = tokens[row].tolist()
            expected = {seq[i + n - 1] for i in range(9 - n + 1) if seq[i:i + n - 1] == seq[9 - n + 1:]}
            got = set() if banned is None else set(banned[row][banned[row] >= 0].tolist())
            assert got == expected, (n, row)
        assert banned is None or banned.shape[1] % 4 == 0
    assert repeated_ngram_tokens(tokens[:, :1], 2, 1) is None


def test_an_extra_constraint_reaches_every_decoding_path(eval_model):
    """A constraint written against the one contract bans its token on the device path, the host path and
    the stream search alike."""
    rng = np.random.default_rng(9)
    sources = [np.r_[rng.integers(5, 50, size=n), EOS].astype(np.int32) for n in (6, 9, 4)]
    src = np.zeros((3, 10), np.int32)
    for i, source in enumerate(sources):
        src[i, :len(source)] = source
    settings = Settings(beam_size=3, max_len_a=0.0, max_len_b=6, length_penalty=1.0, n_best=2)
    plain = generate(eval_model, src, settings)
    used = np.concatenate([h.tokens for hyps in plain for h in hyps])
    token = int(np.bincount(used[used != EOS]).argmax())  # the token the plain search likes best

    def no_token(view, settings):
        return np.full((len(view.steps), 1), token)

    runs = [generate(eval_model, src, settings, constraints=[no_token]),
            reference_generate(eval_model, src, settings, constraints=[no_token]),
            generate_stream(eval_model, sources, settings, batch_size=2, constraints=[no_token])]
    tokens = [[[h.tokens for h in hyps] for hyps in run] for run in runs]
    assert tokens[0] == tokens[1] == tokens[2]
    assert all(token not in t for example in tokens[0] for t in example)
    assert tokens[0] != [[h.tokens for h in hyps] for hyps in plain]


def test_generate_cuts_a_long_source(eval_model):
    rng = np.random.default_rng(0)
    src = np.concatenate([rng.integers(5, 50, size=(1, 80)), [[2]]], axis=1)  # 81 tokens > 64 positions
    settings = Settings(beam_size=2, max_len_a=0.0, max_len_b=3)
    (hyps,) = generate(eval_model, src, settings)
    cut = cut_batch(src, 64)
    assert cut.shape == (1, 64) and cut[0, -1] == EOS and np.array_equal(cut[0, :63], src[0, :63])
    expected = beam_search(full_recompute_step(eval_model, cut, 2), 1, settings, max_len=3)
    assert_same(hyps, expected[0], atol=1e-4)


def test_generate_needs_eval_mode(tiny_model_config):
    model = MassTransformer(tiny_model_config)
    model.set_train(True)
    with pytest.raises(ValueError, match="eval mode"):
        generate(model, np.array([[5, 2]]), Settings(beam_size=1, max_len_b=2))


def test_cut_batch_keeps_short_rows_and_final_eos():
    src = np.array([[7, 8, 9, 2], [7, 2, 0, 0], [7, 8, 9, 10]])
    np.testing.assert_array_equal(cut_batch(src, 3), [[7, 8, 2], [7, 2, 0], [7, 8, 9]])
    assert cut_batch(src, 4) is src


@pytest.mark.parametrize("alpha,kind", [(1.0, "gnmt"), (1.0, "power"), (2.0, "power")])
def test_early_exit_never_changes_the_result(alpha, kind):
    """Rule 2 (n_best finished that no live beam can beat) is exact: a wide beam that may stop early
    still returns the exhaustive best, over many tables, with a length penalty that favours long outputs."""
    stopped_early = 0
    for seed in range(30):
        table = PrefixTable(vocab=4, beam_size=121, examples=[0], seed=seed, eos_bonus=2.0)
        (got,) = beam_search(table.step_fn, 1, Settings(beam_size=121, length_penalty=alpha, length_penalty_type=kind,
                                                        forbid=()), max_len=4)
        assert_same(got, exhaustive(table, 0, max_len=4, alpha=alpha, kind=kind)[:1])
        stopped_early += table.steps < 4
    assert stopped_early >= 5  # the rule did fire


@pytest.mark.parametrize("vocab,k,block", [(1000, 8, 64), (997, 8, 64), (50, 6, 2), (37, 4, 3)])
def test_blocked_top_k_equals_top_k(vocab, k, block):
    """Two small top-k's over blocks give ops.topk's values; the tokens are the same set when no value
    ties at the k-th place. Rows with repeated values and -inf entries included."""
    rng = np.random.default_rng(vocab)
    scores = rng.normal(size=(12, vocab)).astype(np.float32)
    scores[0] = np.round(scores[0])  # many ties (not at the k-th place in general)
    scores[1, : vocab - 2] = -np.inf  # two finite entries only
    scores[2, rng.integers(0, vocab, size=vocab // 2)] = -np.inf
    values, ids = (t.asnumpy() for t in blocked_topk(Tensor(scores), k, block))
    ref_values, ref_ids = (t.asnumpy() for t in ops.topk(Tensor(scores), k))
    np.testing.assert_array_equal(values, ref_values)
    finite = np.isfinite(ref_values)
    np.testing.assert_array_equal(np.take_along_axis(scores, np.where(finite, ids, 0), 1)[finite], values[finite])
    for row in range(12):
        kth = ref_values[row, -1]
        clear = (ref_values[row] > kth) & finite[row]  # above the k-th value: no boundary tie
        assert set(ids[row][clear]) == set(ref_ids[row][clear])


def test_banned_scatter_repeats_a_banned_id_in_the_padding():
    index, on = (t.asnumpy() for t in banned_scatter(np.array([[-1, -1], [5, -1]])))
    assert index.tolist() == [[0, 0], [5, 5]] and on.tolist() == [[False, False], [True, True]]


def test_start_symbol_is_never_generated(eval_model):
    """``<s>`` only starts the decoder's input: a model that scores it highest still never outputs it (the
    dictionary's NEVER_GENERATED), where without the ban it would fill the hypotheses."""
    from src.text.dictionary import BOS_ID

    src = np.array([[9, 14, 23, 7, 31, 8, 2]], dtype=np.int32)
    settings = Settings(beam_size=2, max_len_b=6, min_len=6)
    assert BOS_ID in settings.forbid
    favourite = generate(eval_model, src, settings)[0][0].tokens[0]
    table = eval_model.embedding.table.asnumpy()  # tied: <s> as 3x the favourite's row outscores it
    table[BOS_ID] = 3 * table[favourite]
    eval_model.embedding.table.set_data(Tensor(table))
    unbanned = generate(eval_model, src, settings.replace(forbid=(0, 4)))[0][0].tokens
    assert BOS_ID in unbanned  # the model would choose it
    stream = generate_stream(eval_model, list(src), settings, batch_size=1)
    for hypotheses in (generate(eval_model, src, settings), stream):
        assert BOS_ID not in hypotheses[0][0].tokens and len(hypotheses[0][0].tokens) == 6
