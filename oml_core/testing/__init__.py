"""Test helpers for plugin authors (ours and third parties'): an isolated host, tiny deterministic data and the
contract checks that every registered component must pass.

Opt in from a ``conftest.py``::

    pytest_plugins = ["oml_core.testing"]

then, in a test module::

    from oml_core.testing import contract_cases

    @pytest.mark.parametrize("case", contract_cases("my_plugin"), ids=str)
    def test_contracts(case):
        case.run()
"""

from __future__ import annotations

from oml_core.testing.contracts import ContractCase, contract_cases, register_contract
from oml_core.testing.data import tiny_embeddings, tiny_labels
from oml_core.testing.fixtures import oml_host, oml_host_factory, tiny_batch

__all__ = [
    "ContractCase",
    "contract_cases",
    "oml_host",
    "oml_host_factory",
    "register_contract",
    "tiny_batch",
    "tiny_embeddings",
    "tiny_labels",
]
