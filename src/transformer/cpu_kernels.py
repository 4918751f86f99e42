"""Hand-written CPU kernels for decoding, built with the machine's C++ compiler on first use.

MindSpore's CPU runtime spends 15-25 us around every kernel, and its batched matmul is slow on the tiny
products of a beam step (4 query rows per example and head). ``step_kernels`` fuses each attention of a beam
step into one MindSpore ``Custom`` op of type ``aot`` (``kernels/beam_attention.cc``): the self-attention over
the pointer cache (window write, scores, ancestor masking, softmax, values: about twelve MindSpore kernels per
layer) and the cross-attention (about seven); ``topk_kernel`` the step's end (``kernels/step_topk.cc``: the
log-softmax, the constraints' bans and the top-k, about twelve kernels).

The shared library is compiled once per source, compiler and CPU (``-march=native``) into the kernel cache
(``$MASS_KERNEL_CACHE``, default ``~/.cache/mass_mindspore/kernels``), written under a temporary name and
renamed when complete. Without a C++ compiler, on GPU/Ascend, in fp16, or with ``MASS_CPU_KERNELS=0``,
``step_kernels`` returns None and the step uses MindSpore ops (the same results up to float rounding).
"""

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path

import mindspore as ms
from mindspore import ops

from src.utils.fileio import atomic_path, remove_stale_temps

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "kernels"
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC")
_OPS: dict = {}  # (source name, function, key) -> Custom op, or None when it cannot be built here


def enabled() -> bool:
    """Whether the hand-written kernels may be used: CPU device, ``MASS_CPU_KERNELS`` not ``0``."""
    return os.environ.get("MASS_CPU_KERNELS", "1") != "0" and ms.get_context("device_target") == "CPU"


def cache_dir() -> Path:
    return Path(os.environ.get("MASS_KERNEL_CACHE") or Path.home() / ".cache" / "mass_mindspore" / "kernels")


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model and flags (the machine kind can change)."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    return "\n".join(wanted) or platform.processor() or platform.machine()


def _loads(library: Path) -> bool:
    try:
        ctypes.CDLL(str(library))
    except OSError:
        return False
    return True


def build(name: str, compiler: str | None = None) -> Path:
    """The shared library of ``kernels/<name>.cc``, compiled into the cache unless already there (and
    loadable: a corrupt one is compiled again).
    Raises ``OSError`` (no compiler, unwritable cache) or ``subprocess.CalledProcessError`` (compile error)."""
    compiler = compiler or os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise OSError("no C++ compiler (g++ or c++) on PATH")
    source = SOURCE_DIR / f"{name}.cc"
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\0".join([source.read_text(), " ".join(FLAGS), version, _cpu_signature()]).encode())
    library = cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"
    if library.is_file():
        if _loads(library):
            return library
        logger.warning("%s: not a loadable library (corrupt?); compiling it again", library)
        library.unlink(missing_ok=True)
    library.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(library.parent)
    with atomic_path(library) as tmp:
        subprocess.run([compiler, *FLAGS, "-o", str(tmp), str(source)], capture_output=True, text=True, check=True)
    logger.info("compiled %s into %s", source.name, library)
    return library


def _custom_op(name: str, function: str, out_shape, out_dtype=lambda *dtypes: dtypes[0], key=None):
    """The ``Custom`` op of ``function`` in ``kernels/<name>.cc`` (outputs: ``out_shape`` and ``out_dtype`` of the
    input shapes and dtypes, by default the first input's dtype; ``key``: what else the op depends on), or None
    when it cannot be built (logged once)."""
    if (name, function, key) not in _OPS:
        try:
            library = build(name)
            _OPS[name, function, key] = ops.Custom(f"{library}:{function}", out_shape=out_shape, out_dtype=out_dtype,
                                                   func_type="aot")
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or error
            logger.warning("CPU kernel %s not built (%s); decoding uses MindSpore ops", name, str(detail).strip()[:500])
            _OPS[name, function, key] = None
    return _OPS[name, function, key]


def step_kernels(compute_dtype=ms.float32):
    """The fused attentions of a beam step, ``(self_attention, cross_attention)``, or None where they cannot
    be used.

    ``self_attention(qkv, at, scale, old_k, old_v, recent_k, recent_v, ancestors_old, ancestors_recent)`` (or
    without the three old inputs): ``SelfAttention.beam_step``'s attention, from the projected rows (rows, 1,
    3 d) to (rows, 1, d), writing the rows' keys and values into the recent window in place;
    ``cross_attention(q, k, v, bias, scale)``: ``CrossAttention.beam_step``'s, from the projected queries
    (rows, 1, d) to (rows, 1, d). Heads lie side by side in rows, as the projections make them."""
    if not enabled() or compute_dtype != ms.float32:
        return None
    kernels = (_custom_op("beam_attention", "BeamAttention", lambda qkv, *_: [*qkv[:-1], qkv[-1] // 3]),
               _custom_op("beam_attention", "CrossAttention", lambda *shapes: shapes[0]))
    return None if None in kernels else kernels


def topk_kernel(k: int, compute_dtype=ms.float32):
    """The end of a beam step in one kernel (``kernels/step_topk.cc``), or None where it cannot be used:
    ``topk(logits, index, on) -> (values, ids)``, each row's ``k`` best log-probabilities (float32) and token ids
    (int32) of ``log_softmax(logits)`` with ``-inf`` at the ``banned_scatter`` ids ``index`` where ``on``: what
    ``device_step.topk_step_function``'s ops compute (log-softmax, scatter, block maxima, two top-k's, gathers)."""
    if not enabled() or compute_dtype != ms.float32:
        return None
    return _custom_op("step_topk", "LogSoftmaxTopK", lambda logits, *_: ([logits[0], k], [logits[0], k]),
                      lambda *_: (ms.float32, ms.int32), key=k)
