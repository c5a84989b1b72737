"""The default U-Net (heads, shapes, gradients) and the model registry (build_model, as_heads)."""

import subprocess
import sys
import textwrap

import pytest
import torch
from monai.networks.nets import DynUNet
from torch import nn
from torch.nn import functional as F

from rsuper.model.registry import DEFAULT_MODEL_SPEC, ModelSpecError, as_heads, build_model, count_parameters
from rsuper.model.unet import UNet3D

SMALL = (4, 8, 16, 32)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_unet_train_mode_returns_final_and_deep_supervision_heads_at_full_size():
    model = UNet3D(in_channels=2, out_channels=3, features=SMALL, deep_supervision=2).train()
    heads = model(torch.randn(2, 2, 32, 16, 24))
    assert len(heads) == 3
    assert all(h.shape == (2, 3, 32, 16, 24) for h in heads)


def test_unet_eval_mode_and_no_deep_supervision_return_one_head():
    x = torch.randn(1, 1, 16, 16, 16)
    model = UNet3D(out_channels=2, features=SMALL, deep_supervision=1).eval()
    with torch.no_grad():
        heads = model(x)
    assert len(heads) == 1 and heads[0].shape == (1, 2, 16, 16, 16)
    plain = UNet3D(out_channels=2, features=SMALL, deep_supervision=0).train()
    assert len(plain(x)) == 1
    assert not hasattr(plain.net, "deep_supervision_heads")


def test_unet_eval_final_head_equals_train_final_head():
    model = UNet3D(out_channels=2, features=SMALL, deep_supervision=1)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        train_final = model.train()(x)[0]
        eval_final = model.eval()(x)[0]
    torch.testing.assert_close(train_final, eval_final)  # no dropout / batch statistics in play


def test_unet_deep_supervision_heads_are_trilinear_upsampling_of_coarser_decoder_levels():
    model = UNet3D(out_channels=2, features=SMALL, deep_supervision=2).train()
    low_res = {}
    for k, head in enumerate(model.net.deep_supervision_heads):
        head.register_forward_hook(lambda m, i, out, k=k: low_res.__setitem__(k, out))
    heads = model(torch.randn(1, 1, 32, 32, 16))
    assert low_res[0].shape[2:] == (16, 16, 8) and low_res[1].shape[2:] == (8, 8, 4)
    for k in (0, 1):
        expected = F.interpolate(low_res[k], size=(32, 32, 16), mode="trilinear", align_corners=False)
        torch.testing.assert_close(heads[k + 1], expected)


def test_unet_gradient_reaches_every_head_and_the_encoder():
    model = UNet3D(out_channels=2, features=SMALL, deep_supervision=2).train()
    out_convs = [model.net.output_block] + list(model.net.deep_supervision_heads)
    first_conv = next(p for p in model.net.input_block.parameters() if p.ndim == 5)
    for k in range(3):
        model.zero_grad(set_to_none=True)
        heads = model(torch.randn(1, 1, 16, 16, 16))
        (heads[k] ** 2).mean().backward()
        for j, conv in enumerate(out_convs):
            grad = next(conv.parameters()).grad
            if j == k:
                assert grad is not None and grad.abs().sum() > 0
            else:
                assert grad is None or grad.abs().sum() == 0
        assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_unet_rejects_indivisible_sizes_and_bad_settings():
    model = UNet3D(features=SMALL)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 1, 16, 12, 16))
    with pytest.raises(ValueError, match=r"\(B, C, X, Y, Z\)"):
        model(torch.randn(1, 16, 16, 16))
    with pytest.raises(ValueError, match="deep_supervision"):
        UNet3D(features=SMALL, deep_supervision=3)
    with pytest.raises(ValueError, match="3 levels"):
        UNet3D(features=(4, 8))


