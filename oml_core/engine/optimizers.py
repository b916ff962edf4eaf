"""Built-in optimizers (the ``optimizers`` registry kind): torch's Adam, AdamW and SGD with the parameter groups
metric learning needs: a learning rate for the backbone apart from the head's (an ArcFace classifier, a projection
learned by the criterion), and no weight decay on norms and biases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from torch import nn

from oml_core.config import field_error


def _positive_finite(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not (value == value and value not in (float("inf"), float("-inf"))) or value <= 0:
        raise field_error(attribute, f"{attribute.name} must be a positive finite number, got {value}")


def _non_negative_finite(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (value == value and value != float("inf")) or value < 0:
        raise field_error(attribute, f"{attribute.name} must be a finite number >= 0, got {value}")


def parameter_groups(
    modules: Mapping[str, Any],
    *,
    lr: float,
    weight_decay: float = 0.0,
    backbone_lr: float | None = None,
    no_decay_on_norms_and_biases: bool = True,
) -> list[dict[str, Any]]:
    """Parameter groups of ``modules`` (role -> module; the role ``backbone`` gets ``backbone_lr``): trainable
    parameters only, and, unless told otherwise, 1-D parameters (biases, norm scales) without weight decay.

    Example:
        >>> groups = parameter_groups({"backbone": nn.Linear(2, 2), "head": nn.Linear(2, 1)}, lr=0.1, backbone_lr=0.01,
        ...                           weight_decay=1e-4)
        >>> [(g["name"], g["lr"], g["weight_decay"]) for g in groups]  # doctest: +NORMALIZE_WHITESPACE
        [('backbone', 0.01, 0.0001), ('backbone/no_decay', 0.01, 0.0),
         ('head', 0.1, 0.0001), ('head/no_decay', 0.1, 0.0)]
    """
    groups: list[dict[str, Any]] = []
    for role, module in modules.items():
        if not isinstance(module, nn.Module):
            continue
        group_lr = backbone_lr if role == "backbone" and backbone_lr is not None else lr
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for param in module.parameters():
            if param.requires_grad:
                (no_decay if no_decay_on_norms_and_biases and param.ndim <= 1 else decay).append(param)
        for params, decay_value, suffix in ((decay, weight_decay, ""), (no_decay, 0.0, "/no_decay")):
            if params:
                groups.append({"params": params, "lr": group_lr, "weight_decay": decay_value, "name": role + suffix})
    return groups


def _as_modules(modules: Any) -> Mapping[str, Any]:
    if isinstance(modules, Mapping):
        return modules
    if isinstance(modules, nn.Module):
        return {"backbone": modules}
    return {"params": _ParamHolder(list(modules))}


class _ParamHolder(nn.Module):
    """Wraps a plain list of parameters, for callers that have no module to hand over."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__()
        self.params = nn.ParameterList(params)


@attrs.frozen(kw_only=True)
class AdamConfig:
    """Adam. ``lr`` is the head's (and everything's unless ``backbone_lr`` is set for the extractor)."""

    lr: float = attrs.field(default=1e-4, validator=_positive_finite)
    backbone_lr: float | None = attrs.field(default=None, validator=_positive_finite)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative_finite)
    no_decay_on_norms_and_biases: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@attrs.frozen(kw_only=True)
class AdamWConfig(AdamConfig):
    """AdamW (decoupled weight decay)."""

    weight_decay: float = attrs.field(default=0.01, validator=_non_negative_finite)


@attrs.frozen(kw_only=True)
class SGDConfig:
    """SGD with momentum (``nesterov`` optional)."""

    lr: float = attrs.field(default=1e-4, validator=_positive_finite)
    backbone_lr: float | None = attrs.field(default=None, validator=_positive_finite)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative_finite)
    no_decay_on_norms_and_biases: bool = True
    momentum: float = 0.9
    nesterov: bool = False


def _adam_like(optimizer_class: Any) -> Any:
    def build(
        *,
        modules: Any,
        lr: float,
        backbone_lr: float | None,
        weight_decay: float,
        no_decay_on_norms_and_biases: bool,
        betas: tuple[float, float],
        eps: float,
    ) -> torch.optim.Optimizer:
        groups = parameter_groups(
            _as_modules(modules), lr=lr, weight_decay=weight_decay, backbone_lr=backbone_lr,
            no_decay_on_norms_and_biases=no_decay_on_norms_and_biases,
        )  # fmt: skip
        return optimizer_class(groups, lr=lr, betas=betas, eps=eps)  # type: ignore[no-any-return]

    build.__name__ = f"build_{optimizer_class.__name__.lower()}"
    return build


build_adam = _adam_like(torch.optim.Adam)
build_adamw = _adam_like(torch.optim.AdamW)


def build_sgd(
    *,
    modules: Any,
    lr: float,
    backbone_lr: float | None,
    weight_decay: float,
    no_decay_on_norms_and_biases: bool,
    momentum: float,
    nesterov: bool,
) -> torch.optim.Optimizer:
    """SGD over the parameter groups of ``modules``.

    Example:
        >>> build_sgd(modules=nn.Linear(2, 2), lr=0.1, backbone_lr=None, weight_decay=0.0,
        ...           no_decay_on_norms_and_biases=True, momentum=0.9, nesterov=False).defaults["lr"]
        0.1
    """
    groups = parameter_groups(
        _as_modules(modules), lr=lr, weight_decay=weight_decay, backbone_lr=backbone_lr,
        no_decay_on_norms_and_biases=no_decay_on_norms_and_biases,
    )  # fmt: skip
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
