"""The checks OML runs on every registered component (config round trip, shapes, gradients, state_dict...)."""

import pytest
from oml_core.testing import contract_cases

CASES = contract_cases("oml_plugin_template")


def test_the_plugin_is_installed_and_registers_its_components(oml_host_factory):
    host = oml_host_factory(entry_points=True)
    info = next(p for p in host.plugins if p.name == "oml_plugin_template")
    assert info.status == "loaded", info.error
    assert info.components == {"extractors": ["template_cnn"], "losses": ["template_centroid"]}
    assert "oml_epoch_end" in info.hooks
    # one case per (component, check): both components are covered
    assert {case.spec.name for case in CASES} == {"template_cnn", "template_centroid"}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_contracts(case):
    case.run()
