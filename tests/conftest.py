"""Shared test set-up: MindSpore on CPU in PyNative mode, the CPU kernels built in a temporary cache, and a
tiny model config."""

import os
import tempfile

import mindspore as ms
import pytest

from config.config import MassConfig

ms.set_context(mode=ms.PYNATIVE_MODE)
ms.set_device("CPU")
# the decoding kernels (src/transformer/cpu_kernels.py) are compiled for this run, not into the user's cache
_KERNEL_CACHE = tempfile.TemporaryDirectory(prefix="mass-kernels-")
os.environ["MASS_KERNEL_CACHE"] = _KERNEL_CACHE.name


@pytest.fixture
def tiny_model_config():
    """vocab 50, d_model 16, 2+2 layers, 2 heads, FFN 32, dropout off, 64 positions."""
    return MassConfig().override([
        "--model_config.vocab_size=50", "--model_config.hidden_size=16",
        "--model_config.num_hidden_layers=2", "--model_config.num_decoder_layers=2",
        "--model_config.num_attention_heads=2", "--model_config.intermediate_size=32",
        "--model_config.hidden_dropout_prob=0.0", "--model_config.attention_dropout_prob=0.0",
        "--model_config.compute_type=float32",
    ]).model_config
