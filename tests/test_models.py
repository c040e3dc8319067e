import pytest
import torch

from ferkit.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("num_classes", [7, 3])
def test_every_model_shapes_finite_and_gradients(name, num_classes):
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_chans=1)
    images = torch.randn(4, 1, 48, 48)  # (B, C, H, W)
    logits = model(images)
    assert logits.shape == (4, num_classes)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"
    model.eval()
    with torch.no_grad():
        assert model(images[:1]).shape == (1, num_classes)


def test_unknown_model_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'vgg'"):
        create_model("vggg")


def test_input_sizes_that_do_not_halve_evenly():
    # pooling rounds up: 40 -> 20 -> 10 -> 5 -> 3, the same 3x3 head as at 48 px
    small, full = create_model("vgg_s", input_size=40), create_model("vgg_s")
    assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in full.parameters())
    with torch.no_grad():
        assert small.eval()(torch.zeros(2, 1, 40, 40)).shape == (2, 7)
    with pytest.raises(ValueError, match="at least 16"):
        create_model("vgg_s", input_size=8)
    with pytest.raises(ValueError, match="crop 60 must be between"):
        create_model("vgg_s", crop=60)
    with pytest.raises(ValueError, match="'dcnn'.*crop"):
        create_model("dcnn", crop=40)


def test_a_cropping_model_classifies_the_centre_of_larger_inputs():
    torch.manual_seed(0)
    model = create_model("vgg_s", crop=40).eval()
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        centre = model(x)
        assert torch.allclose(centre, model(x[:, :, 4:44, 4:44]))
        assert not torch.allclose(centre, model(x[:, :, :40, :40]), atol=1e-3)
