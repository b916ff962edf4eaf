"""Every hook OML calls, grouped by phase. Implement one with ``@oml_core.hookimpl`` on a function or method of
the same name; an implementation may accept only some of the arguments (pluggy passes those it asks for).

Registration hooks are called once per plugin when the host starts, with the registry of one kind;
``registry.add(name, config=<attrs class>, factory=<callable>, summary=...)`` adds a component.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oml_core._markers import hookspec

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.engine import Engine, FitStatus, StepOutput
    from oml_core.registry import Registry
    from oml_core.zoo import WeightsRegistry


# ================================================================================== registration (at start-up)
@hookspec
def oml_register_extractors(registry: Registry[Any]) -> None:
    """Add extractors (``nn.Module`` images → embeddings, see ``protocols.Extractor``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_pairwise_models(registry: Registry[Any]) -> None:
    """Add pairwise models (re-rankers scoring pairs, see ``protocols.PairwiseModel``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_losses(registry: Registry[Any]) -> None:
    """Add losses (``protocols.Criterion``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_miners(registry: Registry[Any]) -> None:
    """Add miners (``protocols.TripletMiner`` / ``PairMiner``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_samplers(registry: Registry[Any]) -> None:
    """Add batch-sampler factories (``protocols.BatchSamplerFactory``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_transforms(registry: Registry[Any]) -> None:
    """Add image transforms (callables PIL image or tensor → tensor) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_postprocessors(registry: Registry[Any]) -> None:
    """Add retrieval postprocessors (``protocols.Postprocessor``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_stores(registry: Registry[Any]) -> None:
    """Add embedding stores (``protocols.EmbeddingStore``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_loggers(registry: Registry[Any]) -> None:
    """Add experiment loggers (``protocols.Logger``) to ``registry``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_callbacks(registry: Registry[Any]) -> None:
    """Add callbacks: engine plugins (objects with lifecycle hook implementations) whose options a config sets,
    ``callbacks: [{type: <name>, ...}]``; ``factory(**options)`` returns the plugin. A callback with the
    ``builtin_name`` of a built-in (``checkpointing``, ``early_stopping``...) replaces it.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_modalities(registry: Registry[Any]) -> None:
    """Add modalities (``protocols.Modality``: datasets of texts, audio... over OML's dataframe) to ``registry``;
    ``data.modality`` of ``oml train`` and ``--modality`` of ``oml index`` choose one (images when unset).

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_optimizers(registry: Registry[Any]) -> None:
    """Add optimizers: ``factory(modules={"backbone": extractor, "head": criterion}, **options)`` returns a
    ``torch.optim.Optimizer`` (``oml_core.engine.optimizers.parameter_groups`` builds the usual groups).

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_schedulers(registry: Registry[Any]) -> None:
    """Add LR schedules: ``factory(optimizer=..., epochs=..., steps_per_epoch=..., **options)`` returns an
    ``oml_core.engine.schedulers.LRSchedule`` (a torch scheduler and whether it steps per ``step`` or ``epoch``).

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_weights(zoo: WeightsRegistry) -> None:
    """Add named pretrained weights to ``zoo`` (``zoo.add(name, urls=..., sha256=... or md5=..., arch=...,
    extractor=..., init_args=..., transforms=..., <model card fields>)``; a plugin keeps its table in a module of
    its own and registers it with ``oml_core.zoo.register_table``).

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_pipelines(registry: Registry[Any]) -> None:
    """Add config-driven pipelines: ``registry.add(name, config=<attrs class>, factory=<runner>, summary=...)``,
    where ``name`` is the value of a config file's ``pipeline:`` key (``oml config check`` validates files with it).

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    """Add subcommands to the ``oml`` command line with ``commands.add(name, help=..., configure=..., run=...)``.

    Called once per plugin when the CLI starts. Return value ignored.
    """


# ================================================================================== training lifecycle (Engine.fit)
# Order for one run: oml_fit_start, then per epoch: oml_epoch_start, per batch: oml_train_step + oml_train_batch_end,
# then oml_epoch_end (the built-in validation plugin validates here: oml_validation_start, oml_embeddings_ready,
# oml_validation_end, oml_log_metrics); finally oml_fit_end(status), always. ``engine.state`` is the typed State.


@hookspec
def oml_fit_start(engine: Engine) -> None:
    """Called once when ``Engine.fit`` starts, after a checkpoint (if any) was restored and before the first epoch.

    The built-ins seed, open loggers and (when asked) validate the untrained model here.
    """


@hookspec
def oml_epoch_start(engine: Engine) -> None:
    """Called at the start of every epoch (also of a resumed, partly done epoch); ``engine.state.epoch`` is 0-based."""


@hookspec(firstresult=True)
def oml_train_step(engine: Engine, batch: dict[str, Any]) -> StepOutput | None:
    """Run one training step on ``batch`` and return its ``StepOutput``: called once per batch.

    firstresult: the first implementation that returns something wins. The built-in step (forward, loss,
    backward, gradient accumulation and clipping, optimizer and per-step scheduler) runs last (``trylast``), so a
    plugin replaces it by returning a StepOutput (for AMP variants, SAM, custom multi-loss steps...).
    """


@hookspec
def oml_train_batch_end(engine: Engine, batch: dict[str, Any], output: StepOutput) -> None:
    """Called after every training step with its output (loss, criterion logs); progress bars and loggers use it."""


@hookspec
def oml_epoch_end(engine: Engine) -> None:
    """Called after the last batch of an epoch (``engine.state.epoch`` is already the number of finished epochs).

    Not called for an epoch cut short by a stop request. Validation, checkpoints, LR schedulers and early stopping
    are built-in implementations of this hook.
    """


@hookspec(firstresult=True)
def oml_validate(engine: Engine) -> dict[str, Any] | None:
    """Called by ``Engine.validate``: compute the validation metrics of ``engine.model`` and return them nested,
    ``{category: {metric: {k: value}}}``.

    firstresult: the first implementation that returns a dict wins. The built-in one (``trylast``) embeds
    ``engine.val_dataset`` and computes embedding metrics; a plugin replaces it by returning metrics of its own (a
    re-ranker's validation, for example). ``Engine.validate`` calls it between ``oml_validation_start`` and
    ``oml_validation_end``, and records, logs and monitors what it returns.
    """


@hookspec
def oml_validation_start(engine: Engine) -> None:
    """Called before the validation embeddings are computed (by ``Engine.validate``, whoever triggers it)."""


@hookspec
def oml_embeddings_ready(engine: Engine, embeddings: Any, dataset: Any) -> None:
    """Called once per validation with the embeddings (``(N, D)`` tensor, rows in dataset order) before metrics."""


@hookspec
def oml_validation_end(engine: Engine, metrics: dict[str, Any]) -> None:
    """Called after every validation with the nested metrics ``{category: {metric: {k: value}}}``.

    Early stopping and best-checkpoint selection implement this hook.
    """


@hookspec
def oml_log_metrics(engine: Engine, metrics: dict[str, float], step: int) -> None:
    """Called whenever there are scalar metrics to record (flat names such as ``OVERALL/cmc/1``); loggers
    implement it. Only called on rank 0."""


@hookspec
def oml_save_checkpoint(engine: Engine, checkpoint: dict[str, Any]) -> None:
    """Called when a checkpoint is written: add your plugin's state to ``checkpoint`` (plain tensors and Python
    values only, since checkpoints are read back with ``weights_only=True``). Only called on rank 0."""


@hookspec
def oml_load_checkpoint(engine: Engine, checkpoint: dict[str, Any]) -> None:
    """Called when a run resumes from ``checkpoint``: restore what your ``oml_save_checkpoint`` added."""


@hookspec
def oml_exception(engine: Engine, exception: BaseException) -> None:
    """Called when the run raises (including KeyboardInterrupt); notification only, the exception is re-raised."""


@hookspec
def oml_fit_end(engine: Engine, status: FitStatus) -> None:
    """Called once when ``Engine.fit`` ends, always: status is ``completed``, ``stopped`` (a stop request),
    ``interrupted`` (Ctrl-C) or ``failed`` (an exception, after ``oml_exception``)."""


#: The hooks an engine calls on its own plugin manager (the rest are called by the host and the CLI).
LIFECYCLE_HOOKS: frozenset[str] = frozenset(
    name for name in dir() if name.startswith("oml_") and not name.startswith(("oml_register_", "oml_hookspecs"))
)
