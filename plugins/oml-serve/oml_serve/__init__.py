"""`oml serve`: an HTTP search service over an OML embedding store."""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) imports neither torch nor the tracker library
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Limits": "oml_serve.limits",
        "SearchService": "oml_serve.service",
        "ServiceError": "oml_serve.service",
    },
)

__all__ = ["Limits", "SearchService", "ServiceError"]
