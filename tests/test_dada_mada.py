"""DADA as its released code defines it (Ren et al., AAAI 2024; github.com/Noahsark/DADA,
criteria/dadaproxy.py) and MADA's per-discriminator weight, against computations written
independently in numpy from the released formulas."""

import numpy as np
import pytest
import torch

from boomda import TrainConfig
from boomda.methods import Batch, build_method
from boomda.methods.dada import (
    CategoryDiscriminator,
    DADAOptions,
    UnitDiscriminator,
    class_consistent_pairs,
    dada_terms,
)
from boomda.nn.net import MultimodalNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ----------------------------------------------------------------- numpy versions of the release


def _np_normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _np_batchnorm(x, bn):
    """Training-mode batch norm: the batch's mean and biased variance."""
    mean, var = x.mean(0), x.var(0)
    return (x - mean) / np.sqrt(var + bn.eps) * bn.weight.detach().numpy() \
        + bn.bias.detach().numpy()


def _np_linear(x, layer):
    return x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()


def _np_unit(x, unit):
    """Uni_Predictor with fd2_bn: fc1 -> bn1 -> relu -> fc2 -> bn2."""
    h = np.maximum(_np_batchnorm(_np_linear(x, unit[0]), unit[1]), 0)
    return _np_batchnorm(_np_linear(h, unit[3]), unit[4])


def _np_category(x, cat):
    """Dis_Predictor without fc2_bn, dropout 0: fc1 -> bn1 -> relu -> fc2 -> bn2 -> relu -> fc3."""
    h = np.maximum(_np_batchnorm(_np_linear(x, cat[0]), cat[1]), 0)
    h = np.maximum(_np_batchnorm(_np_linear(h, cat[4]), cat[5]), 0)
    return _np_linear(h, cat[8])


def _np_softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _np_ce(logits, labels):
    p = _np_softmax(logits)
    return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))


def _release_terms(zs, zt, y, src, tgt, m, unit, cat, form):
    """The release's compute_unit_discriminator, and compute_dis_discriminator's s_loss / 2 and
    dis_loss / d_discrepancy_ratio, with samples -> source, proxies -> target."""
    mixed = (1 - m) * zs[src] + m * zt[tgt]  # mixup(t1, t2), mode random, shift_scale 1
    zs, zt, mixed = _np_normalize(zs), _np_normalize(zt), _np_normalize(mixed)
    domain = (_np_ce(_np_unit(zs, unit), np.zeros(len(zs), int))
              + _np_ce(_np_unit(mixed, unit), np.ones(len(mixed), int))
              + _np_ce(_np_unit(zt, unit), np.full(len(zt), 2)))
    source_ce = _np_ce(_np_category(zs, cat), y)
    ps = _np_softmax(_np_category(zs[src], cat))
    pm = _np_softmax(_np_category(mixed, cat))
    if form == "nwd":
        disc = (np.linalg.norm(ps, "nuc") - np.linalg.norm(pm, "nuc")) / len(ps)
    else:
        disc = np.mean(np.abs(ps - pm))
    return domain, source_ce, disc


# ----------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("form", ["nwd", "l1"])
def test_dada_terms_equal_the_released_formulas(form):
    gen = torch.Generator().manual_seed(0)
    d, n_classes = 6, 3
    zs = torch.randn(8, d, generator=gen, dtype=torch.float64)
    zt = torch.randn(7, d, generator=gen, dtype=torch.float64) + 0.5
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    src = torch.tensor([0, 1, 3, 4, 6, 7])
    tgt = torch.tensor([2, 5, 2, 0, 6, 5])
    m = 0.3
    unit = UnitDiscriminator(d, 5).double()
    cat = CategoryDiscriminator(d, n_classes, (5, 4), dropout=0.0).double()
    for module in (unit, cat):  # non-trivial batch-norm affine parameters
        for p in module.parameters():
            if p.ndim == 1:
                p.data.uniform_(0.5, 1.5, generator=gen)
    options = DADAOptions(discrepancy=form)
    domain, source_ce, disc = dada_terms(zs, zt, y, src, tgt, m, unit, cat, lambda z: z,
                                         options)
    want = _release_terms(zs.numpy(), zt.numpy(), y.numpy(), src.numpy(), tgt.numpy(), m,
                          unit, cat, form)
    assert domain.item() == pytest.approx(want[0], rel=1e-10)
    assert source_ce.item() == pytest.approx(want[1], rel=1e-10)
    assert disc.item() == pytest.approx(want[2], rel=1e-10, abs=1e-14)


