"""Export: the standalone module equals the library block, imports only torch, loads mmcv
checkpoints, plugs into a torchvision ResNet, and the CLI picks the right trial."""

from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial
from torch import nn

from gcsearch.backbones import module_key
from gcsearch.blocks import build_block
from gcsearch.checkpoint import checkpoint_name, load_checkpoint, save_checkpoint
from gcsearch.cli import main
from gcsearch.errors import UserError
from gcsearch.export import class_name_for, export_candidate, load_block, render_source
from gcsearch.result import TrialResult
from gcsearch.spec import PRESETS, BlockSpec, Candidate, block_specs

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parents[1]
ALL_SPECS = [s.id for s in block_specs()]
EXPORTABLE = ALL_SPECS + [n for n, p in PRESETS.items() if p.exportable]


def randomize(module: nn.Module, seed: int) -> None:
    """Random values in every parameter and float buffer (zero-init would hide bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        for b in module.buffers():
            if b.dtype.is_floating_point:
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)


def cases(n: int, seed: int = 0) -> list[tuple[str, int, int]]:
    """``n`` random (candidate, channels, min_hidden) draws, fixed by ``seed``."""
    rng = random.Random(seed)
    return [
        (rng.choice(EXPORTABLE), rng.choice([32, 48, 64]), rng.choice([1, 4, 8])) for _ in range(n)
    ]


def _kwargs(cid: str, min_hidden: int) -> dict[str, Any]:
    preset = PRESETS.get(cid)
    return {} if preset is not None and not preset.min_hidden else {"min_hidden": min_hidden}


@pytest.mark.parametrize(("cid", "channels", "min_hidden"), cases(24))
def test_exported_module_equals_library_block(
    cid: str, channels: int, min_hidden: int, tmp_path: Path
) -> None:
    lib = build_block(cid, channels, min_hidden=min_hidden).eval()
    randomize(lib, seed=channels + min_hidden)
    path = export_candidate(cid, tmp_path / "blk.py", channels=channels, size=8)["module"]
    exported = load_block(path, channels, **_kwargs(cid, min_hidden)).eval()
    exported.load_state_dict(lib.state_dict(), strict=True)
    x = torch.randn(2, channels, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), lib(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("cid", EXPORTABLE)
def test_every_exportable_block_has_the_library_state_dict(cid: str) -> None:
    lib = build_block(cid, 64).eval()
    randomize(lib, seed=1)
    exported = load_block(cid, 64).eval()
    exported.load_state_dict(lib.state_dict(), strict=True)
    assert type(exported).__name__ == class_name_for(Candidate.parse(cid))
    x = torch.randn(1, 64, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), lib(x), atol=1e-6, rtol=0)


ALLOWED_IMPORTS = {"torch", "__future__", "typing", "collections", "types"}  # torch + stdlib


@pytest.mark.parametrize("cid", ["att-r16ln-both", "avgmax-1x1-mul", "nl-concat", "se", "cbam"])
def test_exported_file_imports_only_torch(cid: str, tmp_path: Path) -> None:
    path = export_candidate(cid, tmp_path / "blk.py")["module"]
    tree = ast.parse(path.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in {
            "__import__",
            "exec",
            "eval",
        }:
            pytest.fail(f"dynamic import or exec in {path}")
    assert modules <= ALLOWED_IMPORTS and "torch" in modules
    exported = class_name_for(Candidate.parse(cid))
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes[-1].name == exported  # the library's classes, then the exported one
    assert f'__all__ = ["{exported}"]' in path.read_text()
    init = next(
        n for n in classes[-1].body if isinstance(n, ast.FunctionDef) and n.name == "__init__"
    )
    assert [a.arg for a in init.args.args[:2]] == ["self", "channels"]
    assert Candidate.parse(cid).id in ast.get_docstring(tree)  # type: ignore[operator]


def test_metadata_text_never_reaches_the_code(tmp_path: Path) -> None:
    evil = '"""\nimport os\nos.system("echo pwned")\n"""'
    meta = {
        "task": evil,
        "backbone": "resnet20\nimport os",
        "input_shape": [3, "32; import os"],
        "accuracy": {"top1_mean": "1); import os; (", "n": 3},
        "cost": {"params": "import os", "macs": 10},
    }
    source = render_source("gc", meta=meta)
    assert "import os" not in source and "pwned" not in source
    tree = ast.parse(source)
    assert all(not isinstance(n, ast.Import) or n.names[0].name == "torch" for n in tree.body)


def test_class_name_must_be_an_identifier() -> None:
    with pytest.raises(UserError, match="identifier"):
        render_source("gc", class_name="Bad Name(nn.Module): pass\nclass X")
    assert "class MyGC(ContextBlock)" in render_source("gc", class_name="MyGC")


@pytest.mark.parametrize("preset", [n for n, p in PRESETS.items() if p.exportable])
def test_presets_keep_their_init(preset: str) -> None:
    """The exported class initializes exactly as the library preset (same seed, same tensors)."""
    torch.manual_seed(0)
    lib = build_block(preset, 64)
    torch.manual_seed(0)
    exported = load_block(preset, 64)
    for (name, a), b in zip(lib.state_dict().items(), exported.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    x = torch.randn(2, 64, 5, 5)
    gc, nl = load_block("gc", 64).eval(), load_block("nl-embedded", 64).eval()
    torch.testing.assert_close(gc(x), x)  # zero last conv + add fusion: identity at init
    torch.testing.assert_close(nl(x), x)  # BN scale zero: identity at init


def test_every_file_a_block_module_needs_is_generated_not_restated() -> None:
    """A new pooling needs no export edit: the file is the library's own module source."""
    import inspect

    from gcsearch.blocks import pooling

    source = render_source("avg-r16-mul")
    assert inspect.getsource(pooling.AttentionPool) in source
    assert "_POOL_FORWARD" not in inspect.getsource(__import__("gcsearch.export").export)


