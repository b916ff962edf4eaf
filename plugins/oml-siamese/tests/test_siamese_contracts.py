"""The oml_siamese plugin's components pass the contract checks of their kinds (pairwise models, postprocessors)."""

from __future__ import annotations

import pytest

from oml_core.testing import contract_cases


@pytest.mark.parametrize("case", contract_cases("oml_siamese"), ids=str)
def test_contracts(case):
    case.run()


def test_every_component_has_contract_checks():
    kinds = {case.spec.kind for case in contract_cases("oml_siamese")}
    assert kinds == {"pairwise_models", "postprocessors"}
