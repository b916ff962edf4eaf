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
    from oml_core.registry import Registry
    from oml_core.weights import WeightsZoo


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
def oml_register_weights(zoo: WeightsZoo) -> None:
    """Add named pretrained weights (URL, full sha256, architecture, transforms) to ``zoo``.

    Called once per plugin when the host starts. Return value ignored.
    """


@hookspec
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    """Add subcommands to the ``oml`` command line with ``commands.add(name, help=..., configure=..., run=...)``.

    Called once per plugin when the CLI starts. Return value ignored.
    """
