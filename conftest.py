# The root conftest: opts every test directory (core, plugins, contrib) into OML's testing helpers.
import os

pytest_plugins = ["oml_core.testing"]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two xdist workers on two cores: more torch threads than cores makes every op spin and crawl
    import torch

    torch.set_num_threads(1)
