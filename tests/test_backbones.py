"""Backbones: published parameter counts, clean insertion, placements, layouts, errors."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from gcsearch.backbones import (
    BACKBONES,
    backbone_stages,
    build_model,
    context_blocks,
    stage_modules,
)
from gcsearch.errors import UserError
from gcsearch.spec import PRESETS, Candidate, SpecError

torch.set_num_threads(1)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _gc_params(channels: int, ratio: int) -> int:
    """mmcv ContextBlock: conv_mask C->1, conv C->h, LayerNorm(h), conv h->C (all with bias)."""
    h = channels // ratio
    return (channels + 1) + (channels * h + h) + 2 * h + (h * channels + channels)


META = torch.device("meta")  # shapes only: builds in a blink, enough for counts and keys


def test_resnet50_matches_torchvision() -> None:
    with META:
        ours = build_model(Candidate.none(), "resnet50", num_classes=1000)
        ref = torchvision.models.resnet50(weights=None)
    assert _params(ours) == _params(ref) == 25_557_032
    assert list(ours.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_our_blocks_draw_and_compute_as_torchvisions(name: str) -> None:
    """The residual blocks are written here (not subclassed from torchvision): seeded alike,
    the plain network has torchvision's weights to the bit and gives its logits."""
    torch.manual_seed(0)
    ours = build_model(Candidate.none(), name, num_classes=10).eval()
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)(weights=None, num_classes=10).eval()
    a, b = ours.state_dict(), ref.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_a_cifar_network_imports_no_torchvision() -> None:
    """Building and counting a proxy network (the driver's cost table) leaves torchvision, and
    the ``torch._dynamo`` it pulls in, unimported."""
    import subprocess
    import sys

    code = (
        "import sys; from gcsearch.backbones import build_model; "
        "from gcsearch.cost import count_cost; "
        "build_model('gc@after_1x1:c3c4c5', 'resnet8', num_classes=2); "
        "count_cost('gc@after_1x1:c3c4c5', 'resnet8', (3, 8, 48), num_classes=2); "
        "print(sorted(k for k in ('torchvision', 'torch._dynamo') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("candidate", "added"),
    [("gc@after_1x1:c3c4c5", 2_521_741), ("att-r4ln-add@after_1x1:c3c4c5", 10_000_909)],
)
def test_gcnet_paper_param_counts(candidate: str, added: int) -> None:
    """GCNet Table 2: +2.52M params for GC r16 after_1x1 in c3-c5 of ResNet-50."""
    with META:
        model = build_model(Candidate.parse(candidate), "resnet50", num_classes=1000)
    ratio = 4 if "r4" in candidate else 16
    # c3: 4 blocks at 512, c4: 6 at 1024, c5: 3 at 2048 channels
    closed = 4 * _gc_params(512, ratio) + 6 * _gc_params(1024, ratio) + 3 * _gc_params(2048, ratio)
    assert _params(model) - 25_557_032 == closed == added


def test_insertion_keeps_backbone_keys_and_loads_backbone_weights() -> None:
    with META:
        ref = torchvision.models.resnet50(weights=None)
        model = build_model(Candidate.parse("gc@after_add:c4c5"), "resnet50", num_classes=1000)
    missing, unexpected = model.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(".context_block." in key for key in missing)
    assert "layer3.0.context_block.conv_mask.weight" in missing


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("density", ["all", "last"])
def test_density_places_one_block_per_residual_or_per_stage(backbone: str, density: str) -> None:
    cand = Candidate.parse(f"gc@after_add:c4c5{':last' if density == 'last' else ''}")
    with META:
        model = build_model(cand, backbone)
    stages = stage_modules(model, backbone)
    expected = [f"{s}.{i}" for s in ("c4", "c5") for i in range(len(stages[s]))]
    if density == "last":
        expected = [f"{s}.{len(stages[s]) - 1}" for s in ("c4", "c5")]
    attr = BACKBONES[backbone].stages
    names = [name.removesuffix(".context_block") for name, _ in context_blocks(model)]
    assert names == [f"{attr[e.split('.')[0]]}.{e.split('.')[1]}" for e in expected]


