"""contrib/plugin-template as a third party would use it: copied elsewhere, installed with pip (not editable) into a
fresh virtual environment, then seen by ``oml plugins --json``, used by a config, and passing its own tests there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from oml_core.data import generate_mock_dataset

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "contrib" / "plugin-template"

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OML_", "PYTHON", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A copy of the template installed into a fresh venv that also sees this project's venv (torch, oml-core)."""
    base = tmp_path_factory.mktemp("plugin_template")
    copy = base / "my-plugin"
    shutil.copytree(TEMPLATE, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "dist", "runs"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # A venv made with --system-site-packages would see the base interpreter's packages, not this project's venv;
    # a .pth line that runs site.addsitedir does, and also processes that venv's .pth files (editable installs).
    site_packages = env_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    project_site = sysconfig.get_paths()["purelib"]
    (site_packages / "_project_venv.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")
    # pip of this venv, run with the new interpreter; everything the template needs is already visible, so no index
    install = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-build-isolation",
         "-c", str(ROOT / "constraints.txt"), str(copy)],
        base,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    return {"base": base, "copy": copy, "python": python, "site_packages": site_packages}


def test_template_is_installed_from_the_copy_not_editable(installed):
    (dist_info,) = installed["site_packages"].glob("oml_plugin_template-0.1.0.dist-info")
    direct_url = json.loads((dist_info / "direct_url.json").read_text())
    assert direct_url["url"] == installed["copy"].as_uri() and not direct_url["dir_info"].get("editable", False)
    assert (installed["site_packages"] / "oml_plugin_template" / "plugin.py").is_file()


def test_oml_plugins_json_lists_the_template(installed):
    out = _run([str(installed["python"]), "-m", "oml_core.cli", "plugins", "--json"], installed["base"])
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    info = plugins["oml_plugin_template"]
    assert info["status"] == "loaded", info["error"]
    assert info["source"] == "entrypoint"
    assert (info["distribution"], info["version"]) == ("oml-plugin-template", "0.1.0")
    assert info["components"] == {"extractors": ["template_cnn"], "losses": ["template_centroid"]}
    assert "oml_epoch_end" in info["hooks"]


def test_a_config_uses_the_template_components(installed):
    # one interpreter (each start costs seconds): the CLI's `config check` on the template's example config, the
    # same with a misspelled field of its extractor, then both components built by name through a host
    config = installed["copy"] / "configs" / "train_template.yaml"
    script = f"""
import contextlib, io, json, torch
from oml_core.cli import main
from oml_core.data import download_mock_dataset
from oml_core.host import Host
download_mock_dataset("mock_dataset", n_labels=4, n_instances=2, im_size=16)  # config check needs the dataframe
checks = []
for extra in ([], ["--set", "extractor.feat_dimm=3"]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["config", "check", {str(config)!r}, *extra])
    checks.append([code, out.getvalue() + err.getvalue()])
host = Host()
model = host.registries.extractors.create("template_cnn", {{"feat_dim": 8, "width": 4}})
loss = host.registries.losses.create("template_centroid", {{"margin": 0.5}})
value = loss(model(torch.rand(4, 3, 32, 32)), torch.tensor([0, 0, 1, 1]))
built = [type(model).__module__, model.feat_dim, type(loss).__name__, loss.margin, value.ndim]
import oml_plugin_template
print(json.dumps({{"checks": checks, "built": built, "module": oml_plugin_template.__file__}}))
"""
    out = _run([str(installed["python"]), "-c", script], installed["base"])
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    (good_code, good_text), (bad_code, bad_text) = result["checks"]
    assert good_code == 0 and "OK (TrainConfig)" in good_text, good_text
    assert bad_code == 2 and "$.extractor" in bad_text and "feat_dimm" in bad_text, bad_text
    assert result["built"] == ["oml_plugin_template.extractor", 8, "CentroidLoss", 0.5, 0]
    # the installed copy in the new venv, not the repository's sources
    assert Path(result["module"]).is_relative_to(installed["site_packages"])


def test_oml_train_uses_the_template_components_and_runs_its_hook(installed):
    python, copy = str(installed["python"]), installed["copy"]
    generate_mock_dataset(copy / "mock_dataset", n_labels=9, n_instances=4, im_size=32)  # what `oml mock-dataset` writes
    config = ["configs/train_template.yaml", "--set", "epochs=1", "--set", "validation.before_training=false"]
    train = _run([python, "-m", "oml_core.cli", "train", *config], copy)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    (log,) = (copy / "runs").glob("*/template_epochs.jsonl")
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    summary = json.loads((log.parent / "metrics.json").read_text())
    assert summary["status"] == "completed"
    assert record["epoch"] == 1 and record["step"] > 0 and record["last_loss"] >= 0
    # the hook ran after the epoch's validation: it recorded the metrics the run reports
    assert record["metrics"]["OVERALL/cmc/1"] == pytest.approx(summary["after"]["OVERALL/cmc/1"])


def test_the_template_tests_pass_where_it_is_installed(installed):
    # -P: do not put the copy's folder on sys.path, so the tests import the installed package
    out = _run([str(installed["python"]), "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], installed["copy"])
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
