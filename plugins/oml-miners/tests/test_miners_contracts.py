"""The contract checks of oml_core.testing on every miner this plugin registers."""

from __future__ import annotations

import pytest

from oml_core.testing import contract_cases


@pytest.mark.parametrize("case", contract_cases("oml_miners"), ids=str)
def test_contracts(case) -> None:  # noqa: ANN001
    case.run()


def test_every_miner_has_contract_cases() -> None:
    names = {case.spec.name for case in contract_cases("oml_miners")}
    assert names == {"all_triplets", "hard_triplets", "n_hard_triplets", "hard_cluster", "triplets_with_memory", "pairs"}
