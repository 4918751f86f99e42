"""Benchmark: beam-search decoding speed, cached ``generate`` against a ModelZoo-style uncached decode.

Inputs: the first ``--lines`` Gigaword test articles (``../shared/data/gigaword/Giga/input.txt``; if that
file is absent, generated sentences are used and a message says so). Ids come from a fixed hash, not a
learned BPE vocabulary: vocabulary size 10000, ``id = 5 + crc32(word) % 9995`` (the 5 specials kept), so
the model's output layer has the size of a real small vocabulary and nothing has to be learned first.
The model is config/small.json (3+3 layers, d 256) with random weights in eval mode, GRAPH_MODE.

Rows, beam 4, batches of ``--batch_size`` sentences. Every row is run once untimed first (every shape it
uses is compiled before any timed pass), then the rows take turns for ``--rounds`` timed passes and each
keeps its best (the machine's noise hits every row alike):
  cached          src/transformer/generator.generate: one decoder step per token with the key/value cache,
                  constraints and per-row top-k on the device, early exit once every beam has finished
                  (max 64 tokens)
  cached, 64      the same, forced to 64 tokens (min_len 64): equal work in tokens to the uncached row
  ..., host       the same, but every step's (rows, vocab) distribution goes to the host (the path before
                  the device top-k: reference_decoding.reference_generate)
  HF generate     the peer a user would pick instead: Hugging Face transformers generate() with a randomly
                  initialised BartForConditionalGeneration of the same shape (d 256, 3+3 layers, 4 heads,
                  FFN 1024, vocab 10,000, dropout 0, eval, torch.inference_mode, 2 threads), the same source
                  ids and batches, num_beams 4, at most 64 new tokens, with early stopping and forced to 64
                  (min_new_tokens 64). --skip_hf leaves the rows out.
  CTranslate2     that same BART (the same weights) converted with ctranslate2's TransformersConverter
                  (float32, into a temporary folder, loaded into memory), run by ctranslate2.Translator
                  (compute_type float32, intra_threads 2) with translate_batch: the same source ids and batches
                  (id i is token i of the converted vocabulary, padding left out), beam_size 4, length
                  penalty 1, at most 64 tokens (max_decoding_length) with early stopping (beam_size finished
                  hypotheses, as HF's early_stopping) and forced to 64 (min_decoding_length 64).
                  --skip_ct2 leaves the rows out.
                  The HF and CTranslate2 rows need the benchmark-only extras (not in requirements.txt; never
                  imported by src/):
                      pip install torch==2.13.0 transformers==4.46.3 ctranslate2==4.8.5
                  (ctranslate2 4.8.5's converter reloads a model with an argument, dtype, that transformers
                  4.46 lacks: the bench hands it the model object instead, so one transformers serves both).
  uncached, 64    ModelZoo's scheme: every step re-runs the decoder over the whole prefix (no cache), a fixed
                  64 steps, no early exit; finished beams are kept alive by appending </s>. The prefix is
                  padded to a multiple of 16 so only 4 shapes are compiled (causal attention: the padding
                  does not change the last real position).
The last lines compare the forced-length rows: ours vs HF generate, ours vs CTranslate2 (speed ratios, > 1:
ours is faster).

    python bench/bench_decode.py                 # 200 lines
    python bench/bench_decode.py --lines 32 --batch_size 16
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.decode_inputs import BEAM, BOS, EOS, STEPS, VOCAB, batches, hashed_ids, read_lines  # noqa: E402
from bench.machine import describe  # noqa: E402


def uncached_decoder(model):
    """A jit function: (prefix ids (rows, w), positions (rows, w), memory, mask, last (1,)) -> log-probs of
    the token after position ``last``, re-running the decoder over the whole prefix."""
    import mindspore as ms
    from mindspore import ops

    @ms.jit
    def step(prefix, positions, memory, memory_mask, last):
        hidden, _ = model.decode(prefix, positions, memory, memory_mask)  # (rows, w, d), no cache
        hidden = ops.gather(hidden, last, 1)  # (rows, 1, d)
        return ops.log_softmax(model.logits(hidden).astype(ms.float32), -1).squeeze(1)  # (rows, vocab)

    return step


def uncached_beam_search(model, step, src_ids):
    """ModelZoo-style: fixed STEPS steps, beam BEAM, finished beams extended with </s> at no cost."""
    from mindspore import Tensor, ops

    batch = src_ids.shape[0]
    rows = batch * BEAM
    src = Tensor(src_ids)
    memory, _ = model.encode(src)  # (batch, src_len, d): encoded once, as ModelZoo does
    tile = Tensor(np.repeat(np.arange(batch), BEAM).astype(np.int32))
    memory = ops.gather(memory, tile, 0)  # (rows, src_len, d)
    memory_mask = ops.gather(model.memory_mask(src), tile, 0)  # (rows, src_len)
    seqs = np.full((rows, STEPS + 1), 0, dtype=np.int32)
    seqs[:, 0] = BOS
    scores = np.tile(np.array([0.0] + [-1e9] * (BEAM - 1)), batch).reshape(batch, BEAM)  # only beam 0 alive
    finished = np.zeros((batch, BEAM), dtype=bool)
    lengths = np.zeros((batch, BEAM))
    for m in range(1, STEPS + 1):
        width = -(-m // 16) * 16
        prefix = np.zeros((rows, width), dtype=np.int32)
        prefix[:, :m] = seqs[:, :m]
        positions = np.tile(np.arange(width, dtype=np.int32), (rows, 1))
        logp = step(Tensor(prefix), Tensor(positions), memory, memory_mask,
                    Tensor(np.array([m - 1], dtype=np.int32))).asnumpy().reshape(batch, BEAM, -1)
        total = scores[..., None] + logp  # (batch, BEAM, vocab)
        total[finished] = -np.inf
        total[finished, EOS] = scores[finished]  # a finished beam stays as it is
        flat = total.reshape(batch, -1)
        best = np.argsort(-flat, axis=1)[:, :BEAM]  # (batch, BEAM)
        beam, word = best // logp.shape[-1], best % logp.shape[-1]
        scores = np.take_along_axis(flat, best, 1)
        origin = (np.arange(batch)[:, None] * BEAM + beam).reshape(-1)
        seqs = seqs[origin]
        lengths = lengths.reshape(-1)[origin].reshape(batch, BEAM) + ~finished.reshape(-1)[origin].reshape(
            batch, BEAM)
        finished = finished.reshape(-1)[origin].reshape(batch, BEAM) | (word == EOS)
        seqs[:, m] = word.reshape(-1)
    final = scores / ((5 + lengths) / 6)  # GNMT penalty, weight 1
    return seqs.reshape(batch, BEAM, -1)[np.arange(batch), final.argmax(1)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, default=200)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--config", default=str(ROOT / "config" / "small.json"))
    p.add_argument("--device_target", default="CPU")
    p.add_argument("--rounds", type=int, default=3,
                   help="timed passes of every row, alternating (each row keeps its best; default 3)")
    p.add_argument("--pause", type=float, default=1.0,
                   help="seconds idle before each timed pass, so that the previous row's engine threads (OpenMP "
                        "pools spin-wait after their work) are asleep when the next row starts (default 1.0)")
    p.add_argument("--skip_uncached", action="store_true")
    p.add_argument("--skip_hf", action="store_true", help="leave out the Hugging Face generate() rows")
    p.add_argument("--skip_ct2", action="store_true", help="leave out the CTranslate2 rows")
    args = p.parse_args(argv)
    if args.pause < 0:
        p.error(f"--pause must be >= 0, got {args.pause}")

    from config.config import MassConfig
    from src.transformer.generator import generate
    from src.transformer.reference_decoding import reference_generate
    from src.transformer.search_settings import SearchSettings
    from src.transformer.transformer import MassTransformer
    from src.utils.device import setup_device

    setup_device(args.device_target, mode="graph", distributed=False)
    cfg = MassConfig.from_json(args.config).override([f"--model_config.vocab_size={VOCAB}"])
    model = MassTransformer(cfg.model_config)
    model.set_train(False)
    lines, source = read_lines(args.lines)
    sequences = [hashed_ids(line, cfg.dataset_config.max_len) for line in lines]
    data = list(batches(sequences, args.batch_size))
    print(describe())
    print(f"{len(lines)} sentences from {source}, batch {args.batch_size}, beam {BEAM}, vocab {VOCAB} (hashed), "
          f"{args.config}, {args.device_target}")

    def cached(min_len, decode=generate):
        def run(batch):
            settings = SearchSettings(beam_size=BEAM, max_len_a=0.0, max_len_b=STEPS, min_len=min_len)
            return decode(model, batch, settings)
        return run

    runs = {"cached (early exit)": cached(0), "cached, 64 steps": cached(STEPS),
            "cached, 64 steps, whole distribution to the host": cached(STEPS, reference_generate)}
    if not args.skip_uncached:
        step = uncached_decoder(model)
        runs["uncached, 64 steps (ModelZoo-style)"] = lambda batch: uncached_beam_search(model, step, batch)
    if not (args.skip_hf and args.skip_ct2):
        bart = random_bart()  # one model for both peers: CTranslate2 runs HF's weights
        if bart is not None and not args.skip_hf:
            runs.update(hf_rows(bart))
        if bart is not None and not args.skip_ct2:
            runs.update(ct2_rows(bart))
    for run in runs.values():
        for batch in data:  # warm-up: compile every shape the timed passes use
            run(batch)
    results = {name: float("inf") for name in runs}
    for _ in range(args.rounds):  # the rows alternate; each keeps its best pass
        for name, run in runs.items():
            time.sleep(args.pause)
            start = time.perf_counter()
            for batch in data:
                run(batch)
            results[name] = min(results[name], time.perf_counter() - start)
    base = results.get("uncached, 64 steps (ModelZoo-style)")
    print("\n| decode | s | sentences/s | speed-up vs uncached |")
    print("|---|---|---|---|")
    for name, seconds in results.items():
        ratio = f"{base / seconds:.2f}x" if base else "-"
        print(f"| {name} | {seconds:.2f} | {len(lines) / seconds:.2f} | {ratio} |")
    for peer, label in ((HF_FORCED, "HF generate"), (CT2_FORCED, "CTranslate2")):
        if peer in results:
            print(f"ours vs {label}: {results[peer] / results['cached, 64 steps']:.2f}x (forced 64 tokens)")
    return 0


HF_FORCED = "HF generate, 64 tokens"
CT2_FORCED = "CTranslate2, 64 tokens"
PEER_THREADS = 2  # the machine's cores
EXTRAS = "pip install torch==2.13.0 transformers==4.46.3 ctranslate2==4.8.5"


def random_bart():
    """The peers' model: a randomly initialised BartForConditionalGeneration of our small shape (seed 0, eval),
    or None with a message when the benchmark extras are not installed."""
    try:
        import torch
        import transformers
        from transformers import BartConfig, BartForConditionalGeneration
    except ImportError:
        print(f"torch / transformers not installed: no HF generate or CTranslate2 rows ({EXTRAS})")
        return None
    print(f"peers: torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(PEER_THREADS)
    torch.manual_seed(0)
    config = BartConfig(vocab_size=VOCAB, d_model=256, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024, dropout=0.0,
                        attention_dropout=0.0, activation_dropout=0.0, max_position_embeddings=128, pad_token_id=0,
                        bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS, forced_bos_token_id=None,
                        forced_eos_token_id=None)
    return BartForConditionalGeneration(config).eval()


def hf_rows(model) -> dict:
    """The Hugging Face generate() rows of ``model`` (random_bart)."""
    import torch

    def hf(min_new_tokens):
        def run(batch):
            ids = torch.from_numpy(batch.astype(np.int64))
            with torch.inference_mode():
                return model.generate(input_ids=ids, attention_mask=ids != 0, num_beams=BEAM, max_new_tokens=STEPS,
                                      min_new_tokens=min_new_tokens, early_stopping=True, do_sample=False,
                                      length_penalty=1.0)
        return run

    return {"HF generate (early stopping)": hf(0), HF_FORCED: hf(STEPS)}


def ct2_vocabulary() -> list:
    """Token i of the converted model's vocabulary for id i: our specials' names, then ``w<id>``."""
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]  # src/text/dictionary.py's ids 0-4
    tokens = specials + [f"w{i}" for i in range(len(specials), VOCAB)]
    assert tokens[BOS] == "<s>" and tokens[EOS] == "</s>"
    return tokens


def ct2_translator(model):
    """``model`` (random_bart) converted by ctranslate2's TransformersConverter to float32 in a temporary folder
    and loaded (the Translator holds the whole model in memory, so the folder is removed)."""
    import tempfile

    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tokens = ct2_vocabulary()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({token: i for i, token in enumerate(tokens)}, unk_token="<unk>")),
        pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")

    class InMemory(TransformersConverter):
        """The converter's own path, reading the configuration and the tokenizer from the folder, but the
        weights from ``model`` itself (not reloaded: ctranslate2 4.8.5 loads with ``dtype=``, which
        transformers 4.46 does not know)."""

        def load_model(self, model_class, model_name_or_path, **kwargs):
            if not hasattr(model.config, "normalize_before"):
                model.config.normalize_before = False  # read by its BART loader (hub configs carry it): post-norm
            return model

    with tempfile.TemporaryDirectory(prefix="bench_decode_ct2_") as folder:
        model.config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        converted = InMemory(folder).convert(f"{folder}/ct2", quantization="float32")
        translator = ctranslate2.Translator(converted, device="cpu", compute_type="float32", inter_threads=1,
                                            intra_threads=PEER_THREADS)
    return translator, tokens


def ct2_rows(model) -> dict:
    """The CTranslate2 rows: ``model`` (random_bart) converted, or none with a message when ctranslate2 is not
    installed."""
    try:
        import ctranslate2
    except ImportError:
        print(f"ctranslate2 not installed: no CTranslate2 rows ({EXTRAS})")
        return {}
    translator, tokens = ct2_translator(model)
    print(f"peers: ctranslate2 {ctranslate2.__version__} (the BART converted, float32, intra_threads {PEER_THREADS})")

    def ct2(min_length):
        def run(batch):
            source = [[tokens[i] for i in row if i != 0] for row in batch]  # the same ids, padding left out
            return translator.translate_batch(source, beam_size=BEAM, max_decoding_length=STEPS,
                                              min_decoding_length=min_length, length_penalty=1.0)
        return run

    return {"CTranslate2 (early stopping)": ct2(0), CT2_FORCED: ct2(STEPS)}


if __name__ == "__main__":
    sys.exit(main())