@pytest.mark.parametrize(("backbone", "last_bn"), [("resnet14", "bn2"), ("resnet50", "bn3")])
@pytest.mark.parametrize("position", ["after_1x1", "after_add", "after_block"])
def test_position_feeds_the_block_the_right_tensor(
    backbone: str, last_bn: str, position: str
) -> None:
    """after_1x1 sees the branch's last BN output; after_add sees that plus the identity;
    after_block the ReLU of that sum (the residual block's output)."""
    model = build_model(Candidate.parse(f"snl@{position}:c4"), backbone).eval()
    res = stage_modules(model, backbone)["c4"][1]  # no downsample: identity is the input
    seen: dict[str, torch.Tensor] = {}
    res.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0].clone()))
    getattr(res, last_bn).register_forward_hook(lambda m, a, o: seen.__setitem__("bn", o.clone()))
    res.context_block.register_forward_pre_hook(lambda m, a: seen.__setitem__("ctx", a[0].clone()))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    expected = seen["bn"] if position == "after_1x1" else seen["bn"] + seen["x"]
    if position == "after_block":
        expected = torch.relu(expected)
    torch.testing.assert_close(seen["ctx"], expected)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("position", ["after_1x1", "after_add"])
def test_every_preset_trains_in_place_at_both_positions(preset: str, position: str) -> None:
    model = build_model(Candidate.parse(f"{preset}@{position}:c3c4c5"), "resnet8")
    out = model(torch.randn(2, 3, 16, 16))
    out.sum().backward()  # the in-place residual add must not break autograd
    assert out.shape == (2, 10)
    assert all(p.grad is not None for _, b in context_blocks(model) for p in b.parameters())


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "resnet8", "resnet20"])
def test_backbones_run_with_a_block_and_one_channel(backbone: str) -> None:
    """BasicBlock and Bottleneck paths (resnet34/101 reuse them; built in the density test)."""
    model = build_model(
        Candidate.parse("gc@after_1x1:c5:last"), backbone, in_chans=1, num_classes=7
    )
    out = model(torch.randn(2, 1, 32, 32))
    out.mean().backward()
    assert out.shape == (2, 7)


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 56])
def test_cifar_depth_is_6n_plus_2(depth: int) -> None:
    """He et al. count the stem conv, the 3x3 convs of 3n BasicBlocks and the classifier."""
    model = build_model(Candidate.none(), f"resnet{depth}")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == depth
    stages = stage_modules(model, f"resnet{depth}").values()
    assert [len(s) for s in stages] == [(depth - 2) // 6] * 3
    assert [s[0].bn2.num_features for s in stages] == [16, 32, 64]


def test_caffe_layout_moves_the_stride_to_the_first_1x1() -> None:
    with META:
        pt = build_model(Candidate.none(), "resnet50", num_classes=1000).eval()
        cf = build_model(Candidate.none(), "resnet50", num_classes=1000, layout="caffe").eval()
    for name in ("layer2", "layer3", "layer4"):
        assert getattr(pt, name)[0].conv2.stride == (2, 2)
        assert getattr(cf, name)[0].conv1.stride == (2, 2)
        assert getattr(cf, name)[0].conv2.stride == (1, 1)
    assert list(pt.state_dict()) == list(cf.state_dict())
    shapes: dict[str, list[torch.Size]] = {"pt": [], "cf": []}
    for key, model in (("pt", pt), ("cf", cf)):
        for name in ("layer1", "layer2", "layer3", "layer4"):
            getattr(model, name).register_forward_hook(
                lambda m, a, o, k=key: shapes[k].append(o.shape)
            )
        model(torch.empty(1, 3, 224, 224, device=META))
    assert shapes["pt"] == shapes["cf"]
    assert [s[-1] for s in shapes["cf"]] == [56, 28, 14, 7]


def test_stages() -> None:
    assert backbone_stages("resnet50") == ("c2", "c3", "c4", "c5")
    assert backbone_stages("resnet20") == ("c3", "c4", "c5")


def test_missing_stage_is_a_spec_error_naming_the_allowed_stages() -> None:
    with pytest.raises(SpecError, match=r"c2 is not a stage of resnet20 \(allowed: c3, c4, c5\)"):
        build_model(Candidate.parse("gc@after_1x1:c2c3"), "resnet20")


def test_unknown_backbone_and_layout_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"resnet9.*resnet18.*resnet20"):
        build_model(Candidate.none(), "resnet9")
    with pytest.raises(UserError, match=r"layout.*pytorch, caffe"):
        build_model(Candidate.none(), "resnet20", layout="tf")


