# The root conftest: opts every test directory (core, plugins, contrib) into OML's testing helpers.
pytest_plugins = ["oml_core.testing"]