def test_unet_holds_no_tensors_between_calls_so_it_can_be_deep_copied():
    import copy

    model = UNet3D(out_channels=2, features=SMALL, deep_supervision=1).train()
    model(torch.randn(1, 1, 16, 16, 16))
    clone = copy.deepcopy(model)  # fails on non-leaf tensors kept from the forward pass
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)


def test_build_model_default_spec_injects_channels():
    model = build_model({**DEFAULT_MODEL_SPEC, "kwargs": {"features": SMALL}}, in_channels=1, out_channels=5)
    assert isinstance(model, UNet3D)
    assert model(torch.randn(1, 1, 16, 16, 16))[0].shape[1] == 5


def test_build_model_accepts_dotted_path_of_a_monai_class():
    spec = {"class": "monai.networks.nets.BasicUNet", "kwargs": {"spatial_dims": 3, "features": (4, 4, 8, 8, 16, 4)}}
    model = build_model(spec, in_channels=1, out_channels=3)
    out = as_heads(model(torch.randn(1, 1, 32, 16, 16)))
    assert len(out) == 1 and out[0].shape == (1, 3, 32, 16, 16)


def test_monai_segresnetds_deep_supervision_list_becomes_full_size_heads():
    spec = {"class": "monai.networks.nets.SegResNetDS", "kwargs": {"init_filters": 4, "dsdepth": 2, "norm": "instance"}}
    model = build_model(spec, in_channels=1, out_channels=2).train()
    raw = model(torch.randn(1, 1, 16, 16, 16))
    assert [tuple(t.shape[2:]) for t in raw] == [(16, 16, 16), (8, 8, 8)]
    heads = as_heads(raw)
    assert [h.shape for h in heads] == [(1, 2, 16, 16, 16)] * 2
    assert heads[0] is raw[0]


USER_MODULE = textwrap.dedent(
    '''
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self, in_channels, out_channels, width=3):
            super().__init__()
            self.conv = nn.Conv3d(in_channels, width, 3, padding=1)
            self.head = nn.Conv3d(width, out_channels, 1)
            self.aux = nn.Conv3d(width, out_channels, 1)

        def forward(self, x):
            f = torch.relu(self.conv(x))
            return {"segmentation": [self.head(f), self.aux(f[:, :, ::2, ::2, ::2])]}

    def not_a_module(in_channels, out_channels):
        return 42
    '''
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "rsuper_test_user_net.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "rsuper_test_user_net.py"
    sys.modules.pop("rsuper_test_user_net", None)


@pytest.mark.parametrize("form", ["colon", "dot", "file"])
def test_build_model_loads_a_user_module_by_module_path_or_file(user_module, form):
    target = {
        "colon": "rsuper_test_user_net:TinyNet",
        "dot": "rsuper_test_user_net.TinyNet",
        "file": f"{user_module}:TinyNet",
    }[form]
    model = build_model({"class": target, "kwargs": {"width": 5}}, in_channels=2, out_channels=4)
    assert model.conv.out_channels == 5 and model.conv.in_channels == 2
    heads = as_heads(model(torch.randn(1, 2, 8, 8, 8)))
    assert [h.shape for h in heads] == [(1, 4, 8, 8, 8)] * 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"class": "no_such_package_xyz.Net"}, "cannot import module 'no_such_package_xyz'"),
        ({"class": "rsuper_test_user_net:Missing"}, "has no attribute 'Missing'"),
        ({"class": "TinyNet"}, "not of the form"),
        ({"class": "/no/such/file.py:Net"}, "does not exist"),
        ({"kwargs": {}}, "needs a 'class' key"),
        ({"class": "rsuper_test_user_net:TinyNet", "kwrgs": {}}, "unknown model spec keys"),
        ({"class": "rsuper_test_user_net:TinyNet", "kwargs": {"out_channels": 2}}, "must not set"),
        ({"class": "rsuper_test_user_net:TinyNet", "kwargs": {"depth": 2}}, "cannot build"),
        ({"class": "rsuper_test_user_net:not_a_module"}, "not a torch.nn.Module"),
    ],
)
def test_build_model_errors_are_clear(user_module, spec, message):
    with pytest.raises(ModelSpecError, match=message):
        build_model(spec, in_channels=1, out_channels=2)


