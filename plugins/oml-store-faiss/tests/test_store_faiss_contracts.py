import pytest

from oml_core.testing import contract_cases


@pytest.mark.parametrize("case", contract_cases("oml_store_faiss"), ids=str)
def test_store_faiss_contracts(case):
    case.run()
