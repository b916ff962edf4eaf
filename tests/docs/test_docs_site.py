"""The documentation site: generated pages are current, `mkdocs build --strict` passes, every page is in the nav,
the examples of the guide pages run, and the dataframe page documents every problem the validator reports."""

from __future__ import annotations

import copy
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Pages whose examples this test runs (the other pages have tests of their own, e.g. tests/engine/test_engine_docs.py).
GUIDE_PAGES = (
    "quickstart.md",
    "dataframe.md",
    "stores.md",
    "ddp.md",
    "migration.md",
    "robustness.md",
    "zoo.md",
    "reference/components.md",
)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
SKIP = re.compile(r"<!-- docs-test: skip \((.+?)\) -->\s*$")


def _gen_docs() -> Any:
    spec = importlib.util.spec_from_file_location("oml_gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(page: str, language: str) -> list[tuple[int, str]]:
    """``(line, code)`` of the fenced blocks of ``language`` in ``page``, except those marked ``docs-test: skip``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) != language:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if SKIP.search(before):
            continue
        found.append((text.count("\n", 0, match.start()) + 1, match.group(2)))
    return found


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return [p for item in nav for p in _nav_pages(item)]


# ================================================================================================ the site
def test_generated_pages_are_current(tmp_path: Path) -> None:
    gen = _gen_docs()
    pages = gen.generate()
    assert set(pages) == set(gen.GENERATED)
    for relative, text in pages.items():  # the generator's own output, written where the test can inspect it
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text, encoding="utf-8")
    stale = gen.stale_pages(pages, DOCS)
    assert not stale, "the generated pages are stale: run python scripts/gen_docs.py\n" + "\n".join(stale)
    assert not gen.stale_pages(pages, tmp_path)
    # every registered component of the documented plugins has its section, with an example
    host, documented = gen.make_host()
    components = pages["reference/components.md"]
    for registry in host.registries:
        for spec in registry.specs():
            if spec.plugin in documented:
                section = components.split(f"{{#{registry.kind}-{spec.name}}}", 1)
                assert len(section) == 2, f"{registry.kind} {spec.name!r} is missing from the components page"
                assert re.search(r"```(yaml|python)\n", section[1].split("\n### ", 1)[0]), f"{spec.name}: no example"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    assert importlib.util.find_spec("mkdocs") is not None, "mkdocs is a dev requirement: pip install -c constraints.txt mkdocs"
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True and config["theme"]["name"] == "mkdocs"
    in_nav = _nav_pages(config["nav"])
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(in_nav) == on_disk, f"pages missing from the nav of mkdocs.yml: {sorted(set(on_disk) - set(in_nav))}"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    for page in in_nav:
        html = tmp_path / "site" / page.removesuffix(".md").removesuffix("index") / "index.html"
        assert html.is_file(), f"{page} was not built ({html})"
    assert 'id="losses-triplet_with_miner"' in (tmp_path / "site" / "reference" / "components" / "index.html").read_text()


# ================================================================================================ examples
@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with a small dataset at ``data/`` (``data/df.csv`` + images), as the pages assume."""
    from oml_core.data import download_mock_dataset

    folder = tmp_path_factory.mktemp("docs_examples")
    download_mock_dataset(folder / "data", n_labels=6, n_instances=4, im_size=32)
    return folder


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_python_examples_run(page: str, example_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(page, "python")
    monkeypatch.chdir(example_dir)
    for line, code in blocks:
        namespace: dict[str, Any] = {"__name__": f"docs_example_{line}"}
        try:
            exec(compile(code, f"docs/{page}:{line}", "exec"), namespace)  # noqa: S102 - our own documentation
        except Exception as exc:
            raise AssertionError(f"the example at docs/{page}, line {line} fails: {type(exc).__name__}: {exc}") from exc


def _deep_merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and "type" not in value:
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_yaml_examples_are_valid_configs(page: str, oml_host: Any, tmp_path: Path) -> None:
    """Each YAML block is a whole pipeline config, or a fragment that makes a valid one when merged into the
    repository's main config (so `criterion: {type: ..., margin: ...}` is checked against the loss's options)."""
    import attrs

    from oml_core.config import load_yaml  # OML's YAML reading (1e-3 is a float), as `oml train` does
    from oml_core.pipelines.configs import TrainConfig

    registry = getattr(oml_host, "pipelines", None)

    def config_class(pipeline: str) -> type:
        return registry.get(pipeline).config if registry is not None and pipeline in registry else TrainConfig

    # the repository's configs, one per pipeline, to merge fragments into
    bases = [load_yaml(path) for path in sorted((ROOT / "configs").glob("*.yaml"))]
    examples = _blocks(page, "yaml")
    for line, text in examples:
        (tmp_path / "example.yaml").write_text(text, encoding="utf-8")
        data = load_yaml(tmp_path / "example.yaml")
        assert isinstance(data, dict), f"docs/{page}:{line}: a YAML example should be a mapping"
        if "data" in data and "extractor" in data:
            config = data
        else:  # a fragment: merge it into the first repository config whose pipeline has all its keys
            fitting = [b for b in bases if set(data) <= {f.name for f in attrs.fields(config_class(b.get("pipeline", "train")))}]
            assert fitting, f"docs/{page}:{line}: no pipeline has the keys {sorted(data)}"
            config = _deep_merge(fitting[0], data)
        oml_host.registries.structure(config, config_class(config.get("pipeline", "train")), source=f"docs/{page}:{line}")


def test_quickstart_shows_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    for command in ("bash scripts/dev.sh demo", "bash scripts/dev.sh test"):
        assert command in readme and command in quickstart, command
    for command in ("oml train", "oml validate", "oml predict", "oml config check"):
        assert command in quickstart, command


# ================================================================================================ dataframe problems
def _validator_codes() -> set[str]:
    """Every problem code in oml_core/data/dataframe.py (f-string codes expanded for the two flag columns)."""
    source = (ROOT / "oml_core" / "data" / "dataframe.py").read_text(encoding="utf-8")
    calls = r'(?:self\.(?:error|warning)\(|_single_problem_error\(|Problem\("(?:error|warning)",)\s*(f?)"([a-z_{}]+)"'
    codes: set[str] = set()
    for is_f, code in re.findall(calls, source):
        if is_f and "{" in code:
            codes |= {re.sub(r"\{\w+\}", flag, code) for flag in ("is_query", "is_gallery")}
        else:
            codes.add(code)
    return codes


def test_every_dataframe_problem_is_documented() -> None:
    codes = _validator_codes()
    assert {"missing_column", "unknown_split", "is_query_not_boolean", "query_without_match", "missing_file"} <= codes
    page = (DOCS / "dataframe.md").read_text(encoding="utf-8").split("## Problems and how to fix them", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", page, re.M))
    names = {name for pair in documented for name in pair if name}
    assert not codes - names, f"docs/dataframe.md does not explain these validator codes: {sorted(codes - names)}"
    assert not names - codes, f"docs/dataframe.md explains codes the validator no longer has: {sorted(names - codes)}"
