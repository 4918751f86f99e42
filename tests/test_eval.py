"""Evaluation: ROUGE wrappers, per-word perplexity, the inference API and eval.py end to end."""

import io
import json
import math
import sys

import mindspore as ms
import numpy as np
import pytest

import eval as eval_script
import gigaword
from config.config import MassConfig
from src.dataset.batching import pad_batch
from src.evaluation.api import MassGenerator
from src.evaluation.evaluate import read_references
from src.evaluation.ppl_score import (
    SCORING_ROWS,
    PerplexityResult,
    continuation_mask,
    corpus_nll,
    corpus_perplexity,
    count_words,
    make_nll_fn,
    scoring_batches,
)
from src.evaluation.rouge_score import rouge
from src.transformer.transformer import MassTransformer
from src.utils.checkpoint import parameter_entries, save_checkpoint
from src.utils.cli import run_cli
from tests.helpers import random_sentences, vocab_for, write_lines

N_TEST = 12


# ------------------------------------------------------------------ ROUGE

def test_rouge_score_hand_computed():
    got = rouge(["the cat sat"], ["the cat sat on the mat"])
    # R1: 3 matching unigrams, P = 3/3, R = 3/6 -> F = 2/3; R2: 2 of 2 / 2 of 5 bigrams -> F = 4/7
    assert got["precision"]["rouge1"] == pytest.approx(100.0)
    assert got["recall"]["rouge1"] == pytest.approx(50.0)
    assert got["rouge1"] == pytest.approx(200 / 3)
    assert got["rouge2"] == pytest.approx(400 / 7)
    assert got["rougeL"] == pytest.approx(200 / 3)
    assert got["tool"] == "rouge-score" and got["version"] != "unknown"
    assert got["options"]["use_stemmer"] is True


