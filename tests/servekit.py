"""A tiny exported model (random weights, built in about a second) and audio clips for the ask / serve /
eval tests; each test module builds its own once (module-scoped fixtures)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from paralm.data.prompts import PromptConfig
from paralm.model import export as export_io
from paralm.model.builders import tiny_speech_lm_config
from paralm.model.speech_lm import SpeechLM
from paralm.prompt_record import prompt_record

MAX_NEW_TOKENS = 6
KEY = "sk-servetest-0123456789abcdef"


PLAIN = PromptConfig()


def tiny_export(folder: Path, prompt: PromptConfig | None = PLAIN) -> Path:
    """An export folder of a tiny random SpeechLM; prompt None writes one without prompt settings."""
    torch.manual_seed(1)
    model = SpeechLM.from_config(tiny_speech_lm_config())
    with torch.no_grad():  # a louder projector: the random model's answers then depend on the audio
        for param in model.projector.parameters():
            param.mul_(5.0)
    export_io.write(model, folder, prompt=None if prompt is None else prompt_record(prompt, []))
    (Path(folder) / "export_info.json").write_text(json.dumps({"global_step": 0}))
    return Path(folder)


def write_clips(folder: Path, n: int = 4) -> list[Path]:
    """WAV clips of different lengths, loudness, rates and channel counts (so answers differ)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        rate = (16000, 22050, 8000, 44100)[i % 4]
        wave = (0.1 * (1 + 2 * i) * rng.standard_normal(int(rate * (0.8 + 0.3 * i)))).astype(np.float32)
        if i % 2:
            wave = np.stack([wave, 0.5 * wave], axis=1)  # stereo: averaged to mono as the data path does
        path = folder / f"clip{i}.wav"
        sf.write(path, wave, rate)
        out.append(path)
    return out


def audio_message(data: bytes, question: str = "How does the speaker sound?", fmt: str = "wav") -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "text", "text": question},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt}}]}]
