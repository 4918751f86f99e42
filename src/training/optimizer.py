"""Optimizers from ``learn_rate_config``, with the learning rate held in a Parameter that the training
loop sets every step (so the schedule stays a pure Python function)."""

import mindspore as ms
from mindspore import Parameter, Tensor, nn

NO_DECAY_MARKERS = ("bias", "norm", "embedding")


def decays(name: str) -> bool:
    """Weight decay applies to matrices only: not to biases, LayerNorm parameters or the embedding."""
    lowered = name.lower()
    return not any(marker in lowered for marker in NO_DECAY_MARKERS)


def build_optimizer(params, lr_config):
    """adam, momentum or lamb over ``params``; its ``learning_rate`` is a Parameter set every step."""
    params = list(params)
    lr = Parameter(Tensor(lr_config.lr, ms.float32), name="learning_rate", requires_grad=False)
    wd = lr_config.weight_decay
    groups = params
    if wd > 0:
        groups = [{"params": [p for p in params if decays(p.name)], "weight_decay": wd},
                  {"params": [p for p in params if not decays(p.name)], "weight_decay": 0.0}]
    if lr_config.optimizer == "adam":
        return nn.Adam(groups, learning_rate=lr, beta1=lr_config.adam_beta1, beta2=lr_config.adam_beta2,
                       eps=lr_config.adam_epsilon)
    if lr_config.optimizer == "momentum":
        return nn.Momentum(groups, learning_rate=lr, momentum=lr_config.momentum)
    if lr_config.optimizer == "lamb":
        return nn.Lamb(groups, learning_rate=lr, beta1=lr_config.adam_beta1, beta2=lr_config.adam_beta2,
                       eps=lr_config.adam_epsilon)
    raise ValueError(f"unknown optimizer {lr_config.optimizer!r}")