def test_rouge_score_equals_the_package_mean():
    from rouge_score import rouge_scorer

    hyps = ["police arrest five protesters", "japan 's nec joins forces", "", "UNK wins the cup"]
    refs = ["police arrested five anti-nuclear protesters", "nec and cray join forces in sales",
            "something", "the cup is won"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    direct = [scorer.score(r, h) for h, r in zip(hyps, refs, strict=True)]
    got = rouge(hyps, refs)
    for metric in ("rouge1", "rouge2", "rougeL"):
        assert got[metric] == pytest.approx(100 * np.mean([d[metric].fmeasure for d in direct]))
    assert got["pairs"] == 4 and got["empty_hypotheses"] == 1


def test_stemming():
    assert rouge(["running"], ["run"])["rouge1"] == pytest.approx(100.0)
    assert rouge(["running"], ["run"], stem=False)["rouge1"] == pytest.approx(0.0)


def test_pltrdy_matches_get_scores_avg_and_survives_empty():
    from rouge import Rouge

    hyps, refs = ["the cat sat", "a big red house ."], ["the cat sat on the mat", "the red house is big"]
    expected = Rouge().get_scores(hyps, refs, avg=True)
    got = rouge(hyps, refs, tool="rouge")
    assert got["tool"] == "rouge"
    assert got["rouge1"] == pytest.approx(100 * expected["rouge-1"]["f"])
    assert got["rouge2"] == pytest.approx(100 * expected["rouge-2"]["f"])
    assert got["rougeL"] == pytest.approx(100 * expected["rouge-l"]["f"])
    empty = rouge(["", "the cat", "."], ["the mat", "the cat", "a dog"], tool="rouge")
    assert empty["rouge1"] == pytest.approx(100 / 3)  # 0, 100, 0
    assert empty["empty_hypotheses"] == 1 and empty["pairs"] == 3


def test_rouge_rejects_unknown_tool_and_misaligned_input():
    with pytest.raises(ValueError):
        rouge(["a"], ["a"], tool="perl")
    with pytest.raises(ValueError):
        rouge(["a", "b"], ["a"])


# ------------------------------------------------------------------ perplexity

SYMBOLS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>", "hel@@", "lo", "world", "wor@@"]


def test_word_count_merges_bpe_and_counts_eos():
    continues = continuation_mask(SYMBOLS)
    tgt = np.array([[5, 6, 7, 2], [8, 8, 7, 2], [7, 2, 0, 0]])
    # "hello world </s>" = 3 words, "worworworld </s>" = 2, "world </s>" = 2
    assert count_words(tgt, continues) == 7


class _Net:
    training = True

    def set_train(self, mode=True):
        self.training = mode


def test_word_and_subword_perplexity_from_a_known_nll():
    tgt = np.array([[5, 6, 7, 2], [7, 2, 0, 0]])  # 6 subword tokens, 5 words
    batch = (tgt, tgt, tgt, tgt)
    per_batch = 6 * math.log(2.0)  # mean NLL ln 2 per subword: subword PPL exactly 2

    def fake_nll(*_):
        return ms.Tensor(per_batch, ms.float32), ms.Tensor(6.0, ms.float32)

    net = _Net()
    result = corpus_perplexity(net, [batch, batch], continuation_mask(SYMBOLS), nll_fn=fake_nll)
    assert net.training is True  # restored
    assert (result.subword_tokens, result.words) == (12, 10)
    assert result.subword_ppl == pytest.approx(2.0, rel=1e-6)
    assert result.word_ppl == pytest.approx(2.0 ** (12 / 10), rel=1e-6)
    assert result.as_dict()["nll_per_subword"] == pytest.approx(math.log(2.0), rel=1e-6)
    assert PerplexityResult(0.0, 0, 0).word_ppl == float("inf")


# ------------------------------------------------------------------ a tiny model and test set

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    arts = random_sentences(N_TEST, seed=11, min_words=4, max_words=10)
    titles = random_sentences(N_TEST, seed=12, min_words=2, max_words=4)
    write_lines(d / "test.article.txt", arts)
    write_lines(d / "test.title.txt", titles)
    vocab = vocab_for(arts + titles, d / "vocab.txt")
    assert gigaword.main(["--test_src", str(d / "test.article.txt"), "--test_ref", str(d / "test.title.txt"),
                          "--existed_vocab", str(d / "vocab.txt"), "--output_folder", str(d)]) == 0
    cfg = MassConfig.from_json("config/tiny.json").override([
        f"--model_config.vocab_size={len(vocab)}", "--model_config.hidden_size=16",
        "--model_config.intermediate_size=32", "--model_config.hidden_dropout_prob=0.0",
        "--model_config.attention_dropout_prob=0.0", "--model_config.compute_type=float32",
        "--dataset_config.batch_size=5", "--decode_config.beam_width=2", "--decode_config.max_decode_length_b=6",
        f"--dataset_config.test_dataset={d / 'gigaword_test.mindrecord'}"])
    model = MassTransformer(cfg.model_config)
    ckpt = save_checkpoint(d / "model.ckpt", parameter_entries(model), {"config_json": cfg.to_json_text()})
    return d, ckpt, arts, titles


def run_eval(setup, *extra):
    d, ckpt, _, _ = setup
    return eval_script.main(["--checkpoint", str(ckpt), "--pynative", *extra])


def test_eval_rouge_end_to_end(setup):
    d, ckpt, arts, _ = setup
    out = d / "rouge" / "hyps.txt"
    assert run_eval(setup, "--output", str(out)) == 0
    report = json.loads((d / "rouge" / "hyps.txt.report.json").read_text())
    assert (d / "rouge" / "hyps.txt.summary.txt").is_file()
    hyps = out.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(hyps) == N_TEST == report["rouge"]["pairs"]
    for key in ("rouge1", "rouge2", "rougeL"):
        assert 0.0 <= report["rouge"][key] <= 100.0
    assert report["rouge"]["tool"] == "rouge-score" and report["rouge"]["options"]["use_stemmer"]
    assert report["decode"]["beam_size"] == 2
    # in order: each line is what decoding its source alone gives (eval.py decodes them through refilled
    # slots: generate_stream)
    gen = MassGenerator.from_files(ckpt, d / "vocab.txt", mode="pynative")
    alone = [gen.hypotheses_for_ids([gen.encode(a)[None, :]])[0][0].tokens for a in arts]
    assert [gen.ids_to_text(tokens) for tokens in alone] == hyps


def test_eval_rouge_pltrdy_and_overrides(setup):
    d, _, _, _ = setup
    out = d / "pl" / "hyps.txt"
    assert run_eval(setup, "--output", str(out), "--metric", "rouge_pltrdy", "--batch_size", "3",
                    "--decode_config.beam_width=1") == 0
    report = json.loads((d / "pl" / "hyps.txt.report.json").read_text())
    assert report["rouge"]["tool"] == "rouge" and report["decode"]["beam_size"] == 1
    assert len(out.read_text().splitlines()) == N_TEST


def test_eval_ppl_end_to_end(setup, capsys):
    d, _, _, _ = setup
    out = d / "ppl" / "ppl.txt"
    assert run_eval(setup, "--output", str(out), "--metric", "ppl") == 0
    report = json.loads((d / "ppl" / "ppl.txt.report.json").read_text())
    ppl = report["ppl"]
    assert ppl["subword_ppl"] > 1 and ppl["word_ppl"] > 1
    assert ppl["words"] == ppl["subword_tokens"] > N_TEST  # no BPE here: one word per token
    assert "PPL per word" in capsys.readouterr().out


def test_scoring_in_one_shape_gives_the_loss_of_each_pair_alone(setup):
    d, ckpt, _, _ = setup
    gen = MassGenerator.from_files(ckpt, d / "vocab.txt", mode="pynative")
    rng = np.random.default_rng(3)
    vocab = gen.config.model_config.vocab_size
    pairs = []
    for _ in range(SCORING_ROWS + 5):  # a full scoring batch and a filled one
        src = np.append(rng.integers(4, vocab, rng.integers(2, 12)), 2).astype(np.int32)
        tgt = np.append(rng.integers(4, vocab, rng.integers(1, 7)), 2).astype(np.int32)
        pairs.append((src, np.append(1, tgt[:-1]).astype(np.int32), np.arange(len(tgt), dtype=np.int32), tgt))
    natural = [tuple(pad_batch([[p[c] for p in pairs[i:i + 4]] for c in range(4)])) for i in range(0, len(pairs), 4)]
    shaped = list(scoring_batches(natural))
    assert {tuple(c.shape for c in b) for b in shaped} == {((SCORING_ROWS, 32), (SCORING_ROWS, 32),
                                                             (SCORING_ROWS, 32), (SCORING_ROWS, 32))}
    nll_fn = make_nll_fn(gen.model)
    total, count = corpus_nll(gen.model, shaped, nll_fn)
    alone = [corpus_nll(gen.model, [tuple(c[None, :] for c in p)], nll_fn) for p in pairs]  # the oracle
    assert count == sum(n for _, n in alone) == sum(len(p[3]) for p in pairs)
    assert total == pytest.approx(sum(t for t, _ in alone), rel=1e-5)


def test_interactive_reads_stdin(setup, monkeypatch, capsys):
    d, _, _, _ = setup
    monkeypatch.setattr(sys, "stdin", io.StringIO("the cat sat on the mat\n\nbig red house\n"))
    assert run_eval(setup, "--vocab", str(d / "vocab.txt"), "--interactive") == 0
    assert len(capsys.readouterr().out.split("\n")[:-1]) == 3


def test_generator_on_raw_strings(setup):
    d, ckpt, _, _ = setup
    gen = MassGenerator.from_files(ckpt, d / "vocab.txt", mode="pynative")
    assert gen.model.training is False
    out = gen.generate(["the cat sat .", "a big red house", ""], beam_size=2)
    assert len(out) == 3 and all(isinstance(s, str) for s in out)


def test_the_readme_constraint_example_bans_its_words(setup):
    """README's "Extending the decoder": a constraint passed to one call keeps its tokens out of every
    hypothesis (n-best included) and changes nothing else's rules."""
    from src.transformer.generator import generate

    d, ckpt, _, _ = setup
    gen = MassGenerator.from_files(ckpt, d / "vocab.txt", mode="pynative")
    settings = gen.search_settings(beam_size=3, n_best=3, max_len_b=8)
    src_ids = gen.encode("the cat sat on the mat")[None, :]
    (plain,) = generate(gen.model, src_ids, settings)
    used = [t for h in plain for t in h.tokens if t > 4]
    assert used, "the model generates no ordinary token: the test could not see a ban"
    banned = sorted(set(used))[:2]

    def no_words(view, settings):
        return np.tile(banned, (len(view.steps), 1))

    (hyps,) = generate(gen.model, src_ids, settings, constraints=[no_words])
    assert hyps and not any(t in banned for h in hyps for t in h.tokens)


def test_missing_checkpoint_is_a_clean_error(setup, capsys):
    d, _, _, _ = setup
    assert run_cli(eval_script.main, ["--checkpoint", str(d / "nope.ckpt"), "--vocab", str(d / "vocab.txt")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "Traceback" not in err


def test_npz_without_config_is_a_clean_error(setup, capsys):
    d, _, _, _ = setup
    np.savez(d / "w.npz", x=np.zeros(2))
    assert run_cli(eval_script.main, ["--checkpoint", str(d / "w.npz"), "--interactive",
                                      "--vocab", str(d / "vocab.txt")]) == 2
    assert "--config" in capsys.readouterr().err


def test_an_averaged_npz_carries_its_config_and_a_mismatched_config_is_refused(setup, tmp_path, capsys):
    import weights_average
    from src.utils.checkpoint import load_checkpoint, read_model_file

    d, ckpt, _, _ = setup
    params, state = load_checkpoint(ckpt)
    noisy = [{"name": n, "data": ms.Tensor(p.asnumpy() + 0.01)} for n, p in params.items()]
    other = save_checkpoint(tmp_path / "other.ckpt", noisy, {"config_json": state["config_json"]})
    avg = tmp_path / "avg.npz"
    assert run_cli(weights_average.main, ["--input_files", f"{ckpt},{other}", "--output_file", str(avg)]) == 0
    weights, stored = read_model_file(avg)
    assert stored["config_json"] == state["config_json"] and "config_json" not in weights
    out = tmp_path / "hyps.txt"
    assert run_cli(eval_script.main, ["--checkpoint", str(avg), "--pynative", "--output", str(out)]) == 0  # no --config
    assert len(out.read_text().splitlines()) == N_TEST
    heads = json.loads(state["config_json"])
    heads["model_config"]["num_attention_heads"] *= 2  # the same weight shapes, another model
    (tmp_path / "heads.json").write_text(json.dumps(heads))
    capsys.readouterr()
    assert run_cli(eval_script.main, ["--checkpoint", str(avg), "--config", str(tmp_path / "heads.json"),
                                      "--pynative", "--output", str(tmp_path / "h2.txt")]) == 2
    err = capsys.readouterr().err
    assert "num_attention_heads" in err and "Traceback" not in err and not (tmp_path / "h2.txt").exists()
    # checkpoints of two models whose weights have the same shapes are not averaged
    third = save_checkpoint(tmp_path / "third.ckpt", [{"name": n, "data": ms.Tensor(p.asnumpy() - 0.01)}
                                                      for n, p in params.items()], {"config_json": json.dumps(heads)})
    assert run_cli(weights_average.main, ["--input_files", f"{ckpt},{third}", "--output_file",
                                          str(tmp_path / "mixed.npz")]) == 2
    assert "num_attention_heads" in capsys.readouterr().err and not (tmp_path / "mixed.npz").exists()
    # export.py checks a --config the same way, and takes the stored one by default
    import export

    assert run_cli(export.main, ["--ckpt_file", str(avg), "--config", str(tmp_path / "heads.json"),
                                 "--file_name", str(tmp_path / "m")]) == 2
    assert "num_attention_heads" in capsys.readouterr().err and not (tmp_path / "m.mindir").exists()


def test_bpe_references_are_de_bped_and_detokenized(tmp_path):
    path = write_lines(tmp_path / "ref_bpe.txt", ["japan 's ne@@ c cor@@ p. sold it ."])
    assert read_references(path, from_bpe=True) == ["japan's nec corp. sold it."]
    assert read_references(path, from_bpe=False) == ["japan 's ne@@ c cor@@ p. sold it ."]


def test_tokenized_output_keeps_tokens_for_tokenized_references(setup):
    d, ckpt, arts, _ = setup
    gen = MassGenerator.from_files(ckpt, d / "vocab.txt", mode="pynative")
    for word in ("do", "n't", "#.#", "percent"):
        gen.vocab.add_symbol(word)
    ids = [gen.vocab.index(w) for w in ("do", "n't", "#.#", "percent")]
    # Gigaword references are tokens: "do n't" and "#.# percent" must not become "don't" / "#.#percent"
    assert gen.ids_to_text(ids, detokenized=False) == "do n't #.# percent"
    assert gen.ids_to_text(ids) != "do n't #.# percent"
    out = d / "tok" / "hyps.txt"
    assert run_eval(setup, "--output", str(out), "--tokenized_output") == 0
    report = json.loads((d / "tok" / "hyps.txt.report.json").read_text())
    assert report["hypotheses_detokenized"] is False
    best = [gen.hypotheses_for_ids([gen.encode(a)[None, :]])[0][0].tokens for a in arts[:2]]
    assert out.read_text().splitlines()[:2] == [gen.ids_to_text(t, detokenized=False) for t in best]


def test_eval_report_has_the_copy_rates_of_hypotheses_and_references(setup):
    from src.evaluation.copy_rate import copy_rate

    d, _, arts, titles = setup
    out = d / "copy" / "hyps.txt"
    assert run_eval(setup, "--output", str(out), "--tokenized_output") == 0
    report = json.loads((d / "copy" / "hyps.txt.report.json").read_text())
    hyps = out.read_text(encoding="utf-8").split("\n")[:-1]
    copy = report["copy"]
    assert copy["hypothesis_copy_rate"] == pytest.approx(copy_rate(hyps, arts))
    assert copy["reference_copy_rate"] == pytest.approx(copy_rate(titles, arts))
    assert copy["reference_words"] == pytest.approx(sum(len(t.split()) for t in titles) / len(titles))


def test_eval_decodes_and_scores_chrf_like_the_sacrebleu_command_line(setup):
    import subprocess
    from pathlib import Path

    d, _, _, _ = setup
    out = d / "chrf" / "hyps.txt"
    assert run_eval(setup, "--output", str(out), "--metric", "chrf") == 0
    report = json.loads((d / "chrf" / "hyps.txt.report.json").read_text())
    assert report["metric"] == "chrf" and "rouge" not in report and len(out.read_text().splitlines()) == N_TEST
    cli = subprocess.run([str(Path(sys.executable).parent / "sacrebleu"), report["references"], "-i", str(out),
                          "-m", "chrf", "-b", "-w", "4"], capture_output=True, text=True, check=True)
    assert report["chrf"]["chrf"] == pytest.approx(float(cli.stdout), abs=0.01)
