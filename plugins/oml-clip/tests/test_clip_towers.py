"""CLIP and Unicom towers: published key layouts loaded strictly, OpenAI's TorchScript archive read without running it,
outputs equal to OML 4.0's on the same random state dicts (OML 4.0 runs in the peers venv, when it is installed)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
from oml_clip import ViTCLIPExtractor, ViTUnicomExtractor, build_clip_visual, build_unicom_visual
from oml_clip.pretrained import WEIGHTS

from oml_core import Host
from oml_core.errors import OMLError
from oml_core.testing import contract_cases
from oml_core.torchscript_tensors import read_torchscript_tensors
from oml_core.weights import WeightsError

PEERS_PYTHON = Path("/work/peers-venv/bin/python")


@pytest.mark.parametrize("case", contract_cases("oml_clip"), ids=str)
def test_contracts(case) -> None:  # type: ignore[no-untyped-def]
    case.run()


def test_clip_keys_are_openais() -> None:
    keys = set(build_clip_visual("vitb32_224").state_dict())
    # names from openai/CLIP model.py VisionTransformer (nn.MultiheadAttention inside each residual block)
    expected = {"conv1.weight", "class_embedding", "positional_embedding", "ln_pre.weight", "ln_pre.bias", "ln_post.weight",
                "ln_post.bias", "proj"}
    for i in range(12):
        block = f"transformer.resblocks.{i}."
        expected |= {block + k for k in ("attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                                         "attn.out_proj.bias", "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight",
                                         "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight", "ln_2.bias")}
    assert keys == expected
    sd = build_clip_visual("vitl14_224").state_dict()
    assert sd["positional_embedding"].shape == (257, 1024) and sd["proj"].shape == (1024, 768)


def test_unicom_keys_are_deepglints() -> None:
    sd = build_unicom_visual("vitb32_unicom").state_dict()
    assert sd["pos_embed"].shape == (1, 49, 768) and sd["feature.0.weight"].shape == (768, 49 * 768)
    assert sd["feature.2.weight"].shape == (512, 768) and "feature.3.running_var" in sd
    assert "blocks.11.attn.qkv.weight" in sd and "blocks.11.attn.qkv.bias" not in sd


class _ToyClip(torch.nn.Module):
    """A whole CLIP-like model (a visual tower plus text parts) to be saved as a TorchScript archive."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = build_clip_visual("vitb32_224")
        self.token_embedding = torch.nn.Embedding(10, 8)
        self.logit_scale = torch.nn.Parameter(torch.ones([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


def _openai_like_archive(path: Path) -> dict[str, torch.Tensor]:
    model = _ToyClip().half()
    torch.jit.trace(model, torch.rand(1, 3, 224, 224).half(), check_trace=False).save(str(path))
    return {k: v.float() for k, v in model.visual.state_dict().items()}


@pytest.mark.slow
def test_openai_torchscript_archive_is_read_without_running_it(tmp_path: Path) -> None:
    archive = tmp_path / "ViT-B-32.pt"
    visual = _openai_like_archive(archive)
    tensors = read_torchscript_tensors(archive)
    assert {k[len("visual.") :] for k in tensors if k.startswith("visual.")} == set(visual)
    assert "logit_scale" in tensors and tensors["visual.proj"].dtype == torch.float32
    extractor = ViTCLIPExtractor(str(archive), arch="vitb32_224", normalise_features=False)
    for key, value in visual.items():
        assert torch.equal(extractor.visual.state_dict()[key], value), key


def test_an_archive_asking_for_other_python_globals_is_refused(tmp_path: Path) -> None:
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(Evil()))
        archive.writestr("evil/constants.pkl", pickle.dumps(()))
    with pytest.raises(WeightsError, match="builtins.print"):
        read_torchscript_tensors(path)


def test_a_whole_ruclip_state_dict_loads_its_visual_part(tmp_path: Path) -> None:
    visual = build_clip_visual("vitb16_224").state_dict()
    whole = {f"visual.{k}": v for k, v in visual.items()} | {"transformer.resblocks.0.attn.in_proj_weight": torch.zeros(3, 3)}
    torch.save(whole, tmp_path / "pytorch_model.bin")
    extractor = ViTCLIPExtractor(str(tmp_path / "pytorch_model.bin"), arch="vitb16_224")
    assert torch.equal(extractor.visual.proj, visual["proj"])


def test_clip_refuses_another_input_size() -> None:
    with pytest.raises(OMLError, match="224x224"):
        ViTCLIPExtractor(None, arch="vitb32_224")(torch.rand(1, 3, 200, 200))


def test_every_oml4_clip_and_unicom_name_is_registered_with_its_checksum() -> None:
    host = Host(env={})
    names = {"openai_vitb16_224", "openai_vitb32_224", "openai_vitl14_224", "sber_vitb16_224", "sber_vitb32_224",
             "sber_vitl14_224", "vitb32_unicom", "vitb16_unicom", "vitl14_unicom", "vitl14_336px_unicom"}
    assert names == {e.name for e in WEIGHTS} and names <= set(host.weights.names())
    for name in names:
        entry = host.weights.get(name)
        assert entry.verified and entry.embedding_size and entry.licence and entry.transforms
        if name.startswith("openai"):  # OpenAI names each file's directory with its sha256
            assert entry.url.split("/")[-2] == entry.sha256 and entry.format == "clip_torchscript"


@pytest.mark.slow
def test_a_served_unicom_file_loads_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import attrs
    import oml_clip.pretrained

    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    state = {k: v.half() if v.is_floating_point() else v for k, v in build_unicom_visual("vitb32_unicom").state_dict().items()}
    source = tmp_path / "FP16-ViT-B-32.pt"
    torch.save(state, source)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    table = tuple(attrs.evolve(e, urls=(source.as_uri(),), sha256=sha) if e.name == "vitb32_unicom" else e for e in WEIGHTS)
    monkeypatch.setattr(oml_clip.pretrained, "WEIGHTS", table)
    extractor = ViTUnicomExtractor.from_pretrained("vitb32_unicom")
    assert extractor.normalise_features and torch.equal(extractor.model.pos_embed, state["pos_embed"].float())


REFERENCE = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, "/work/shared/peers"); import tv_shim; tv_shim.ensure_torchvision()
    from oml.models.vit_clip.extractor import ViTCLIPExtractor
    from oml.models.vit_unicom.extractor import ViTUnicomExtractor
    torch.manual_seed(0)
    out = sys.argv[1]
    clip = ViTCLIPExtractor(None, "vitb32_224", normalise_features=False).eval()
    unicom = ViTUnicomExtractor(None, "vitb32_unicom", normalise_features=False, use_gradient_ckpt=False).eval()
    for m in unicom.model.feature:  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(); m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(3, 3, 224, 224)
    with torch.no_grad():
        torch.save({"clip_sd": clip.visual.state_dict(), "unicom_sd": unicom.model.state_dict(), "x": x,
                    "clip_y": clip(x), "unicom_y": unicom(x)}, out)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not PEERS_PYTHON.exists(), reason="OML 4.0 (the peers venv) is not installed here")
def test_outputs_equal_oml4_on_the_same_random_state_dicts(tmp_path: Path) -> None:
    script, out = tmp_path / "reference.py", tmp_path / "reference.pt"
    script.write_text(REFERENCE)
    result = subprocess.run([str(PEERS_PYTHON), str(script), str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    ref = torch.load(out, weights_only=True)
    clip = ViTCLIPExtractor(None, arch="vitb32_224", normalise_features=False).eval()
    clip.visual.load_state_dict(ref["clip_sd"], strict=True)
    unicom = ViTUnicomExtractor(None, arch="vitb32_unicom", normalise_features=False).eval()
    unicom.model.load_state_dict(ref["unicom_sd"], strict=True)
    with torch.no_grad():
        clip_diff = (clip(ref["x"]) - ref["clip_y"]).abs().max().item()
        unicom_diff = (unicom(ref["x"]) - ref["unicom_y"]).abs().max().item()
    print(json.dumps({"clip_max_abs_diff": clip_diff, "unicom_max_abs_diff": unicom_diff}))
    assert clip_diff < 1e-4 and unicom_diff < 1e-3
