"""The demo pipeline (scripts/pipeline.py on the corpus shipped in scripts/demo_corpus), at a tinier size:
every stage's artefact exists, the report's numbers are in range, and a second run skips finished stages."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.dataset.writer import read_manifest
from src.text.dictionary import Dictionary

pytestmark = pytest.mark.slow  # end to end: trains models in subprocesses

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "scripts" / "demo_corpus"
ENV = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT)}


def pipeline(work, *extra):
    cmd = [sys.executable, str(ROOT / "scripts" / "pipeline.py"), "--work", str(work), "--config",
           str(ROOT / "config" / "tiny.json"), "--news", str(CORPUS / "news.txt"), "--gigaword",
           str(CORPUS / "gigaword"), "--cornell", str(CORPUS / "cornell"), "--bpe_merges", "300",
           "--pretrain_steps", "60", "--finetune_steps", "20", "--cornell_steps", "20", "--evals", "1",
           "--pad_multiple", "64", "--train_option=--dataset_config.bucket_boundaries=[]", "--processes", "1", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    done = pipeline(work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work, done.stdout


def test_every_stage_leaves_its_artefact(demo):
    work, _ = demo
    vocab = Dictionary.load_from_persisted_dict(work / "vocab" / "vocab.txt")
    assert (work / "vocab" / "bpe.codes").stat().st_size > 0 and 100 < len(vocab) < 2000
    datasets = {"news_crawl_len_64": 1000, "news_crawl_len_64_valid": 10, "gigaword_train": 500,
                "gigaword_valid": 50, "gigaword_test": 80, "cornell/cornell_train": 500}
    for name, at_least in datasets.items():
        manifest = read_manifest(work / "data" / f"{name}.mindrecord")
        assert manifest["examples"] >= at_least and manifest["vocab_size"] == len(vocab), name
    assert read_manifest(work / "data" / "gigaword_test.mindrecord")["examples"] == 80  # never filtered
    for run, phase in [("pretrain", "pretrain"), ("gigaword_mass", "finetune"), ("gigaword_scratch", "finetune"),
                       ("cornell_mass", "finetune"), ("cornell_scratch", "finetune")]:
        folder = work / "runs" / run
        assert (folder / "checkpoints" / f"ckpt_{phase}_best.ckpt").exists(), run
        assert json.loads((folder / "config.json").read_text())["dataset_config"]["pad_multiple"] == 64
    hyps = (work / "results" / "gigaword_mass.txt").read_text().splitlines()
    assert len(hyps) == 80
    assert (work / "results" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(work.rglob("*.tmp*"))  # every file was completed and renamed


def test_report_numbers_in_range(demo):
    work, stdout = demo
    report = json.loads((work / "report.json").read_text())
    vocab_size = len(Dictionary.load_from_persisted_dict(work / "vocab" / "vocab.txt"))
    pre = report["runs"]["pretrain"]
    assert pre["steps"] == 60 and pre["best_valid_loss"] < math.log(vocab_size)  # it learned something
    for system in ("mass", "scratch"):
        rouge = report["results"][f"gigaword_{system}"]["rouge"]
        assert rouge["pairs"] == 80
        assert all(0.0 <= rouge[m] <= 100.0 for m in ("rouge1", "rouge2", "rougeL"))
        assert rouge["rouge2"] <= rouge["rouge1"]
        ppl = report["results"][f"cornell_{system}"]["ppl"]
        assert 1.0 < ppl["subword_ppl"] < 2 * vocab_size and ppl["word_ppl"] >= ppl["subword_ppl"]
        assert report["runs"][f"gigaword_{system}"]["steps"] == 20
    # the MASS run started from the pre-trained weights, the scratch run did not
    assert "existed_ckpt" in (work / "stages" / "gigaword_mass.json").read_text()
    assert "existed_ckpt" not in (work / "stages" / "gigaword_scratch.json").read_text()
    assert "| gigaword | mass | 20 |" in stdout and "curves.png" in stdout
    assert set(report["timings_s"]) >= {"tokenize", "bpe", "datasets", "pretrain", "curves"}
    # Gigaword checkpoints are chosen by validation ROUGE; the copy rates are reported
    giga = report["runs"]["gigaword_mass"]
    assert giga["selected_step"] == 20 and 0.0 <= giga["valid_rouge"]["rouge1"] <= 100.0
    copy = report["results"]["gigaword_mass"]["copy"]
    assert 0.0 <= copy["hypothesis_copy_rate"] <= 1.0 and 0.0 < copy["reference_copy_rate"] <= 1.0
    headline = json.loads((work / "results.json").read_text())
    assert headline["gigaword"]["mass"]["rouge1"] == report["results"]["gigaword_mass"]["rouge"]["rouge1"]
    assert headline["cornell"]["scratch"]["ppl"] == report["results"]["cornell_scratch"]["ppl"]["subword_ppl"]
    assert headline["wall_seconds"] > 0 and headline["cpu"]


def test_second_run_skips_finished_stages(demo):
    work, _ = demo
    before = (work / "report.json").read_text()
    again = pipeline(work, "--quiet")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipped") == 13 and "..." not in again.stdout
    assert json.loads((work / "report.json").read_text())["results"] == json.loads(before)["results"]


def test_a_changed_option_redoes_exactly_the_stages_it_reaches(demo):
    work, _ = demo
    again = pipeline(work, "--quiet", "--scratch_lr", "2e-3")
    assert again.returncode == 0, again.stderr[-2000:]
    redone = sorted(line.split("]")[0].strip("[") for line in again.stdout.splitlines() if "redoing" in line)
    assert redone == ["curves", "gigaword_scratch", "gigaword_scratch_test"]  # Cornell has its own --cornell_lr
    assert again.stdout.count("skipped") == 10
    config = json.loads((work / "runs" / "gigaword_scratch" / "config.json").read_text())
    assert config["learn_rate_config"]["lr"] == 2e-3


def test_bad_input_is_a_clear_error(tmp_path):
    done = pipeline(tmp_path / "w", "--gigaword", str(tmp_path / "missing"))
    assert done.returncode == 2 and "missing" in done.stderr and "Traceback" not in done.stderr


def test_a_released_model_skips_pre_training_and_is_checked(demo, tmp_path):
    work, _ = demo
    release = tmp_path / "models" / "demo"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "release_model.py"), "--checkpoint",
                           str(work / "runs" / "pretrain" / "checkpoints" / "ckpt_pretrain_best.ckpt"),
                           "--vocab", str(work / "vocab" / "vocab.txt"), "--codes", str(work / "vocab" / "bpe.codes"),
                           "--output", str(release)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    options = ["--work", str(tmp_path / "w"), "--pretrained", str(release), "--gigaword", str(CORPUS / "gigaword"),
               "--cornell", str(CORPUS / "cornell"), "--finetune_steps", "20", "--evals", "1", "--pad_multiple", "64",
               "--train_option=--dataset_config.bucket_boundaries=[]", "--processes", "1"]
    cmd = [sys.executable, str(ROOT / "scripts" / "pipeline.py"), *options, "--average", "best:1",
           "--decode_option=--decode_config.min_decode_length=3", "--stop_after", "gigaword_mass_test"]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    new = tmp_path / "w"
    assert "[pretrain]" not in done.stdout and not (new / "runs" / "pretrain").exists()
    # the release's codes and vocabulary, not new ones: the datasets are those of the pre-trained model
    assert (new / "vocab" / "vocab.txt").read_bytes() == (release / "vocab.txt").read_bytes()
    assert (new / "vocab" / "bpe.codes").read_bytes() == (release / "bpe.codes").read_bytes()
    assert not (new / "data" / "news_crawl_len_64.mindrecord.manifest.json").exists()
    assert read_manifest(new / "data" / "gigaword_train.mindrecord")["vocab_sha256"] == \
        Dictionary.load_from_persisted_dict(release / "vocab.txt").digest()
    assert str(release / "weights.npz") in (new / "stages" / "gigaword_mass.json").read_text()
    assert len((new / "results" / "gigaword_mass.txt").read_text().splitlines()) == 80
    # the test decoding used the average (of the one best checkpoint) with the run's config, and the option
    report = json.loads((new / "results" / "gigaword_mass.txt.report.json").read_text())
    assert report["checkpoint"].endswith("average_best1.npz") and report["decode"]["min_len"] == 3
    assert (new / "stages" / "gigaword_mass_average.json").is_file()

    weights = release / "weights.npz"  # one byte changed, same size: refused before anything runs
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    done = subprocess.run(cmd[:3] + [str(tmp_path / "w2")] + cmd[4:], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "weights.npz: sha256 differs" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "w2").exists()