# ----------------------------------------------------------------------------- mmcv layout


def mmcv_state_dict(
    channels: int, planes: int, pooling: str, fusions: tuple[str, ...], gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """A state dict in mmcv's published ``ContextBlock`` layout (pooling_type, fusion_types)."""

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    sd: dict[str, torch.Tensor] = {}
    if pooling == "att":
        sd["conv_mask.weight"], sd["conv_mask.bias"] = rnd(1, channels, 1, 1), rnd(1)
    for fusion in fusions:  # Sequential(conv, LayerNorm([planes, 1, 1]), ReLU, conv)
        pre = f"{fusion}_conv"
        sd[f"{pre}.0.weight"], sd[f"{pre}.0.bias"] = rnd(planes, channels, 1, 1), rnd(planes)
        sd[f"{pre}.1.weight"], sd[f"{pre}.1.bias"] = rnd(planes, 1, 1), rnd(planes, 1, 1)
        sd[f"{pre}.3.weight"], sd[f"{pre}.3.bias"] = rnd(channels, planes, 1, 1), rnd(channels)
    return sd


def mmcv_forward(
    sd: dict[str, torch.Tensor], x: torch.Tensor, pooling: str, fusions: tuple[str, ...]
) -> torch.Tensor:
    """mmcv's ContextBlock forward, written from its published algorithm."""
    b, c, h, w = x.shape
    if pooling == "att":
        mask = torch.nn.functional.conv2d(x, sd["conv_mask.weight"], sd["conv_mask.bias"])
        mask = mask.view(b, 1, h * w).softmax(dim=2).unsqueeze(-1)  # (B, 1, HW, 1)
        context = torch.matmul(x.view(b, c, h * w).unsqueeze(1), mask).view(b, c, 1, 1)
    else:
        context = torch.nn.functional.adaptive_avg_pool2d(x, 1)

    def transform(pre: str) -> torch.Tensor:
        t = torch.nn.functional.conv2d(context, sd[f"{pre}.0.weight"], sd[f"{pre}.0.bias"])
        t = torch.nn.functional.layer_norm(
            t, t.shape[1:], sd[f"{pre}.1.weight"], sd[f"{pre}.1.bias"]
        )
        return torch.nn.functional.conv2d(t.relu(), sd[f"{pre}.3.weight"], sd[f"{pre}.3.bias"])

    out = x
    if "channel_mul" in fusions:
        out = out * torch.sigmoid(transform("channel_mul_conv"))
    if "channel_add" in fusions:
        out = out + transform("channel_add_conv")
    return out


MMCV_FUSIONS = {
    "add": ("channel_add",),
    "mul": ("channel_mul",),
    "both": ("channel_add", "channel_mul"),
}


@pytest.mark.parametrize("pooling", ["att", "avg"])
@pytest.mark.parametrize("fusion", ["add", "mul", "both"])
@pytest.mark.parametrize(("channels", "ratio"), [(256, 16), (64, 16), (128, 4)])
def test_mmcv_checkpoint_loads_strict(pooling: str, fusion: str, channels: int, ratio: int) -> None:
    gen = torch.Generator().manual_seed(channels + ratio)
    planes = int(channels * (1.0 / ratio))  # mmcv: planes = int(in_channels * ratio)
    sd = mmcv_state_dict(channels, planes, pooling, MMCV_FUSIONS[fusion], gen)
    spec = BlockSpec(pooling, "bottleneck", ratio, "ln", fusion)
    block = load_block(spec, channels, min_hidden=1).eval()
    block.load_state_dict(sd, strict=True)
    x = torch.randn(2, channels, 7, 6, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(
            block(x), mmcv_forward(sd, x, pooling, MMCV_FUSIONS[fusion]), atol=1e-5, rtol=1e-5
        )


# ----------------------------------------------------------------------------- torchvision


def docs_recipe() -> dict[str, Any]:
    """Execute the ``insert_blocks`` recipe exactly as docs/report-and-export.md shows it."""
    text = (ROOT / "docs" / "report-and-export.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = next(b for b in blocks if "def insert_blocks" in b)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/report-and-export.md", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    "cid",
    [
        "att-r16ln-add@after_1x1:c3c4c5",
        "avg-r4-mul@after_add:c4",
        "gc@after_add:c2c5:last",
        "avgmax-1x1-both@after_1x1:c5:last",
        "nl-embedded@after_block:c4:penultimate",
        "cbam@after_block:c3c4",
    ],
)
def test_docs_recipe_matches_build_model_on_torchvision_resnet18(cid: str, tmp_path: Path) -> None:
    from torchvision.models import resnet18

    from gcsearch.backbones import build_model

    cand = Candidate.parse(cid)
    ours = build_model(cand, "resnet18", num_classes=10).eval()
    for name, module in ours.named_modules():  # the blocks only: a random backbone overflows
        if name.endswith("context_block"):
            randomize(module, seed=len(name))
    path = export_candidate(cand, tmp_path / "blk.py", channels=64, size=8)["module"]
    place = cand.placement
    theirs = docs_recipe()["insert_blocks"](
        resnet18(num_classes=10),
        load_block(path),
        stages=place.stages,
        position=place.position,
        density=place.density,
    ).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), atol=1e-5, rtol=1e-5)
        plain = resnet18(num_classes=10).eval()
        plain.load_state_dict(ours.state_dict(), strict=False)
        assert not torch.allclose(plain(x), ours(x))  # the blocks do change the output


