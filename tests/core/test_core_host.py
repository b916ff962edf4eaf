"""The plugin host: discovery, isolation of broken plugins, validation, environment switches."""

from __future__ import annotations

import attrs
import pytest

from oml_core import Host, hookimpl
from oml_core.errors import DuplicateComponentError, PluginLoadError, PluginValidationError, UnknownComponentError

ONLY_FAKES = {"OML_LOAD_PLUGINS": "fakeplug,brokenplug,typoplug,dupe_a,dupe_b"}

GOOD_PLUGIN = """
import attrs
from oml_core import hookimpl

@attrs.frozen(kw_only=True)
class ScaleConfig:
    factor: float = 2.0

class Scale:
    def __init__(self, factor):
        self.factor = factor

@hookimpl
def oml_register_transforms(registry):
    registry.add("fake_scale", config=ScaleConfig, factory=Scale, summary="multiplies by a factor")
"""


def test_entry_point_plugin_is_discovered_with_its_distribution(fake_distribution) -> None:
    fake_distribution("fake-plug", "fakeplug", GOOD_PLUGIN, version="1.2.3")
    host = Host(env=ONLY_FAKES)
    info = next(p for p in host.plugins if p.name == "fakeplug")
    assert (info.source, info.distribution, info.version, info.status) == ("entrypoint", "fake-plug", "1.2.3", "loaded")
    assert info.components == {"transforms": ["fake_scale"]}
    assert info.hooks == ["oml_register_transforms"]
    scale = host.registries.transforms.create("fake_scale", {"factor": 3.0})
    assert scale.factor == 3.0
    assert host.registries.transforms.get("fake_scale").plugin == "fakeplug"


def test_plugin_that_raises_on_import_is_recorded_and_host_goes_on(fake_distribution) -> None:
    fake_distribution("fake-plug", "fakeplug", GOOD_PLUGIN)
    fake_distribution("broken-plug", "brokenplug", "raise RuntimeError('boom at import')", version="0.9")
    with pytest.warns(RuntimeWarning, match="brokenplug"):
        host = Host(env=ONLY_FAKES)
    broken = next(p for p in host.plugins if p.name == "brokenplug")
    assert broken.status == "broken"
    assert "broken-plug 0.9" in broken.error and "boom at import" in broken.error
    error = host.load_errors["brokenplug"]
    assert isinstance(error, PluginLoadError)
    assert (error.plugin, error.distribution, error.version) == ("brokenplug", "broken-plug", "0.9")
    assert "fake_scale" in host.registries.transforms  # the good plugin still works


def test_plugin_whose_registration_hook_raises_is_dropped_alone(fake_distribution) -> None:
    fake_distribution(
        "broken-plug",
        "brokenplug",
        GOOD_PLUGIN.replace("fake_scale", "broken_scale")
        + "\n@hookimpl\ndef oml_register_losses(registry):\n    raise ValueError('bad loss registration')\n",
    )
    with pytest.warns(RuntimeWarning, match="bad loss registration"):
        host = Host(env=ONLY_FAKES)
    assert "broken_scale" not in host.registries.transforms  # what it registered before failing is withdrawn
    assert next(p for p in host.plugins if p.name == "brokenplug").status == "broken"


def test_misspelled_hook_fails_at_start_up_with_pluggys_message(fake_distribution) -> None:
    fake_distribution(
        "typo-plug", "typoplug", "from oml_core import hookimpl\n@hookimpl\ndef oml_register_lossess(registry):\n    pass\n"
    )
    with pytest.raises(PluginValidationError, match=r"typoplug.*unknown hook 'oml_register_lossess'"):
        Host(env=ONLY_FAKES)


def test_unmarked_misspelled_hook_is_caught_too() -> None:
    class Plugin:
        def oml_register_extractor(self, registry):  # singular: a typo
            pass

    with pytest.raises(PluginValidationError, match="oml_register_extractor"):
        Host(entry_points=False, plugins=[Plugin()], env={})


def test_non_strict_host_lists_misspelled_plugin_as_broken(fake_distribution) -> None:
    fake_distribution(
        "typo-plug", "typoplug", "from oml_core import hookimpl\n@hookimpl\ndef oml_register_lossess(registry):\n    pass\n"
    )
    with pytest.warns(RuntimeWarning):
        host = Host(env=ONLY_FAKES, strict=False)
    info = next(p for p in host.plugins if p.name == "typoplug")
    assert info.status == "broken" and "oml_register_lossess" in info.error


