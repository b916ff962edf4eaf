"""`oml serve`: an HTTP search service over an OML embedding store."""

from oml_serve.service import Limits, SearchService, ServiceError

__all__ = ["Limits", "SearchService", "ServiceError"]
