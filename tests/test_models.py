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


def test_bad_input_size():
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("vgg_s", input_size=40)
