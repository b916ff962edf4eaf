"""The main job (placeholder until the engine lands): list the installed plugins."""

import sys

from oml_core.cli import main

sys.exit(main(["plugins"]))
