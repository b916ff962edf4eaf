"""Item 3 of issue 13: built-ins with their own arguments, and callbacks, optimizers and schedulers as registry kinds
that a config names and a plugin extends."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest
import torch
from torch import nn

from oml_core import Host, hookimpl
from oml_core.engine.checkpointing import Checkpointing, EarlyStopping
from oml_core.engine.schedulers import LRSchedule
from oml_core.registry import CallbackChoice, OptimizerChoice, SchedulerChoice

sys.path.insert(0, str(Path(__file__).parent))
from tiny_components import FlatValidation, make_engine  # noqa: E402


@pytest.fixture(scope="module")
def host() -> Host:
    return Host(entry_points=False, env={})


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3, 4))


def test_optimizers_have_a_backbone_lr_and_no_decay_on_norms_and_biases(host: Host) -> None:
    backbone = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    head = Head()
    optimizer = host.registries.optimizers.create(
        OptimizerChoice("adamw", {"lr": 1e-3, "backbone_lr": 1e-5, "weight_decay": 0.05}),
        modules={"backbone": backbone, "head": head},
    )
    assert isinstance(optimizer, torch.optim.AdamW)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert {n: (g["lr"], g["weight_decay"], len(g["params"])) for n, g in groups.items()} == {
        "backbone": (1e-5, 0.05, 1),  # the Linear's weight
        "backbone/no_decay": (1e-5, 0.0, 3),  # its bias and the LayerNorm's weight and bias
        "head": (1e-3, 0.05, 1),
    }
    sgd = host.registries.optimizers.create("sgd", {"lr": 0.1, "nesterov": True}, modules={"backbone": backbone})
    assert sgd.defaults["nesterov"] and sgd.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("value", [float("nan"), -1.0, 0.0])
def test_a_learning_rate_that_is_not_a_positive_number_is_a_config_error(host: Host, value: float) -> None:
    from oml_core import ConfigError

    # NaN is refused as a number already (every float field), the others by the optimizers' own check
    with pytest.raises(ConfigError, match=r"lr must be a positive finite number|lr: expected a number, got .nan"):
        host.registries.optimizers.create("adam", {"lr": value}, modules={"backbone": nn.Linear(2, 2)})


def test_warmup_cosine_per_step_and_one_cycle_follow_their_curves(host: Host) -> None:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    schedule = host.registries.schedulers.create_in_context(
        SchedulerChoice("cosine", {"interval": "step", "warmup": 2, "warmup_start_factor": 0.0}),
        optimizer=optimizer, epochs=2, steps_per_epoch=5,
    )  # fmt: skip
    assert isinstance(schedule, LRSchedule) and schedule.interval == "step"
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.scheduler.step()
    assert lrs[:3] == [0.0, 0.5, 1.0] and lrs[3] < 1.0 and lrs[-1] < 0.05
    one_cycle = host.registries.schedulers.create_in_context(
        "one_cycle", {"max_lr_factor": 5.0}, optimizer=torch.optim.SGD([param], lr=0.1), epochs=1, steps_per_epoch=10
    )
    assert one_cycle.interval == "step" and one_cycle.scheduler.total_steps == 10


def test_a_plateau_schedule_steps_after_each_validation_with_the_monitored_value(tmp_path: Path) -> None:
    engine = make_engine(None, plugins=[FlatValidation()], epochs=4)
    engine.val_dataset = engine.train_dataset
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(engine.optimizer, mode="max", factor=0.5, patience=0)
    engine.schedule, engine.scheduler = LRSchedule(plateau, monitor="OVERALL/cmc/1"), plateau
    engine.fit()
    # 4 validations of a flat metric: the first sets the best, each later one halves the LR
    assert engine.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**3)


def test_callbacks_are_chosen_and_configured_in_yaml_and_replace_the_built_in(tmp_path: Path) -> None:
    @attrs.frozen
    class CountBatchesConfig:
        every: int = 1

    class CountBatches:
        def __init__(self, every: int) -> None:
            self.every, self.seen = every, 0

        @hookimpl
        def oml_train_batch_end(self, engine):
            if engine.state.step % self.every == 0:
                self.seen += 1

    class Plugin:
        @hookimpl
        def oml_register_callbacks(self, registry):
            registry.add("count_batches", config=CountBatchesConfig, factory=CountBatches)

    from oml_core.pipelines.train import build_callbacks

    host = Host(entry_points=False, plugins=[Plugin()], env={})
    choices = host.registries.structure(
        [{"type": "early_stopping", "patience": 1, "min_delta": 0.01}, {"type": "count_batches", "every": 2},
         {"type": "checkpointing", "every_n_steps": 3, "keep_last": 2}],
        tuple[CallbackChoice, ...],
    )  # fmt: skip
    callbacks = build_callbacks(host, choices)
    early, counter, checkpointing = callbacks
    assert isinstance(early, EarlyStopping) and (early.patience, early.min_delta) == (1, 0.01)
    assert isinstance(checkpointing, Checkpointing) and checkpointing.every_n_steps == 3
    engine = make_engine(tmp_path, plugins=[FlatValidation(), *callbacks], epochs=5, host=host)
    engine.val_dataset = engine.train_dataset
    assert sum(isinstance(p, Checkpointing) for p in engine.pm.get_plugins()) == 1  # the built-in was replaced
    state = engine.fit()
    assert state.epoch == 2 and "early stopping" in state.stop_reason  # patience 1: the second validation stops
    assert counter.seen == 4  # 8 steps, every 2nd counted
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt")) == ["step-00000006.pt", "step-00000008.pt"]


def test_a_bare_optimizer_name_is_accepted(host: Host) -> None:
    """``optimizer: adam`` gave "AttributeError ... 'keys'" when the optimizer was a fixed config section."""
    @attrs.frozen
    class Section:
        optimizer: OptimizerChoice

    choice = host.registries.structure({"optimizer": "adam"}, Section).optimizer
    assert choice.type == "adam"
    assert isinstance(host.registries.optimizers.create(choice, modules={"backbone": nn.Linear(2, 2)}), torch.optim.Adam)
