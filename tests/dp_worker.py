"""Run by tests/test_data_parallel.py under msrun: two ranks, each training on its half of a batch."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(out):
    from mindspore import nn

    from src.utils.device import setup_device
    from tests.test_data_parallel import STEPS, build, half_batch

    rank, size = setup_device("CPU", distributed=True)
    net, opt, make_step = build()
    step = make_step(nn.DistributedGradReducer(opt.parameters, mean=True, degree=size))
    for _ in range(STEPS):
        step(*half_batch(rank, size), lr=1e-2)
    np.savez(Path(out) / f"rank{rank}.npz", **{p.name: p.asnumpy() for p in net.trainable_params()})


if __name__ == "__main__":
    main(sys.argv[1])