def test_class_consistent_pairing_on_a_constructed_batch():
    labels = torch.tensor([0, 0, 1, 2, 2, 3])
    predicted = torch.tensor([1, 0, 0, 2, 1])  # no target row is predicted class 3
    counts = np.zeros((6, 5))
    for seed in range(400):
        src, tgt = class_consistent_pairs(labels, predicted,
                                          torch.Generator().manual_seed(seed))
        assert src.tolist() == [0, 1, 2, 3, 4]  # source order; row 5 (class 3) left out
        assert (predicted[tgt] == labels[src]).all()
        counts[src.numpy(), tgt.numpy()] += 1
    # class 0 rows draw uniformly from target rows {1, 2}; class 1 from {0, 4}; class 2 only 3
    for row, choices in ((0, [1, 2]), (1, [1, 2]), (2, [0, 4])):
        share = counts[row, choices] / 400
        assert share.sum() == 1 and abs(share[0] - 0.5) < 0.1
    assert counts[3, 3] == counts[4, 3] == 400
    empty = class_consistent_pairs(torch.tensor([0, 1]), torch.tensor([2, 2]))
    assert empty[0].numel() == empty[1].numel() == 0


def _net(n_classes=3):
    return MultimodalNet({"a": 5, "b": 4}, n_classes, dim=8, hidden=16)


def _batch(seed=0, n=12, n_classes=3):
    gen = torch.Generator().manual_seed(seed)
    xs = {"a": torch.randn(n, 5, generator=gen), "b": torch.randn(n, 4, generator=gen)}
    xt = {"a": torch.randn(n, 5, generator=gen) + 1, "b": torch.randn(n, 4, generator=gen)}
    return Batch(xs, torch.arange(n) % n_classes), Batch(xt)


def test_dada_weights_are_the_released_ones():
    options = {"ratio": 0.05, "discrepancy_ratio": 0.5, "trade_off": 2.0}
    method = build_method("dada", _net(), TrainConfig(method="dada", options=options))
    out = method.loss_terms(*_batch(), progress=0.5)
    # (1 - r) L_dom + 2 r L_cat + r rho D, all times trade_off
    assert out.weights == pytest.approx({"ib": 1.0, "domain": 2.0 * 0.95,
                                         "category": 2.0 * 0.1, "discrepancy": 2.0 * 0.025})
    assert out.terms["domain"].item() > 0 and out.terms["category"].item() > 0


def test_dada_discriminators_and_encoders_play_the_discrepancy_min_max():
    """The category discriminator descends -D (it maximises D); the encoders, behind the
    reversal, descend D."""
    torch.manual_seed(0)
    config = TrainConfig(method="dada", options={"grl": "constant", "dropout": 0.0})
    method = build_method("dada", _net(), config)
    source, target = _batch(1)
    torch.manual_seed(5)
    out = method.loss_terms(source, target, progress=0.5)
    discrepancy = out.terms["discrepancy"]  # -D
    params = [p for p in method.category.parameters()]
    encoder = [p for p in method.net.encoders.parameters()]
    g_cat = torch.autograd.grad(discrepancy, params, retain_graph=True, allow_unused=True)
    g_enc = torch.autograd.grad(discrepancy, encoder, retain_graph=True, allow_unused=True)
    # the same D without reversal: its gradients on the encoders have the opposite sign
    torch.manual_seed(5)
    method.grl.max_coeff = -1.0  # a reversal of -1 is the identity's gradient
    out_plain = method.loss_terms(source, target, progress=0.5)
    g_cat_plain = torch.autograd.grad(out_plain.terms["discrepancy"], params,
                                      allow_unused=True, retain_graph=True)
    g_enc_plain = torch.autograd.grad(out_plain.terms["discrepancy"], encoder,
                                      allow_unused=True)
    assert abs(discrepancy.item()) > 0
    for a, b in zip(g_cat, g_cat_plain, strict=True):
        if a is not None:
            assert torch.allclose(a, b, atol=1e-7)
    flipped = [(a, b) for a, b in zip(g_enc, g_enc_plain, strict=True)
               if a is not None and b.abs().max() > 1e-9]
    assert flipped
    for a, b in flipped:
        assert torch.allclose(a, -b, atol=1e-7)


def test_mada_class_weight_scales_the_domain_term():
    torch.manual_seed(0)
    one = build_method("mada", _net(), TrainConfig(method="mada"))
    released = build_method("mada", _net(), TrainConfig(method="mada",
                                                         options={"class_weight": 0.3}))
    released.load_state_dict(one.state_dict())
    one.eval(), released.eval()  # no dropout: the same terms
    a = one.loss_terms(*_batch(2), progress=0.5)
    b = released.loss_terms(*_batch(2), progress=0.5)
    assert a.terms["domain"].item() == pytest.approx(b.terms["domain"].item(), rel=1e-12)
    assert a.weights["domain"] == 1.0 and b.weights["domain"] == pytest.approx(0.3)
    with pytest.raises(Exception, match="class_weight"):
        build_method("mada", _net(), TrainConfig(method="mada", options={"class_weight": -1}))