def test_duplicate_component_names_both_plugins(fake_distribution) -> None:
    fake_distribution("dupe-a", "dupe_a", GOOD_PLUGIN)
    fake_distribution("dupe-b", "dupe_b", GOOD_PLUGIN)
    with pytest.raises(DuplicateComponentError) as excinfo:
        Host(env=ONLY_FAKES)
    assert excinfo.value.plugins == ("dupe_a", "dupe_b")
    assert "'dupe_a'" in str(excinfo.value) and "'dupe_b'" in str(excinfo.value)


def test_duplicate_in_non_strict_host_drops_the_second_plugin(fake_distribution) -> None:
    fake_distribution("dupe-a", "dupe_a", GOOD_PLUGIN)
    fake_distribution("dupe-b", "dupe_b", GOOD_PLUGIN)
    with pytest.warns(RuntimeWarning, match="dupe_a"):
        host = Host(env=ONLY_FAKES, strict=False)
    assert host.registries.transforms.get("fake_scale").plugin == "dupe_a"
    assert next(p for p in host.plugins if p.name == "dupe_b").status == "broken"


def test_disable_and_allow_list_environment_variables(fake_distribution) -> None:
    fake_distribution("fake-plug", "fakeplug", GOOD_PLUGIN)
    host = Host(env={**ONLY_FAKES, "OML_DISABLE_PLUGINS": "fake-plug"})  # by distribution name
    assert next(p for p in host.plugins if p.name == "fakeplug").status == "disabled"
    assert "fake_scale" not in host.registries.transforms
    host = Host(env={"OML_LOAD_PLUGINS": "somethingelse"})
    assert all(p.status == "disabled" for p in host.plugins if p.source == "entrypoint")
    assert any(p.source == "builtin" and p.status == "loaded" for p in host.plugins)


def test_trace_environment_variable_prints_hook_calls(fake_distribution, capsys) -> None:
    fake_distribution("fake-plug", "fakeplug", GOOD_PLUGIN)
    host = Host(env={**ONLY_FAKES, "OML_TRACE_PLUGINS": "1"})
    host.hook.oml_register_transforms(registry=host.registries.transforms.__class__("transforms"))
    assert "oml_register_transforms" in capsys.readouterr().err


def test_exception_in_a_hook_carries_a_note_naming_the_plugin() -> None:
    class Exploding:
        @hookimpl
        def oml_register_cli_commands(self, commands):
            raise KeyError("nope")

    host = Host(entry_points=False, plugins=[Exploding()], env={})
    with pytest.raises(KeyError) as excinfo:
        host.hook.oml_register_cli_commands(commands=None)
    assert any("Exploding" in note and "oml_register_cli_commands" in note for note in excinfo.value.__notes__)


def test_nothing_is_discovered_at_import_time() -> None:
    import importlib

    import oml_core

    importlib.reload(oml_core)
    assert not hasattr(oml_core, "host_instance")
    host_a, host_b = Host(entry_points=False, env={}), Host(entry_points=False, env={})
    assert host_a.registries is not host_b.registries


def test_local_plugin_registered_after_start_up_and_broken_local_plugin_raises() -> None:
    @attrs.frozen
    class Cfg:
        pass

    class Local:
        @hookimpl
        def oml_register_losses(self, registry):
            registry.add("local_loss", config=Cfg, factory=lambda: "loss", summary="a local loss")

    host = Host(entry_points=False, env={})
    name = host.register(Local(), name="my_local")
    assert host.registries.losses.create("local_loss") == "loss"
    assert host.registries.losses.get("local_loss").plugin == name == "my_local"

    class Bad:
        def oml_register_nothing(self):
            pass

    with pytest.raises(PluginValidationError, match="oml_register_nothing"):
        host.register(Bad(), name="bad_local")


def test_unknown_component_lists_available_and_says_what_to_install() -> None:
    host = Host(entry_points=False, env={})
    with pytest.raises(UnknownComponentError) as excinfo:
        host.registries.extractors.create("vit")
    message = str(excinfo.value)
    assert "unknown extractors component 'vit'" in message
    assert "pip install oml-vit" in message


def test_unknown_component_of_a_broken_plugin_says_why(fake_distribution) -> None:
    fake_distribution("oml-vit", "brokenplug", "raise ImportError('libfoo.so missing')")
    with pytest.warns(RuntimeWarning):
        host = Host(env={"OML_LOAD_PLUGINS": "brokenplug"})
    with pytest.raises(UnknownComponentError, match="installed but failed to load.*libfoo.so missing"):
        host.registries.extractors.get("vit")


def test_did_you_mean_for_a_close_name(fake_distribution) -> None:
    fake_distribution("fake-plug", "fakeplug", GOOD_PLUGIN)
    host = Host(env=ONLY_FAKES)
    with pytest.raises(UnknownComponentError, match="Did you mean 'fake_scale'"):
        host.registries.transforms.get("fake_scal")