def test_as_heads_accepts_tensor_list_tuple_and_dict():
    a, b = torch.randn(2, 3, 8, 8, 8), torch.randn(2, 3, 8, 8, 8)
    assert as_heads(a)[0] is a
    for form in ([a, b], (a, b), {"segmentation": [a, b]}, {"segmentation": a, "other": 1}):
        heads = as_heads(form)
        assert heads[0] is a
    assert as_heads((a, b))[1] is b


def test_as_heads_unstacks_monai_dynunet_deep_supervision_output():
    net = DynUNet(3, 1, 2, [3, 3, 3], [1, 2, 2], [2, 2], filters=[4, 8, 16], deep_supervision=True).train()
    stacked = net(torch.randn(2, 1, 16, 16, 16))
    assert stacked.shape == (2, 2, 2, 16, 16, 16)
    heads = as_heads(stacked)
    assert len(heads) == 2 and all(h.shape == (2, 2, 16, 16, 16) for h in heads)
    assert torch.equal(heads[1], stacked[:, 1])


def test_as_heads_upsamples_smaller_heads_trilinearly():
    final, coarse = torch.randn(1, 2, 16, 8, 12), torch.randn(1, 2, 4, 2, 3)
    heads = as_heads([final, coarse])
    assert heads[1].shape == final.shape
    torch.testing.assert_close(heads[1], F.interpolate(coarse, size=(16, 8, 12), mode="trilinear"))


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("logits", TypeError),
        ([], TypeError),
        ({"seg": torch.zeros(1, 1, 2, 2, 2)}, TypeError),
        (torch.zeros(1, 2, 8, 8), ValueError),
        ([torch.zeros(1, 2, 8, 8, 8), torch.zeros(1, 3, 8, 8, 8)], ValueError),
        ([torch.zeros(1, 2, 8, 8, 8), torch.zeros(1, 2, 16, 8, 8)], ValueError),
    ],
)
def test_as_heads_rejects_unsupported_outputs(output, error):
    with pytest.raises(error):
        as_heads(output)


def test_count_parameters_counts_trainable_scalars():
    model = nn.Sequential(nn.Conv3d(1, 2, 3), nn.Conv3d(2, 1, 1))
    assert count_parameters(model) == (2 * 27 + 2) + (2 + 1)
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 2 + 3
    assert count_parameters(model, trainable_only=False) == 56 + 3


def test_model_package_does_not_import_torch_until_a_name_is_used():
    code = "import sys, rsuper.model; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    import rsuper.model

    assert rsuper.model.UNet3D is UNet3D and rsuper.model.build_model is build_model
    with pytest.raises(AttributeError):
        rsuper.model.NoSuchName


def test_output_biases_start_at_the_prior() -> None:
    torch.manual_seed(0)
    model = UNet3D(out_channels=3, features=(4, 8, 16), deep_supervision=1, prior_probability=0.02).train()
    logit = torch.log(torch.tensor(0.02 / 0.98))
    convs = [model.net.output_block.conv.conv, *(h.conv.conv for h in model.net.deep_supervision_heads)]
    assert len(convs) == 2
    for conv in convs:
        assert torch.allclose(conv.bias, logit.expand_as(conv.bias))
    for head in model(torch.randn(1, 1, 16, 16, 16)):
        assert torch.sigmoid(head).mean().item() < 0.1
    plain = UNet3D(out_channels=3, features=(4, 8, 16), prior_probability=None).train()
    assert abs(torch.sigmoid(plain(torch.randn(1, 1, 16, 16, 16))[0]).mean().item() - 0.5) < 0.2
    with pytest.raises(ValueError, match="prior_probability"):
        UNet3D(out_channels=1, features=(4, 8, 16), prior_probability=1.0)