def test_module_key_folds_ratios_that_build_the_same_network() -> None:
    from gcsearch.backbones import module_key

    r16 = Candidate.parse("att-r16ln-add@after_1x1:c4c5")
    r32 = Candidate.parse("att-r32ln-add@after_1x1:c4c5")
    r4 = Candidate.parse("att-r4ln-add@after_1x1:c4c5")
    assert (
        module_key(r16, "resnet20")
        == module_key(r32, "resnet20")
        == "att-h8.8ln-add@after_1x1:c4c5"
    )
    assert module_key(r4, "resnet20") != module_key(r16, "resnet20")
    same = [build_model(c, "resnet20") for c in (r16, r32)]
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in same]
    assert shapes[0] == shapes[1]
    # keyed by built widths: r4 at C=32 is 8 wide, as r16 is (the floor binds for r16 only)
    r4c4, r16c4 = (Candidate.parse(f"att-r{r}ln-add@after_1x1:c4") for r in (4, 16))
    key = "att-h8ln-add@after_1x1:c4"
    assert module_key(r4c4, "resnet8") == module_key(r16c4, "resnet8") == key
    # at ResNet-50 widths the floor never binds: every ratio is its own network
    assert len({module_key(c, "resnet50") for c in (r4, r16, r32)}) == 3
    assert module_key(Candidate.parse("gc@after_add:c4"), "resnet20") == "gc@after_add:c4"


def test_penultimate_is_the_nl_papers_block_before_the_last_of_res4() -> None:
    model = build_model("nl-embedded@after_block:c4:penultimate", "resnet50", num_classes=10)
    assert [n for n, _ in context_blocks(model)] == ["layer3.4.context_block"]  # 6 blocks in c4
    with pytest.raises(UserError, match="one residual block"):
        build_model("nl-embedded@after_block:c4:penultimate", "resnet8")


def test_preset_placement_fits_the_paper_to_the_backbone() -> None:
    from gcsearch.backbones import preset_placement

    assert preset_placement("se", "resnet50").id == "after_1x1:c2c3c4c5"
    assert preset_placement("se", "resnet20").id == "after_1x1:c3c4c5"  # CIFAR nets: no c2
    assert preset_placement("nl-embedded", "resnet20").id == "after_block:c4:penultimate"
    assert preset_placement("nl-embedded", "resnet8").id == "after_block:c4:last"


@pytest.mark.parametrize(("depth", "params"), [(20, 269_722), (32, 464_154), (56, 853_018)])
def test_option_a_shortcuts_give_the_papers_cifar_parameter_counts(depth: int, params: int) -> None:
    """He et al. Table 6: ResNet-20 0.27 M, ResNet-32 0.46 M, ResNet-56 0.85 M (option A)."""
    model = build_model("none", f"resnet{depth}a")
    assert sum(p.numel() for p in model.parameters()) == params
    assert round(params / 1e6, 2) == {20: 0.27, 32: 0.46, 56: 0.85}[depth]
    proj = sum(p.numel() for p in build_model("none", f"resnet{depth}").parameters())
    assert proj > params  # option B's 1x1 projections stay available under the plain name
    x = torch.randn(2, 3, 32, 32)
    assert build_model("gc@after_add:c4c5", f"resnet{depth}a")(x).shape == (2, 10)


def test_wide_proxy_keeps_every_ratio_a_distinct_network() -> None:
    """ResNet-8 at 4x width (64/128/256) with min_hidden 2: r4, r8, r16 and r32 build four
    different bottlenecks at every stage, where the 16/32/64 ResNet-8 folds them together (the
    ratio axis is only asked about where it is live)."""
    from gcsearch.backbones import module_key

    def keys(backbone: str, min_hidden: int, stage: str, ratios: tuple[int, ...]) -> set[str]:
        return {
            module_key(Candidate.parse(f"att-r{r}ln-add@after_1x1:{stage}"), backbone, min_hidden)
            for r in ratios
        }

    for stage in ("c3", "c4", "c5"):
        assert len(keys("resnet8w4", 2, stage, (4, 8, 16, 32))) == 4, stage
    for stage in ("c4", "c5"):  # r32 is refused at c3's 16 channels
        assert len(keys("resnet8", 8, stage, (4, 8, 16))) < 3, stage
    assert BACKBONES["resnet8w4"].widths == {"c3": 64, "c4": 128, "c5": 256}
    with META:
        wide = build_model(Candidate.parse("none"), "resnet8w4")
    assert wide.c5[0].conv2.out_channels == 256  # type: ignore[index]
