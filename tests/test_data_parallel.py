"""Data parallel on CPU through msrun (mccl): both ranks end with the same parameters, equal to a
single process trained on the concatenated batch."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # end to end: trains models in subprocesses

ROOT = Path(__file__).resolve().parents[1]
STEPS = 2
ROWS = 8


def tiny_config():
    from config.config import MassConfig

    return MassConfig().override([
        "--model_config.vocab_size=50", "--model_config.hidden_size=16", "--model_config.num_hidden_layers=2",
        "--model_config.num_decoder_layers=2", "--model_config.num_attention_heads=2",
        "--model_config.intermediate_size=32", "--model_config.hidden_dropout_prob=0.0",
        "--model_config.attention_dropout_prob=0.0", "--model_config.compute_type=float32"]).model_config


def build():
    """The same model and optimizer in every process (initialisation comes from a seeded numpy RNG)."""
    from config.config import LearnRateConfig
    from src.training.optimizer import build_optimizer
    from src.training.train_step import TrainStep
    from src.transformer.transformer import MassTransformer

    net = MassTransformer(tiny_config())
    # momentum: updates linear in the gradients, so float noise stays noise-sized (Adam: lr * sign(g))
    opt = build_optimizer(net.trainable_params(), LearnRateConfig(lr=1e-2, min_lr=0.0, optimizer="momentum"))

    def make_step(reducer=None):
        return TrainStep(net, opt, label_smoothing=0.1, clip_norm=1.0, grad_reducer=reducer)

    return net, opt, make_step


def full_batch():
    rng = np.random.default_rng(0)
    tgt = np.concatenate([rng.integers(5, 50, (ROWS, 9)), np.full((ROWS, 1), 2)], 1).astype(np.int32)
    dec_in = np.concatenate([np.ones((ROWS, 1), np.int32), tgt[:, :-1]], 1)
    pos = np.tile(np.arange(10, dtype=np.int32), (ROWS, 1))
    return tgt.copy(), dec_in, pos, tgt


def half_batch(rank, size):
    rows = ROWS // size
    return tuple(a[rank * rows:(rank + 1) * rows] for a in full_batch())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MSRUN = shutil.which("msrun", path=str(Path(sys.executable).parent)) or shutil.which("msrun")


@pytest.mark.skipif(MSRUN is None, reason="msrun (MindSpore's launcher) is not installed")
@pytest.mark.parametrize("nodes", [1, 2])
def test_two_cpu_ranks_match_one_process_on_the_whole_batch(tmp_path, nodes):
    """nodes=1: one msrun with two local workers; nodes=2: two msrun launches, as on two machines
    (--node_rank 0 and 1, one local worker each, the master at 127.0.0.1; see tests/msrun_node.py)."""
    # msrun starts its workers with the "python" found on PATH: make it this interpreter
    env = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    port, script = free_port(), [str(ROOT / "tests/dp_worker.py"), str(tmp_path)]
    if nodes == 1:
        launches = [[MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={port}",
                     f"--log_dir={tmp_path / 'logs'}", "--join=True", *script]]
    else:
        # node 1 through tests/msrun_node.py: msrun itself, told that this node is not the master (on
        # one machine, plain msrun would start a second scheduler on the master's port)
        launchers = [[MSRUN], [sys.executable, str(ROOT / "tests/msrun_node.py")]]
        launches = [[*launchers[node], "--worker_num=2", "--local_worker_num=1", f"--node_rank={node}",
                     "--master_addr=127.0.0.1", f"--master_port={port}", f"--log_dir={tmp_path / 'logs'}",
                     "--join=True", *script] for node in range(nodes)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for cmd in launches]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((tmp_path / "logs").glob("*.log")))
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:] + logs
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]

    net, _, make_step = build()
    step = make_step()
    for _ in range(STEPS):
        step(*full_batch(), lr=1e-2)
    single = {p.name: p.asnumpy() for p in net.trainable_params()}
    assert set(ranks[0].files) == set(single)
    for name, value in single.items():
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
        np.testing.assert_allclose(ranks[0][name], value, atol=1e-6, err_msg=name)
