"""Model registry: every family builds at smoke size, learns, loads local weights, exposes feature taps."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from mgmt_audit.errors import ConfigError
from mgmt_audit.models import (
    available,
    build,
    default_params,
    family,
    feature_layers,
    pooled_features,
    pretrain_ssl,
)

FAMILIES = [
    "resnet18_2d", "resnet34_2d", "resnet50_2d", "densenet121_2d", "densenet161_2d", "efficientnet_b0_3d",
    "resnet10_3d", "vit_3d", "roi_resnet", "fusion_resnet18", "simclr_resnet18", "custom_cnn_2d",
    "mobilenet_v2_2d", "resnet101_2d",
]
GRAPH_FAMILIES = ["geometry_gnn", "cnn_gnn"]  # inputs are PyG batches of the mesh view: tests/test_geometry.py


# Memorising 4 noise images in a few steps is a check that gradients flow; dropout on the smoke
# profile's 8-channel layers turns it into a coin toss, so this family's regularisers are off for it.
LEARN_OVERRIDES = {"custom_cnn_2d": {"dropout": 0.0, "noise_std": 0.0}}


def smoke(name: str, in_channels: int = 2, **overrides) -> nn.Module:
    spec = family(name)
    return build(name, in_channels=in_channels, spatial_size=spec.smoke_input, **{**spec.smoke, **overrides})


def batch(name: str, n: int = 4, in_channels: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, in_channels, *family(name).smoke_input, generator=torch.Generator().manual_seed(1))
    return x, torch.tensor([[0.0], [1.0]] * (n // 2))


def train_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> list[float]:
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_available_lists_every_family_and_needs_no_torch():
    assert available() == FAMILIES + GRAPH_FAMILIES
    code = "import sys, mgmt_audit.models as m; m.available(); m.default_params('vit_3d'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", FAMILIES)
def test_family_builds_learns_and_last_tap_feeds_the_head(name):
    torch.manual_seed(0)
    model = smoke(name, **LEARN_OVERRIDES.get(name, {}))
    x, y = batch(name)
    out = model(x)
    assert out.shape == (4, 1) and torch.isfinite(out).all()
    losses = train_losses(model, x, y, steps=8, lr=3e-3)
    assert losses[-1] < losses[0]

    model.eval()
    features = pooled_features(model, x)
    last = feature_layers(model)[-1]
    head = model.get_submodule(family(name).head)
    with torch.no_grad():
        assert torch.allclose(head(features[last]), model(x), atol=1e-5)
    assert all(f.shape[0] == 4 and f.ndim == 2 for f in features.values())
    assert hooks_left(model) == 0


@pytest.mark.parametrize("name", ["resnet18_2d", "roi_resnet"])
def test_cheap_families_overfit_four_samples(name):
    torch.manual_seed(0)
    model = smoke(name, **({"dropout": 0.0} if name == "roi_resnet" else {}))
    x, y = batch(name)
    assert train_losses(model, x, y, steps=30, lr=1e-2)[-1] < 0.1


def test_bad_names_and_parameters_list_the_valid_choices():
    with pytest.raises(ConfigError, match="resnet18_2d.*custom_cnn_2d"):
        build("resnet18", in_channels=1, spatial_size=(32, 32))
    with pytest.raises(ConfigError, match="widen_factor"):
        build("resnet18_2d", in_channels=1, spatial_size=(32, 32), width=2)
    with pytest.raises(ConfigError, match="'stack', 'add'"):
        smoke("fusion_resnet18", mode="concat")
    with pytest.raises(ConfigError, match="non-negative number"):
        smoke("resnet18_2d", widen_factor=-1)
    with pytest.raises(ConfigError, match=r"3D.*\(H, W, D\)"):
        build("vit_3d", in_channels=1, spatial_size=(32, 32))
    with pytest.raises(ConfigError, match="even channel count"):
        smoke("fusion_resnet18", in_channels=3)
    with pytest.raises(ConfigError, match="multiples of 32"):
        build("roi_resnet", in_channels=4, spatial_size=(48, 48), **family("roi_resnet").smoke)
    with pytest.raises(ConfigError, match="at least 32"):  # would fail deep inside the forward pass
        build("densenet121_2d", in_channels=1, spatial_size=(16, 16))
    with pytest.raises(ConfigError, match="patch"):  # MONAI's own check, re-raised with the family named
        build("vit_3d", in_channels=1, spatial_size=(8, 8, 8), **family("vit_3d").smoke)
    with pytest.raises(ConfigError, match="profile"):
        default_params("vit_3d", "laptop")


def test_densenet161_has_the_published_configuration():
    assert {k: default_params("densenet161_2d")[k] for k in ("init_features", "growth_rate", "block_config")} == {
        "init_features": 96, "growth_rate": 48, "block_config": (6, 12, 36, 24)}
    model = build("densenet161_2d", in_channels=1, spatial_size=(32, 32))
    assert model.features.conv0.out_channels == 96
    blocks = [getattr(model.features, f"denseblock{i}") for i in range(1, 5)]
    assert [len(b) for b in blocks] == [6, 12, 36, 24]
    assert blocks[0].denselayer1.layers.conv2.out_channels == 48
    assert model.class_layers.out.in_features == 2208  # torchvision densenet161's classifier width


def test_vit_paper_defaults_and_head_without_tanh():
    assert default_params("vit_3d") == {"patch_size": (32, 32, 32), "hidden_size": 2048, "num_layers": 2,
                                        "num_heads": 8, "mlp_dim": 512, "dropout_rate": 0.0}
    assert family("vit_3d").paper_input == (256, 256, 64)
    model = smoke("vit_3d")
    assert not any(isinstance(m, nn.Tanh) for m in model.modules())
    nn.init.constant_(model.classification_head.bias, 5.0)  # a Tanh would cap the logit at 1
    assert (model(batch("vit_3d")[0]) > 1.0).all()
    assert feature_layers(smoke("vit_3d", num_layers=3)) == ["block1", "block2", "block3", "cls"]


def test_efficientnet_default_has_monai_b0_layers():
    from monai.networks.nets import EfficientNetBN

    ours = build("efficientnet_b0_3d", in_channels=1, spatial_size=(32, 32, 16)).state_dict()
    monai = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=3, in_channels=1, num_classes=1)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in monai.state_dict().items()}


def imagenet_style_file(tmp_path, name="resnet18_2d") -> tuple[str, dict[str, torch.Tensor]]:
    """A 3-channel model whose head has 10 classes, saved as a plain state dict."""
    source = smoke(name, in_channels=3)
    source.fc = nn.Linear(source.fc.in_features, 10)
    path = tmp_path / "rgb.pt"
    torch.save(source.state_dict(), path)
    return str(path), source.state_dict()


@pytest.mark.parametrize("channels", [1, 20])
def test_init_from_rgb_file_adapts_first_conv_and_skips_head(tmp_path, channels):
    path, rgb = imagenet_style_file(tmp_path)
    model = smoke("resnet18_2d", in_channels=channels, init=path)
    state = model.state_dict()
    assert torch.equal(state["layer4.1.conv2.weight"], rgb["layer4.1.conv2.weight"])
    assert torch.equal(state["layer2.0.bn1.running_var"], rgb["layer2.0.bn1.running_var"])
    assert state["fc.weight"].shape == (1, 64)
    # A constant image gives the same first-layer response as the RGB filters on a constant RGB image.
    conv = nn.functional.conv2d
    rgb_response = conv(torch.ones(1, 3, 9, 9), rgb["conv1.weight"])
    ours = conv(torch.ones(1, channels, 9, 9), state["conv1.weight"])
    assert torch.allclose(ours, rgb_response, atol=1e-5)
    assert state["conv1.weight"].shape[1] == channels


def test_init_errors_name_the_file_and_the_problem(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match="nope.pt does not exist"):
        smoke("resnet18_2d", init=missing)
    path, _ = imagenet_style_file(tmp_path)
    with pytest.raises(ConfigError, match=r"bn1.weight has shape \(8,\), model \(16,\)"):
        smoke("resnet18_2d", widen_factor=0.25, init=path)  # another width: must not load half a model
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pt cannot be read"):
        smoke("resnet18_2d", init=tmp_path / "junk.pt")


def test_init_reads_torchvision_densenet_names(tmp_path):
    source = smoke("densenet121_2d", in_channels=3).state_dict()
    torchvision_names = {k.replace(".layers.", "."): v for k, v in source.items()}
    assert "features.denseblock1.denselayer1.norm1.weight" in torchvision_names
    torch.save(torchvision_names, tmp_path / "dn.pt")
    model = smoke("densenet121_2d", in_channels=1, init=tmp_path / "dn.pt")
    key = "features.denseblock4.denselayer1.layers.conv2.weight"
    assert torch.equal(model.state_dict()[key], source[key])


def test_fusion_splits_channels_and_loads_both_branches(tmp_path):
    path, rgb = imagenet_style_file(tmp_path)
    model = smoke("fusion_resnet18", in_channels=2, init=path)
    for branch in (model.flair, model.t1wce):
        assert torch.equal(branch.state_dict()["layer3.0.conv1.weight"], rgb["layer3.0.conv1.weight"])
        assert branch.conv1.in_channels == 1
    assert model.fc.in_features == 128 and smoke("fusion_resnet18", mode="add").fc.in_features == 64
    x = batch("fusion_resnet18")[0]
    changed = x.clone()
    changed[:, 1] = torch.randn_like(changed[:, 1])  # the T1wCE half only
    before, after = pooled_features(model, x), pooled_features(model, changed)
    assert torch.equal(before["flair.layer4"], after["flair.layer4"])
    assert not torch.allclose(before["t1wce.layer4"], after["t1wce.layer4"])


def test_feature_taps_are_ordered_shaped_and_leave_no_hooks():
    model = smoke("resnet18_2d")
    assert feature_layers(model) == ["layer1", "layer2", "layer3", "layer4"]
    fusion = feature_layers(smoke("fusion_resnet18"))
    assert fusion[:2] == ["flair.layer1", "t1wce.layer1"] and fusion[-1] == "fused"
    x = batch("resnet18_2d", n=2)[0]
    model.train()
    features = pooled_features(model, x, layers=["layer4", "layer2"])
    assert list(features) == ["layer4", "layer2"]
    assert features["layer2"].shape == (2, 16) and features["layer4"].shape == (2, 64)
    assert model.training and hooks_left(model) == 0
    with pytest.raises(RuntimeError):  # a failing forward still removes the hooks
        pooled_features(model, torch.randn(2, 5, 32, 32))
    assert hooks_left(model) == 0 and model.training
    with pytest.raises(ConfigError, match="layer1, layer2"):
        pooled_features(model, x, layers=["conv9"])
    with pytest.raises(ConfigError, match="no feature taps"):
        feature_layers(nn.Linear(2, 1))


def test_custom_cnn_untrained_output_depends_on_the_input():
    # With PyTorch's default init the 8-conv BatchNorm-free stack gives std ~4e-5 here (a constant).
    torch.manual_seed(0)
    for params in (family("custom_cnn_2d").smoke, {}):
        model = build("custom_cnn_2d", in_channels=2, spatial_size=(32, 32), **params).eval()
        with torch.no_grad():
            assert model(batch("custom_cnn_2d")[0]).std() > 1e-2


def test_custom_cnn_noise_is_active_in_training_only():
    x = batch("custom_cnn_2d", n=2)[0]
    noisy = smoke("custom_cnn_2d", dropout=0.0, noise_std=0.5).train()
    assert not torch.equal(noisy(x), noisy(x))
    assert torch.equal(noisy.eval()(x), noisy(x))
    quiet = smoke("custom_cnn_2d", dropout=0.0, noise_std=0.0).train()
    assert torch.equal(quiet(x), quiet(x))


def test_simclr_pretraining_changes_the_encoder_and_finetune_adapts_to_20_channels():
    def pretrained(seed: int) -> nn.Module:
        torch.manual_seed(0)
        encoder = smoke("simclr_resnet18", in_channels=1).encoder
        slices = torch.rand(8, 32, 32, generator=torch.Generator().manual_seed(2))
        history = pretrain_ssl("simclr", encoder, slices, epochs=1, batch_size=4, lr=1e-3, temperature=0.5, seed=seed)
        assert len(history) == 1 and history[0] > 0
        return encoder

    torch.manual_seed(0)
    initial = {k: v.clone() for k, v in smoke("simclr_resnet18", in_channels=1).encoder.state_dict().items()}
    rng = torch.random.get_rng_state()
    encoder = pretrained(seed=3)
    assert torch.equal(torch.random.get_rng_state(), rng)
    state = encoder.state_dict()
    assert not torch.equal(state["conv1.weight"], initial["conv1.weight"])
    assert not torch.equal(state["layer4.1.conv2.weight"], initial["layer4.1.conv2.weight"])
    assert torch.equal(pretrained(seed=3).state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])

    model = smoke("simclr_resnet18", in_channels=20, encoder_state=state)
    tuned = model.encoder.state_dict()
    assert torch.equal(tuned["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert torch.allclose(tuned["conv1.weight"], state["conv1.weight"].repeat(1, 20, 1, 1) / 20)
    assert model(torch.randn(2, 20, 32, 32)).shape == (2, 1)
    with pytest.raises(ConfigError, match="at least 2 slices"):
        pretrain_ssl("simclr", encoder, torch.rand(1, 32, 32), epochs=1, batch_size=4, lr=1e-3)


@pytest.mark.parametrize(("name", "reference"), [("mobilenet_v2_2d", "mobilenet_v2"), ("resnet101_2d", "resnet101")])
def test_torchvision_families_are_torchvisions_networks_and_load_an_imagenet_file(tmp_path, name, reference):
    """At paper defaults every tensor has torchvision's shape but the first convolution's channels and
    the one-logit head; torchvision's own 3-channel, 1000-class state dict (as an ImageNet .pth
    saved beforehand) loads with the first convolution adapted and the head skipped."""
    import torchvision

    source = getattr(torchvision.models, reference)(weights=None)
    path = tmp_path / f"{reference}.pth"
    torch.save(source.state_dict(), path)
    model = build(name, in_channels=2, spatial_size=(64, 64), init=path)
    ours, theirs = model.state_dict(), source.state_dict()
    head = family(name).head
    assert ours.keys() == theirs.keys()
    differ = {k for k in ours if ours[k].shape != theirs[k].shape}
    first = "features.0.0.weight" if name == "mobilenet_v2_2d" else "conv1.weight"
    assert differ == {first, *(k for k in ours if k.startswith(f"{head}.") and k.endswith("weight")),
                      *(k for k in ours if k.startswith(f"{head}.") and k.endswith("bias"))}
    assert torch.allclose(ours[first], theirs[first].mean(1, keepdim=True).repeat(1, 2, 1, 1) * 1.5)
    for key in (k for k in ours if k not in differ):
        assert torch.equal(ours[key], theirs[key]), key
    assert model(torch.randn(2, 2, 64, 64)).shape == (2, 1)


@pytest.mark.parametrize("method", ["simclr", "byol", "dino", "moco_v3"])
def test_each_ssl_method_trains_the_encoder_reproducibly_and_the_state_initialises_a_classifier(method):
    """lightly's heads and losses behind one call: the headless mobilenet changes, the same seed gives
    the same encoder, the global RNG is left alone, and the state loads into a 3-channel classifier
    (``init``) with the first convolution adapted."""
    from mgmt_audit.models.ssl import METHODS, headless

    assert method in METHODS
    slices = torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(2))

    def pretrained(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        encoder = headless(smoke("mobilenet_v2_2d", in_channels=1), "", "classifier")
        history = pretrain_ssl(method, encoder, slices, epochs=1, batch_size=3, lr=1e-2, seed=seed,
                               projection_dim=16)
        assert len(history) == 1 and np.isfinite(history[0])
        return encoder.state_dict()

    torch.manual_seed(0)
    initial = headless(smoke("mobilenet_v2_2d", in_channels=1), "", "classifier").state_dict()
    rng = torch.random.get_rng_state()
    state = pretrained(seed=3)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert not any(k.startswith("classifier.") for k in state)
    assert not torch.equal(state["features.0.0.weight"], initial["features.0.0.weight"])
    assert torch.equal(pretrained(seed=3)["features.18.0.weight"], state["features.18.0.weight"])
    model = smoke("mobilenet_v2_2d", in_channels=3, init=state)
    assert torch.allclose(model.state_dict()["features.0.0.weight"], state["features.0.0.weight"].repeat(1, 3, 1, 1) / 3)
    with pytest.raises(ConfigError, match="unknown SSL method 'swav'"):
        pretrain_ssl("swav", model, slices, epochs=1, batch_size=3, lr=1e-3)
