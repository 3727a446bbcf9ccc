"""Pretrained backbones from ``transformers``, with only their last k transformer layers trained.

The paper (Sun et al., AAAI 2026, Sec. 4) encodes audio with WavLM, frames with APViT and text
with BERT-base, fine-tuning the last 3 layers of each and freezing the rest. Here a backbone is a
``transformers`` model loaded from a local folder (a hub model id is fetched into the Hugging Face
cache and resolved to its snapshot folder first, :mod:`boomda.nn.hub`): a speech model of the
WavLM / wav2vec2 / HuBERT families, a BERT-family text model, or ViT applied to every frame
(APViT is not in ``transformers``).

The forward pass is split in two at layer ``N - k`` (N layers, k trainable):

- :meth:`PretrainedBackbone.frozen_forward`: embeddings (feature extractor for speech) and the
  first N - k layers, always in eval mode and without gradients, so its output depends only on
  the input and can be cached;
- :meth:`PretrainedBackbone.trainable_forward`: the last k layers and the model's final norm.

``forward`` chains the two. The split needs the layer call of each family, so it is implemented
for the model types in :data:`FAMILIES` (tested against the models' own forward).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Container
from typing import Any, NamedTuple

import torch
from torch import nn

from boomda.errors import ConfigError, DataError

KINDS = ("speech", "text", "image")

#: ``config.model_type`` -> family (how :meth:`PretrainedBackbone.trainable_forward` runs layers)
FAMILIES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "vit": "vit",
    "wavlm": "wavlm",
    "wav2vec2": "wav2vec2",
    "hubert": "wav2vec2",
}
_KIND_OF_FAMILY = {"bert": "text", "vit": "image", "wavlm": "speech", "wav2vec2": "speech"}

#: attribute paths tried, in order, to find the list of transformer layers
LAYER_PATHS = ("encoder.layer", "encoder.layers", "layers", "layer")


class BackboneStates(NamedTuple):
    """Hidden states (B, T, H) (image: (B, F, P + 1, H) before, (B, F, H) after the trainable
    part) and the mask of real steps (B, T) bool, ``None`` when nothing is padded."""

    hidden: torch.Tensor
    mask: torch.Tensor | None


class _Stop(Exception):
    """Raised by the hook that captures the input of the first trainable layer."""


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("pretrained backbones need the optional package 'transformers': "
                          "pip install transformers") from None
    return transformers


def find_layers(model: nn.Module) -> str:
    """The attribute path of the model's transformer layers: the first of :data:`LAYER_PATHS`
    that is an ``nn.ModuleList`` of ``config.num_hidden_layers`` modules."""
    expected = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for path in LAYER_PATHS:
        obj = _get_path(model, path)
        if isinstance(obj, nn.ModuleList) and (expected is None or len(obj) == expected):
            return path
    raise ConfigError(f"cannot find the transformer layers of {type(model).__name__}: none of "
                      f"{', '.join('model.' + p for p in LAYER_PATHS)} is a list of "
                      f"{expected} layers")


def _get_path(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name, None)
    return obj


class PretrainedBackbone(nn.Module):
    """A ``transformers`` model of one :data:`KINDS` with the last ``trainable_layers`` layers
    trainable and everything else frozen (``requires_grad=False`` and always in eval mode).

    Inputs of :meth:`forward` / :meth:`frozen_forward` by kind:

    - speech: waveforms (B, S) float at the model's rate (16 kHz), zero-padded, and a mask
      (B, S) of real samples; output (B, T', H) over the T' feature frames and their mask
      (the mask is passed to the model, as WavLM expects; ``None`` for an unpadded batch);
    - text: token ids (B, L) and the attention mask (B, L); output (B, L, H);
    - image: pixel values (B, F, 3, H_img, W_img) of F frames; output the per-frame CLS
      embeddings (B, F, H), mask ``None``.
    """

    def __init__(
        self,
        model: nn.Module,
        kind: str | None = None,
        trainable_layers: int = 3,
        source: str = "",
    ) -> None:
        super().__init__()
        config = model.config
        model_type = getattr(config, "model_type", "")
        if model_type not in FAMILIES:
            raise ConfigError(f"backbone model_type {model_type!r} is not supported; supported: "
                              f"{', '.join(FAMILIES)}")
        self.family = FAMILIES[model_type]
        natural = _KIND_OF_FAMILY[self.family]
        if kind is None:
            kind = natural
        if kind not in KINDS:
            raise ConfigError(f"backbone kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind != natural:
            raise ConfigError(f"a {model_type!r} model is a {natural} backbone, not {kind!r}")
        if self.family in ("wavlm", "wav2vec2") and getattr(config, "add_adapter", False):
            raise ConfigError(f"speech backbones with an adapter (config.add_adapter) are not "
                              f"supported ({model_type!r})")
        self.kind = kind
        # a transformers model: its attributes (config, encoder, ...) depend on its family
        self.model: Any = model
        self.source = source or str(getattr(config, "name_or_path", "") or model_type)
        self.layer_path = find_layers(model)
        self.trainable_layers = 0
        self.freeze_except_last(trainable_layers)

    @classmethod
    def from_pretrained(
        cls, path_or_name: str, kind: str | None = None, trainable_layers: int = 3
    ) -> PretrainedBackbone:
        """Load with ``AutoModel.from_pretrained(path_or_name, local_files_only=True)``: a local
        folder (``config.json`` and weights) or a model already in the local Hugging Face cache.
        A hub model id is fetched first by :func:`boomda.nn.hub.resolve_backbone`, which gives
        the folder to load.
        """
        transformers = _transformers()
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()
        try:
            model = transformers.AutoModel.from_pretrained(path_or_name, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot load the backbone {path_or_name!r} from local files "
                              f"(a folder holding config.json and the weights): {error}") \
                from None
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        return cls(model, kind, trainable_layers, source=str(path_or_name))

    @classmethod
    def from_config(
        cls, config: Any, kind: str | None = None, trainable_layers: int = 3
    ) -> PretrainedBackbone:
        """A randomly initialised model from a ``transformers`` config (for tests)."""
        transformers = _transformers()
        return cls(transformers.AutoModel.from_config(config), kind, trainable_layers)

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers (``model.<layer_path>``), first to last."""
        return _get_path(self.model, self.layer_path)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def split(self) -> int:
        """Index of the first trainable layer, ``N - k``."""
        return self.n_layers - self.trainable_layers

    def freeze_except_last(self, k: int) -> None:
        """Make exactly the last ``k`` transformer layers trainable and freeze everything else
        (embeddings, feature extractor, earlier layers, final norms, pooler)."""
        if not (isinstance(k, int) and 0 <= k <= self.n_layers):
            raise ConfigError(f"trainable_layers must be an integer in 0..{self.n_layers} for "
                              f"{self.source}, got {k!r}")
        self.model.requires_grad_(False)
        for layer in self.layers[self.n_layers - k :]:
            layer.requires_grad_(True)
        self.trainable_layers = k
        self.train(self.training)

    def train(self, mode: bool = True) -> PretrainedBackbone:
        """Train mode reaches the trainable layers only; the frozen part stays in eval mode
        (no dropout, no SpecAugment or LayerDrop), which makes its output cacheable."""
        super().train(mode)
        self.model.eval()
        for layer in self.layers[self.split :]:
            layer.train(mode)
        return self

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> BackboneStates:
        frozen = self.frozen_forward(inputs, mask)
        return BackboneStates(self.trainable_forward(frozen.hidden, frozen.mask), frozen.mask)

    @torch.no_grad()
    def frozen_forward(
        self, inputs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> BackboneStates:
        """The frozen part: hidden states entering layer ``N - k`` (all layers when k = 0)."""
        if self.kind == "speech":
            if inputs.dim() != 2:
                raise DataError(f"speech backbone: expected waveforms (batch, samples), got "
                                f"{tuple(inputs.shape)}")
            wave_mask = None if mask is None else mask.to(torch.long)
            hidden = self._run_frozen(input_values=inputs, attention_mask=wave_mask)
            frames = None
            if wave_mask is not None:
                frames = self.model._get_feature_vector_attention_mask(hidden.shape[1], wave_mask)
            return BackboneStates(hidden, frames)
        if self.kind == "text":
            if inputs.dim() != 2:
                raise DataError(f"text backbone: expected token ids (batch, length), got "
                                f"{tuple(inputs.shape)}")
            hidden = self._run_frozen(input_ids=inputs, attention_mask=mask)
            return BackboneStates(hidden, None if mask is None else mask.bool())
        if inputs.dim() != 5:
            raise DataError(f"image backbone: expected pixels (batch, frames, 3, height, width), "
                            f"got {tuple(inputs.shape)}")
        b, f = inputs.shape[:2]
        hidden = self._run_frozen(pixel_values=inputs.flatten(0, 1))
        return BackboneStates(hidden.unflatten(0, (b, f)), None)

    def trainable_forward(
        self, hidden: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The last k layers (and the final norm) on the output of :meth:`frozen_forward`.

        ``mask`` is the mask that :meth:`frozen_forward` returned. Speech and text give
        (B, T, H); image gives the per-frame CLS embeddings (B, F, H).
        """
        image = self.kind == "image"
        h = hidden.flatten(0, 1) if image else hidden
        if self.trainable_layers > 0:
            h = self._run_trainable(h, mask)
        return h[:, 0].unflatten(0, hidden.shape[:2]) if image else h

    def fingerprint(self) -> str:
        """SHA-256 of what the frozen part's output depends on: the model type, its config, the
        split point and the values of every frozen parameter and buffer. A cache of
        :meth:`frozen_forward` outputs keyed on it is invalidated when any of them changes."""
        digest = hashlib.sha256()
        config = self.model.config.to_dict()
        digest.update(json.dumps([self.family, self.split, config], sort_keys=True,
                                 default=str).encode())
        trainable = {id(p) for p in self.layers[self.split :].parameters()}
        _hash_tensors(digest, self.model, skip=trainable)
        return digest.hexdigest()

    def weights_fingerprint(self) -> str:
        """SHA-256 of the whole model: its model type, config and the values of every parameter
        and buffer, trainable or not. Computed on the weights as loaded, it names exactly which
        weights a run started from, whatever folder or hub revision they came from."""
        digest = hashlib.sha256()
        config = {k: v for k, v in self.model.config.to_dict().items()
                  if k not in ("_name_or_path", "transformers_version")}  # not the model's
        digest.update(json.dumps([getattr(self.model.config, "model_type", ""), config],
                                 sort_keys=True, default=str).encode())
        _hash_tensors(digest, self.model)
        return digest.hexdigest()

    def _run_frozen(self, **inputs: torch.Tensor | None) -> torch.Tensor:
        if self.split == self.n_layers:
            return self.model(**inputs).last_hidden_state
        captured: list[torch.Tensor] = []

        def capture(module: nn.Module, args: tuple, kwargs: dict) -> None:
            captured.append(args[0] if args else kwargs["hidden_states"])
            raise _Stop

        handle = self.layers[self.split].register_forward_pre_hook(capture, with_kwargs=True)
        try:
            self.model(**inputs)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"{self.source}: layer {self.split} was never called")
        return captured[0].detach()

    def _run_trainable(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        layers = self.layers[self.split :]
        config = self.model.config
        if self.family == "vit":
            for layer in layers:
                h = _first(layer(h, None))
            return self.model.layernorm(h)
        if self.family == "wavlm":
            # the relative position bias is computed by layer 0 and shared by all layers
            b, t = h.shape[:2]
            first: Any = self.layers[0]
            bias = first.attention.compute_bias(t, t)
            bias = bias.unsqueeze(0).repeat(b, 1, 1, 1).view(b * bias.shape[0], t, t)
            stable = config.do_stable_layer_norm
            with warnings.catch_warnings():
                # WavLM's attention mixes a bool padding mask with a float bias (torch warns)
                warnings.filterwarnings("ignore", message="Support for mismatched key_padding")
                for i, layer in enumerate(layers, start=self.split):
                    extra = {} if stable else {"index": i}
                    h, bias = layer(h, attention_mask=mask, position_bias=bias, **extra)
            return self.model.encoder.layer_norm(h) if stable else h
        from transformers.masking_utils import create_bidirectional_mask

        attention = create_bidirectional_mask(config=config, inputs_embeds=h, attention_mask=mask)
        for layer in layers:
            h = _first(layer(h, attention_mask=attention))
        if self.family == "wav2vec2" and config.do_stable_layer_norm:
            h = self.model.encoder.layer_norm(h)
        return h


def _hash_tensors(digest: Any, model: nn.Module, skip: Container[int] = ()) -> None:
    """Feed the name and bytes of every parameter and buffer of ``model`` (those whose ``id`` is
    not in ``skip``) to ``digest``."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if id(tensor) in skip:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())


def _first(output: torch.Tensor | tuple) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def load_tokenizer(path_or_name: str):
    """``AutoTokenizer.from_pretrained(path_or_name, local_files_only=True)`` with a clear error."""
    transformers = _transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(path_or_name, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load the tokenizer {path_or_name!r} from local files: "
                          f"{error}") from None
