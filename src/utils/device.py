"""MindSpore context set-up: device, graph mode, and data-parallel initialisation under msrun."""

import logging
import os

import mindspore as ms

logger = logging.getLogger(__name__)

DEVICE_TARGETS = ("CPU", "GPU", "Ascend")


def launched_by_msrun() -> bool:
    """msrun (and mpirun-style launchers) export the worker count to every process."""
    return int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1")) or 1) > 1


def setup_device(device_target="CPU", device_id=None, mode="graph", distributed=None):
    """Set the device and mode; start data parallel when ``distributed`` (default: launched by msrun).

    Returns ``(rank, group_size)``.
    """
    if device_target not in DEVICE_TARGETS:
        raise ValueError(f"device_target must be one of {DEVICE_TARGETS}, got {device_target!r}")
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    if device_id is None:
        device_id = int(os.environ.get("DEVICE_ID", "0") or 0)
    if device_target == "CPU":
        ms.set_device("CPU")
    else:
        ms.set_device(device_target, device_id)
    distributed = launched_by_msrun() if distributed is None else distributed
    if not distributed:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init

    init()
    rank, size = get_rank(), get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=size)
    logger.info("data parallel: rank %d of %d on %s", rank, size, device_target)
    return rank, size