# ----------------------------------------------------------------------------- CLI


def add_trial(
    study: optuna.Study, cid: str, top1s: list[float], macs: int, params: int, **extra: Any
) -> None:
    cand = Candidate.parse(cid)
    results = [TrialResult(cand.id, s, top1=t, epochs=2).to_dict() for s, t in enumerate(top1s)]
    attrs = {
        "candidate": cand.to_dict(),
        "candidate_id": cand.id,
        "results": results,
        "status": "complete",
        "reason": "",
        "cost": {
            "params": params,
            "macs": macs,
            "block_params": params - 1000,
            "block_macs": macs - 100_000,
        },
        "fidelity": {"epochs": 2, "max_epochs": 2, "rung": 0},
        **extra,
    }
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            user_attrs=attrs,
            values=[float(np.mean(top1s)), macs, params],
        )
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A study whose front is: none (cheapest), avg-r16-mul@c4, att-r16ln-add@c4 (best)."""
    from gcsearch.backbones import build_model

    run = tmp_path / "run"
    run.mkdir()
    study = optuna.create_study(
        study_name="s",
        storage=f"sqlite:///{run / 'study.db'}",
        directions=["maximize", "minimize", "minimize"],
    )
    study.set_user_attr("objectives", ["top1:max", "macs:min", "params:min"])
    study.set_user_attr("backbone", "resnet8")
    study.set_user_attr("task", "synthetic")
    study.set_user_attr("input_shape", [3, 32, 32])
    study.set_user_attr("min_hidden", 2)  # at C = 32, r16: hidden 2 (the default floor gives 8)
    add_trial(study, "none", [70.0, 71.0], 100_000, 1000)
    best = Candidate.parse("att-r16ln-add@after_1x1:c4")
    model = build_model(best, "resnet8", min_hidden=2)
    randomize(model.c4[0].context_block, seed=5)
    # where the search stores a complete candidate's best seed (gcsearch.checkpoint format)
    save_checkpoint(
        run / "weights" / checkpoint_name(module_key(best, "resnet8", 2)), model, best,
        backbone="resnet8", min_hidden=2, num_classes=10, input_shape=(3, 32, 32),
    )  # fmt: skip
    add_trial(study, best.id, [80.0, 81.0], 120_000, 1500)
    add_trial(study, "avg-r16-mul@after_1x1:c4", [75.0, 76.0], 110_000, 1200)
    add_trial(study, "avg-1x1-add@after_1x1:c4", [74.0, 74.0], 130_000, 1900)  # dominated
    return run


def test_export_rank_1_writes_module_json_and_weights(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcsearch.backbones import build_model

    out = tmp_path / "exp" / "my_block.py"
    assert main(["export", str(run_dir), "--rank", "1", "-o", str(out)]) == 0
    source = out.read_text()
    assert "att-r16ln-add@after_1x1:c4" in source and "80.50" in source
    record = json.loads(out.with_suffix(".json").read_text())
    assert Candidate.from_dict(record["candidate"]).id == "att-r16ln-add@after_1x1:c4"
    assert record["accuracy"]["n"] == 2 and record["source"]["trial"] == 1
    assert record["min_hidden"] == 2 and record["backbone"] == "resnet8"
    weights = torch.load(out.with_suffix(".pt"), weights_only=True)
    best = Candidate.parse("att-r16ln-add@after_1x1:c4")
    trained = load_checkpoint(
        run_dir / "weights" / checkpoint_name(module_key(best, "resnet8", 2))
    ).build()
    assert sorted(weights) == ["c4.0.context_block"]
    block = load_block(out, 32)  # the study's min_hidden is the class default
    searched = sum(p.numel() for p in trained.c4[0].context_block.parameters())
    assert sum(p.numel() for p in block.parameters()) == searched
    assert searched != sum(p.numel() for p in build_model(best, "resnet8").parameters())
    block.load_state_dict(weights["c4.0.context_block"], strict=True)
    x = torch.randn(2, 3, 32, 32)
    seen: dict[str, torch.Tensor] = {}
    trained.c4[0].context_block.register_forward_hook(
        lambda m, a, o: seen.update(x=a[0].clone(), y=o.clone())
    )
    with torch.no_grad():
        trained(x)  # the trained network's block output on its own input
        torch.testing.assert_close(block.eval()(seen["x"]), seen["y"], rtol=0, atol=0)
    assert load_block(out.with_suffix(".json"), 32).state_dict().keys() == block.state_dict().keys()


def test_export_rank_2_and_id(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.py"
    assert main(["export", str(run_dir), "--rank", "2", "-o", str(out)]) == 0
    assert "avg-r16-mul@after_1x1:c4" in out.read_text()
    assert "saved no trained weights" in capsys.readouterr().out
    assert main(["export", str(run_dir), "--id", "avg-1x1-add@after_1x1:c4", "-o", str(out)]) == 0
    assert "class Avg1x1AddBlock(ContextBlock)" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rank", "9"], "the front has 3 members"),
        (["--rank", "3"], "baseline"),
        (["--id", "att-r4-add@after_1x1:c4"], "was not evaluated"),
        (["--id", "none"], "baseline"),
    ],
)
def test_export_errors_are_one_line(
    run_dir: Path, tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = [] if argv[1] == "none" else [str(run_dir)]
    assert main(["export", *run, *argv, "-o", str(tmp_path / "x.py")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_a_preset_marked_not_exportable_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    from gcsearch import spec

    monkeypatch.setitem(
        spec.PRESETS, "cbam", dataclasses.replace(PRESETS["cbam"], exportable=False)
    )
    with pytest.raises(UserError, match="exportable") as err:
        render_source("cbam")
    listed = [t.strip(" )") for t in str(err.value).split("exportable:")[1].split(",")]
    assert "\n" not in str(err.value) and "cbam" not in listed and "cbam-channel" in listed


# ----------------------------------------------------------------------------- timm, mmdet


@pytest.mark.parametrize("cid", ["gc", "att-r16ln-both@after_1x1:c3c4c5", "cbam"])
def test_timm_resnet50_keeps_the_blocks_own_init(cid: str, tmp_path: Path) -> None:
    """timm passes device/dtype and re-initializes every conv; zero_init_last restores ours."""
    timm = pytest.importorskip("timm")
    cls = load_block(export_candidate(cid, tmp_path / "blk.py")["module"])
    model = timm.create_model("resnet50", pretrained=False, block_args={"attn_layer": cls})
    blocks = [m for m in model.modules() if isinstance(m, cls)]
    assert len(blocks) == 16  # every residual block of the four stages
    for block in blocks:
        lib = build_block(cid, block.channel_gate.channels if cid == "cbam" else block.channels)
        for (name, ours), theirs in zip(
            block.state_dict().items(), lib.state_dict().values(), strict=True
        ):
            if not ours.any() or not theirs.any():  # zero-started tensors stay zero
                assert not ours.any() and not theirs.any(), name
    if cid != "cbam":
        assert all(not b.get_submodule(b.branches[-1])[-1].weight.any() for b in blocks)
    else:  # the spatial gate's BN scale: the gate starts at exactly 0.5
        assert all(not b.spatial_gate.bn.weight.any() for b in blocks)
    plain = timm.create_model(
        "resnet50", pretrained=False, zero_init_last=False, block_args={"attn_layer": cls}
    )
    if cid != "cbam":  # without zero_init_last timm's Kaiming init stays: the block is not ours
        assert any(b.get_submodule(b.branches[-1])[-1].weight.any() for b in plain.modules()
                   if isinstance(b, cls))  # fmt: skip
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_exported_block_accepts_device_dtype_and_in_channels(tmp_path: Path) -> None:
    cls = load_block(export_candidate("nl-embedded", tmp_path / "nl.py")["module"])
    block = cls(in_channels=32, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in block.parameters())
    assert block.channels == 32 and cls._abbr_ == "context_block"
    with pytest.raises(TypeError, match="channels"):
        cls()


def test_mmdet_config_fragment_parses_with_mmengine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = export_candidate(
        "gc@after_1x1:c3c4c5", tmp_path / "gc_block.py", meta={"min_hidden": 2}
    )
    text = written["mmdet"].read_text()
    mmengine = pytest.importorskip("mmengine")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = mmengine.Config.fromfile(str(written["mmdet"]))  # imports gc_block_plugin
    from mmengine.registry import MODELS

    block = MODELS.get("GCBlock")(in_channels=256)  # as mmcv's build_plugin_layer calls it
    assert type(block).__name__ == "GCBlock" and block.channels == 256
    assert cfg.model.backbone.plugins == [
        {"cfg": {"type": "GCBlock"}, "position": "after_conv3", "stages": (False, True, True, True)}
    ]
    assert cfg.custom_imports.imports == ["gc_block_plugin"]
    assert "gc_block_plugin.py" in text
    other = export_candidate("gc@after_add:c4", tmp_path / "gc_add.py")["mmdet"].read_text()
    assert "Not expressible" in other and "model = dict" not in other


def test_build_settings_come_from_the_study_then_run_json(tmp_path: Path) -> None:
    from gcsearch.export import study_build_settings

    record = {"space": {"task": {"name": "digits", "backbone": "resnet14", "min_hidden": 2}}}
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert study_build_settings(tmp_path, {}) == {
        "task": "digits", "backbone": "resnet14", "min_hidden": 2,
    }  # fmt: skip
    attrs = {"backbone": "resnet8", "min_hidden": 4, "input_shape": [3, 32, 32]}
    assert study_build_settings(tmp_path, attrs) == {**attrs, "task": "digits"}
    (tmp_path / "run.json").write_text("not json")
    assert study_build_settings(tmp_path, attrs) == attrs


def test_weights_of_another_network_are_refused_and_folded_ratios_accepted(tmp_path: Path) -> None:
    from gcsearch.backbones import build_model

    trained = Candidate.parse("att-r16ln-add@after_1x1:c4")
    path = save_checkpoint(
        tmp_path / "w.pt", build_model(trained, "resnet8", min_hidden=8), trained,
        backbone="resnet8", min_hidden=8, num_classes=10, input_shape=(3, 32, 32),
    )  # fmt: skip
    with pytest.raises(UserError, match="holds att-r16ln-add"):
        export_candidate("avg-r16ln-add@after_1x1:c4", tmp_path / "a.py", weights=path)
    # at C = 32 with min_hidden 8, r16 and r32 build the same network (module_key folds them)
    written = export_candidate("att-r32ln-add@after_1x1:c4", tmp_path / "b.py", weights=path)
    assert sorted(torch.load(written["weights"], weights_only=True)) == ["c4.0.context_block"]


@pytest.mark.parametrize(("preset", "searched"), [("snl", "att-1x1-add"), ("gc", "att-r16ln-add")])
def test_a_presets_weights_export_as_the_searched_block_it_equals(
    tmp_path: Path, preset: str, searched: str
) -> None:
    """The search keeps one weights file per network; a preset that builds exactly a searched
    block (the registry's ``equivalent_spec``) shares it, so either id exports those weights."""
    from gcsearch.backbones import build_model

    trained = Candidate.parse(f"{preset}@after_1x1:c4")
    torch.manual_seed(0)
    model = build_model(trained, "resnet8", min_hidden=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(
        tmp_path / "w.pt", model, trained,
        backbone="resnet8", min_hidden=8, num_classes=10, input_shape=(3, 32, 32),
    )  # fmt: skip
    written = export_candidate(f"{searched}@after_1x1:c4", tmp_path / "b.py", weights=path)
    block = load_block(written["module"], channels=32)
    block.load_state_dict(torch.load(written["weights"], weights_only=True)["c4.0.context_block"])
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        trained_block = dict(model.named_modules())["c4.0.context_block"].eval()
        assert torch.allclose(block.eval()(x), trained_block(x), atol=1e-6)
