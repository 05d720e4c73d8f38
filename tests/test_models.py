"""Architectures of ich.models: shapes, layer and parameter counts, weight loading, Grad-CAM layers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network for weights

import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, ResNet152_Weights
from torchvision.models import resnet50 as tv_resnet50

from ich.labels import LABELS
from ich.models import available, build, cam_layer, registry
from ich.models.effclass import DECONVS, FUSED_CHANNELS, fused_side
from ich.models.registry import ImageNetSource, imagenet_path
from ich.networks.classifier import ClassifierSpec
from tests.conftest import one_torch_thread

# classifier -> small input side that the architecture accepts (CPU-fast)
CLASSIFIERS = {
    "wa2d_cnn1": 64,
    "wa2d_cnn2": 64,
    "wa2d_cnn3": 64,
    "thesis_cnn": 32,
    "resnet50": 32,
    "resnet152": 32,
    "effclass": 128,
    "bleedmap_cnn": 64,
    "bleedmap_lite0": 64,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run these tiny-tensor tests on one intra-op thread: OpenMP's spin-waiting makes two
    threads many times slower when the two cores are shared with other processes."""
    with one_torch_thread():
        yield


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def head_swap(total: int, width: int, outputs: int) -> int:
    """Parameters after replacing a 1000-class Linear(width) by ``outputs`` Linear(width, 1)."""
    return total - (width * 1000 + 1000) + outputs * (width + 1)


def test_every_family_is_registered_with_what_it_is():
    # a new file in ich/models registers itself: the families here are the ones this file tests
    assert {*CLASSIFIERS, "study_gru"} <= set(available())  # study_gru: tests/test_sequence.py
    assert available(bleed_map=True) == ["bleedmap_cnn", "bleedmap_lite0"]
    assert available(reads_studies=True) == ["study_gru"]
    # segmenters are the registry's too, and no classifier
    assert available(segments=True) == ["lite0_unet", "unet"] and not {"unet", "lite0_unet"} & set(available())


def test_a_segmenter_is_no_classifier_and_a_builder_refuses_what_it_does_not_take():
    with pytest.raises(ValueError, match="'unet' is a segmentation network"):
        ClassifierSpec("unet")
    with pytest.raises(TypeError, match="model .lite0_unet. takes no option batch_norm"):
        build("lite0_unet", input_size=64, batch_norm=True)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError) as err:
        build("resnet51")
    assert all(name in str(err.value) for name in ["resnet51", *available(), *available(segments=True)])


@pytest.mark.parametrize("num_outputs", [1, len(LABELS)])
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_forward_backward(name, num_outputs):
    torch.manual_seed(0)
    side = CLASSIFIERS[name]
    model = build(name, num_outputs=num_outputs, input_size=side)
    x = torch.randn(2, 3, side, side)
    logits = model(x)
    assert logits.shape == (2, num_outputs)
    nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["thesis_cnn", "resnet50", "wa2d_cnn3"])
def test_grey_input(name):
    side = CLASSIFIERS[name]
    model = build(name, in_channels=1, input_size=side).eval()
    assert model(torch.randn(1, 1, side, side)).shape == (1, 1)


def test_resnet_parameter_counts():
    # torchvision's ImageNet models: ResNet-50 25,557,032 and ResNet-152 60,192,808 parameters
    assert ResNet50_Weights.IMAGENET1K_V1.meta["num_params"] == 25_557_032
    assert ResNet152_Weights.IMAGENET1K_V1.meta["num_params"] == 60_192_808
    assert n_params(build("resnet50")) == head_swap(25_557_032, 2048, 1) == 23_510_081
    assert n_params(build("resnet152")) == head_swap(60_192_808, 2048, 1) == 58_145_857
    assert n_params(build("resnet50", num_outputs=6)) == head_swap(25_557_032, 2048, 6)


def test_resnet_multilabel_heads_are_parallel_and_independent():
    model = build("resnet50", num_outputs=len(LABELS)).eval()
    assert [type(h) for h in model.fc.heads] == [nn.Linear] * len(LABELS)
    assert all(h.out_features == 1 and h.in_features == 2048 for h in model.fc.heads)
    x = torch.randn(1, 3, 64, 64)
    before = model(x)
    with torch.no_grad():
        model.fc.heads[LABELS.index("subdural")].bias += 1.0
    delta = model(x) - before
    assert torch.allclose(delta, torch.eye(len(LABELS))[LABELS.index("subdural")])


