"""OML core: protocols, the plugin host, registries, typed configs, data, retrieval metrics and the engine.

Example:
    >>> from oml_core import Host
    >>> host = Host(entry_points=False)
    >>> sorted(host.registries.losses.names())
    []
"""

from oml_core._markers import hookimpl, hookspec
from oml_core.errors import ConfigError, OMLError, PluginLoadError
from oml_core.host import Host
from oml_core.registry import Choice, NoConfig, Registry

__version__ = "0.1.0"

__all__ = [
    "Choice",
    "ConfigError",
    "Host",
    "NoConfig",
    "OMLError",
    "PluginLoadError",
    "Registry",
    "__version__",
    "hookimpl",
    "hookspec",
]
