"""pluggy markers for the ``oml`` project (kept apart so that every module can import them without cycles)."""

import pluggy

PROJECT_NAME = "oml"
ENTRY_POINT_GROUP = "oml"
HOOK_PREFIX = "oml_"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