def test_effclass_deconvolutions_land_on_224_at_512():
    # (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1, maps 64 .. 4
    sides = [
        (512 // 2**k - 1) * s - 2 * p + d * (k_ - 1) + 1
        for k, (_, k_, s, p, d) in zip(range(3, 8), DECONVS, strict=True)
    ]
    assert sides == [224] * 5
    assert [row[0] for row in DECONVS] == [16, 12, 8, 4, 2]
    assert FUSED_CHANNELS == 42
    assert [fused_side(s) for s in (128, 256, 512)] == [56, 112, 224]


def test_effclass_intermediate_shapes_at_512():
    torch.manual_seed(0)
    model = build("effclass", input_size=512).eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 512, 512)
        maps = model.pyramid(x)
        assert [tuple(m.shape) for m in maps] == [(1, 64, s, s) for s in (64, 32, 16, 8, 4)]
        raw = [deconv(m) for deconv, m in zip(model.deconvs, maps, strict=True)]  # no resizing at 512
        assert [tuple(r.shape) for r in raw] == [(1, c, 224, 224) for c in (16, 12, 8, 4, 2)]
        assert torch.cat(model.upsample(maps), dim=1).shape == (1, 42, 224, 224)
        fused = model.fuse(x)
        assert fused.shape == (1, 3, 224, 224)
        assert model.resnet.conv1.in_channels == 3
        assert torch.allclose(model(x), model.resnet(fused))


@pytest.mark.parametrize(("side", "fused"), [(128, 56), (256, 112)])
def test_effclass_smaller_inputs(side, fused):
    model = build("effclass", input_size=side).eval()
    with torch.no_grad():
        assert model.fuse(torch.randn(1, 3, side, side)).shape == (1, 3, fused, fused)


def test_effclass_parameter_count():
    model = build("effclass", input_size=128)
    resnet18 = head_swap(ResNet18_Weights.IMAGENET1K_V1.meta["num_params"], 512, 1)
    assert n_params(model.resnet) == resnet18 == 11_177_025
    deconvs = sum(64 * out * k * k + out for out, k, *_ in DECONVS)
    assert n_params(model.deconvs) == deconvs
    assert n_params(model.reduce) == (42 * 16 * 25 + 16) + (16 * 3 * 9 + 3)
    assert (
        n_params(model) == n_params(model.backbone) + n_params(model.fpn) + deconvs + n_params(model.reduce) + resnet18
    )  # the detector heads are gone


def test_effclass_rejects_sizes_the_bifpn_cannot_take():
    with pytest.raises(ValueError, match="multiple of 128"):
        build("effclass", input_size=200)


def test_unet_has_24_convolutions_and_returns_logit_maps():
    model = build("unet", in_channels=1)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 24
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in convs) == 4
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 1  # reused 4 times
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())  # logits
    assert model.encoder[0][0].out_channels == 64 and model.bottleneck[0].out_channels == 1024

    torch.manual_seed(0)
    small = build("unet", in_channels=3, base_width=8)
    x = torch.randn(2, 3, 160, 160)
    logits = small(x)
    assert logits.shape == (2, 1, 160, 160)
    logits.mean().backward()
    assert all(p.grad is not None for p in small.parameters())


def test_unet_rejects_bad_sizes_and_outputs():
    with pytest.raises(ValueError, match="multiples of 16"):
        build("unet", base_width=4)(torch.randn(1, 3, 150, 150))
    with pytest.raises(ValueError, match="num_outputs"):
        build("unet", num_outputs=6)


@pytest.mark.parametrize(("name", "layers"), [("wa2d_cnn1", 12), ("wa2d_cnn2", 10), ("wa2d_cnn3", 9)])
def test_wa2d_layer_counts(name, layers):
    counted = (nn.Conv2d, nn.MaxPool2d, nn.Dropout)
    assert sum(isinstance(m, counted) for m in build(name).features) == layers
    assert not any(isinstance(m, nn.BatchNorm2d) for m in build(name).features)  # the paper's nets
    with_norm = build(name, batch_norm=True).features
    assert sum(isinstance(m, counted) for m in with_norm) == layers
    convs = [i for i, m in enumerate(with_norm) if isinstance(m, nn.Conv2d)]
    assert all(isinstance(with_norm[i + 1], nn.BatchNorm2d) for i in convs)


def test_classifier_spec_options_reach_the_builder():
    from ich.networks.classifier import build_classifier
    from ich.train.classify import parse_section

    spec, _, _ = parse_section("m", {"arch": "wa2d_cnn3", "arch_options": {"batch_norm": True}})
    assert any(isinstance(m, nn.BatchNorm2d) for m in build_classifier(spec).modules())
    spec, _, _ = parse_section("m", {"arch": "wa2d_cnn3", "arch_options": {"no_such_option": 1}})
    with pytest.raises(TypeError, match="no_such_option"):
        build_classifier(spec)


def test_resnet_residual_branches_start_as_identity():
    model = build("resnet50")
    last_norms = [block.bn3.weight for layer in (model.layer1, model.layer4) for block in layer]
    assert all(torch.count_nonzero(w) == 0 for w in last_norms)


