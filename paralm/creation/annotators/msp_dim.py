"""Arousal / dominance / valence from a wav2vec2 regression model in audEERING's MSP-dim layout.

The checkpoint holds `wav2vec2.*` (a plain Wav2Vec2Model) and a custom head `classifier.*`
(dense -> tanh -> dropout -> out_proj with 3 outputs). transformers has no class for that head, and
its generic loader would quietly re-initialise any head weight the file lacks, so a random regressor
would label the corpus. Here loading is strict: every parameter of the module must come from the
file and every tensor in the file must be used, otherwise `CheckpointMismatch` names the keys.
The head's outputs are, in order, arousal, dominance, valence (`OUTPUT_ORDER`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Config, Wav2Vec2Model, Wav2Vec2PreTrainedModel

from paralm.creation.annotators.base import AnnotatorInput, folder_version, register_annotator, resolve_device
from paralm.creation.annotators.hf_audio import resample_inputs

OUTPUT_ORDER: tuple[str, str, str] = ("arousal", "dominance", "valence")


class CheckpointMismatch(RuntimeError):
    """A checkpoint's tensors do not match the module exactly (missing, unexpected or mis-shaped keys)."""


class RegressionHead(nn.Module):
    """(B, H) pooled states -> (B, 3): dropout -> dense -> tanh -> dropout -> out_proj."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        x = torch.tanh(self.dense(x))
        return self.out_proj(self.dropout(x))


class MspDimModel(Wav2Vec2PreTrainedModel):
    """wav2vec2 encoder + mean pooling over real frames + regression head."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)
        self.post_init()

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) waveform [+ (B, N) mask] -> (B, 3) in OUTPUT_ORDER."""
        hidden = self.wav2vec2(input_values, attention_mask=attention_mask).last_hidden_state  # (B, F, H)
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            frames = self.wav2vec2._get_feature_vector_attention_mask(hidden.shape[1], attention_mask)
            weights = frames.to(hidden.dtype).unsqueeze(-1)  # (B, F, 1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.classifier(pooled)


def load_msp_dim(folder: str | Path) -> MspDimModel:
    """Load `folder` (config.json + safetensors or .bin) with strict key matching; raise CheckpointMismatch."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model folder {folder} has no config.json")
    model, info = MspDimModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    problems = []
    for name in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(name) or [])
        if keys:
            problems.append(f"{name.replace('_', ' ')}: {', '.join(keys)}")
    if problems:
        raise CheckpointMismatch(f"checkpoint {folder} does not match the MSP-dim layout "
                                 f"(refusing to initialise weights at random) - {'; '.join(problems)}")
    if model.config.num_labels != len(OUTPUT_ORDER):
        raise CheckpointMismatch(f"checkpoint {folder} has {model.config.num_labels} outputs; "
                                 f"the MSP-dim head has 3 ({', '.join(OUTPUT_ORDER)})")
    return model


@register_annotator("msp_dim")
class MspDimAnnotator:
    """Arousal, dominance and valence (0..1 scale, clipped; raw values kept when outside)."""

    needs_audio = True

    def __init__(self, id: str, *, device: str = "cpu", model: str = "") -> None:
        """
        Args:
            id: prediction key under labels.pred.
            device: torch device (auto | cpu | cuda).
            model: local folder with config.json, preprocessor_config.json and the weights.
        """
        from transformers import AutoFeatureExtractor

        if not model:
            raise ValueError(f"annotator {id!r} (msp_dim) needs model=<local folder>")
        self.id = id
        self.folder = Path(model)
        self.device = resolve_device(device)
        self.model = load_msp_dim(model).to(self.device).eval()
        self.extractor = AutoFeatureExtractor.from_pretrained(model, local_files_only=True)
        self.sample_rate = int(getattr(self.extractor, "sampling_rate", 16000))
        self.version = folder_version(model)

    def describe(self) -> dict:
        return {"kind": self.kind, "model": str(self.folder), "version": self.version,
                "output_order": list(OUTPUT_ORDER)}

    def predict_raw(self, batch: list[AnnotatorInput]) -> np.ndarray:
        """(B,) clips -> (B, 3) raw head outputs in OUTPUT_ORDER."""
        audio = resample_inputs(batch, self.sample_rate)
        with torch.inference_mode():
            if self.model.config.feat_extract_norm != "layer":
                # group-norm wav2vec2 variants take no attention mask, so padding would leak in: one clip at a time
                return np.stack([self._one(a) for a in audio])
            inputs = self.extractor(audio, sampling_rate=self.sample_rate, padding=True,
                                    return_attention_mask=True, return_tensors="pt")
            out = self.model(inputs["input_values"].to(self.device),
                             attention_mask=inputs["attention_mask"].to(self.device))
        return out.float().cpu().numpy()

    def _one(self, audio: np.ndarray) -> np.ndarray:
        values = self.extractor(audio, sampling_rate=self.sample_rate, return_tensors="pt")["input_values"]
        return self.model(values.to(self.device))[0].float().cpu().numpy()

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        return [{**dict(zip(OUTPUT_ORDER, map(float, row), strict=True)), "version": self.version}
                for row in self.predict_raw(batch)]