@pytest.mark.parametrize("side", [32, 128, 256])
def test_thesis_cnn_flatten_size_follows_input(side):
    model = build("thesis_cnn", in_channels=1, input_size=side)
    assert model.classifier[0].in_features == 32 * ((side - 14) // 2) ** 2
    assert [type(m) for m in model.classifier] == [
        nn.Linear,
        nn.ReLU,
        nn.BatchNorm1d,
        nn.Linear,
        nn.ReLU,
        nn.BatchNorm1d,
        nn.Dropout,
        nn.Linear,
    ]
    with pytest.raises(ValueError, match="input_size"):
        build("thesis_cnn", input_size=15)


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("resnet50", "resnet50-0676ba61.pth"),
        ("resnet152", "resnet152-394f9c45.pth"),
        ("effclass", "resnet18-f37072fd.pth"),
    ],
)
def test_imagenet_without_cache_names_the_file(name, file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / file
    with pytest.raises(FileNotFoundError) as err:
        build(name, input_size=128, pretrained="imagenet")
    assert str(expected) in str(err.value) and "TORCH_HOME" in str(err.value)
    assert not expected.exists()  # nothing was downloaded


@pytest.mark.parametrize("name", ["wa2d_cnn1", "thesis_cnn", "unet"])
def test_imagenet_for_a_model_without_it_is_an_error(name):
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build(name, input_size=32, pretrained="imagenet")


def test_imagenet_file_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = imagenet_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="corrupted"):
        build("effclass", input_size=128, pretrained="imagenet")


def test_imagenet_weights_load_into_the_trunk(tmp_path, monkeypatch):
    # a stand-in ImageNet file (random weights; its name has no hash to check)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fake = SimpleNamespace(url="https://example.org/resnet50-imagenet.pth", name="FAKE")
    fake.resolve = lambda: fake  # as TorchvisionWeights.resolve gives the weights entry
    entry = registry._REGISTRY["resnet50"]
    monkeypatch.setitem(
        registry._REGISTRY, "resnet50", registry._Entry(entry.builder, ImageNetSource(fake), entry.capabilities)
    )
    torch.manual_seed(1)
    imagenet = tv_resnet50(weights=None).state_dict()
    path = imagenet_path(fake)
    path.parent.mkdir(parents=True)
    torch.save(imagenet, path)

    model = build("resnet50", in_channels=1, num_outputs=len(LABELS), pretrained="imagenet")
    state = model.state_dict()
    assert torch.equal(state["layer4.2.conv3.weight"], imagenet["layer4.2.conv3.weight"])
    assert torch.equal(state["bn1.running_mean"], imagenet["bn1.running_mean"])
    assert torch.allclose(state["conv1.weight"], imagenet["conv1.weight"].sum(dim=1, keepdim=True))
    assert state["fc.heads.0.weight"].shape == (1, 2048)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build("wa2d_cnn3", num_outputs=6)
    state = model.state_dict()
    plain, wrapped, ddp = tmp_path / "plain.pt", tmp_path / "wrapped.pt", tmp_path / "ddp.pt"
    torch.save(state, plain)
    torch.save({"model": state, "epoch": 3}, wrapped)
    torch.save({f"module.{k}": v for k, v in state.items()}, ddp)
    for path in (plain, wrapped, ddp):
        torch.manual_seed(1)
        loaded = build("wa2d_cnn3", num_outputs=6, pretrained=str(path)).state_dict()
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_checkpoint_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        build("wa2d_cnn1", pretrained=str(missing))
    other = tmp_path / "other.pt"
    torch.save(build("wa2d_cnn2").state_dict(), other)
    with pytest.raises(RuntimeError, match=r"other\.pt"):
        build("wa2d_cnn1", pretrained=str(other))


def test_same_seed_same_weights():
    def weights():
        torch.manual_seed(7)
        return build("effclass", input_size=128).state_dict()

    first, second = weights(), weights()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_cam_layer_is_a_spatial_map_inside_the_model(name):
    side = CLASSIFIERS[name]
    model = build(name, input_size=side).eval()
    layer = cam_layer(model)
    assert any(layer is m for m in model.modules())
    seen = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, side, side))
    handle.remove()
    assert len(seen) == 1 and len(seen[0]) == 4


def test_cam_layer_refuses_the_segmenter():
    with pytest.raises(TypeError, match="UNet"):
        cam_layer(build("unet", base_width=4))


def test_a_model_without_torchvision_layers_builds_without_importing_torchvision():
    # ich predict's start-up: torchvision (1.5 s) only for the networks that are made of it
    code = (
        "import sys; from ich.models import build; build('wa2d_cnn1', input_size=64); "
        "import ich.predict.run; assert 'torchvision' not in sys.modules and 'sklearn' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'sklearn'))[:5]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
