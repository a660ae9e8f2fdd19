"""Clips and a scripted generator reply for the generation tests (creation, cli, project, serve folders).

`clip_metas` gives clips with distinct transcripts and gold + predicted labels, `write_clips` packs them
with short noise FLACs, `scripted_reply` answers a generation request like an LLM would (valid pairs plus
one pair per filter trap).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from paralm.data.schema import EMOTIONS
from paralm.data.shards import write_shards

SENTENCES = ["I got the job today", "We missed the last train home", "Nobody told me about the meeting",
             "The package arrives on Monday", "I heard a noise downstairs", "You finished the whole marathon?",
             "The soup tastes like old socks", "My sister is moving to Canada", "They cancelled the concert again",
             "I found my keys in the fridge", "Our team won the final", "The printer is jammed once more"]


def clip_metas(n: int, special: dict[int, str] | None = None) -> list[dict]:
    """`n` clips with distinct transcripts and gold + predicted labels; `special` overrides transcripts."""
    metas = []
    for i in range(n):
        text = (special or {}).get(i, f"{SENTENCES[i % len(SENTENCES)]} number {i}")
        emotion = EMOTIONS[i % len(EMOTIONS)]
        labels = {"emotion": emotion, "arousal": round(0.1 + 0.07 * i % 0.8, 3), "valence": round(0.9 - 0.06 * i % 0.8, 3)}
        metas.append({"key": f"clip{i:03d}", "transcript": text, "duration": 0.5, "corpus": "toy", "split": "train",
                      "labels": {"gold": labels, "pred": {"ann": {**labels, "emotion": EMOTIONS[(i + 1) % 7]}}}})
    return metas


def _flac(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(seed).uniform(-0.1, 0.1, 8000).astype(np.float32), 16000, format="FLAC")
    return buf.getvalue()


def write_clips(root: Path, metas: list[dict]) -> Path:
    write_shards([(m, _flac(i), "flac") for i, m in enumerate(metas)], root)
    return root


def prompt_fields(body: dict) -> tuple[str, str, int]:
    """(speech text, emotion, pairs asked) read back from a generation request."""
    user = body["messages"][-1]["content"]
    speech = re.search(r"\):\n(.*?)\n\nParalinguistic", user, re.S).group(1)
    emotion = re.search(r"^emotion: (\w+)", user, re.M).group(1)
    n = int(re.search(r"Write (\d+) question", user).group(1))
    return speech, emotion, n


def scripted_reply(body: dict) -> str:
    """A generator that answers with valid pairs, plus one pair per filter trap; transcripts containing
    'gibberish' always get prose, 'wrongshape' valid JSON of the wrong shape, and 'flaky' prose on the
    first sample only."""
    speech, emotion, n = prompt_fields(body)
    if "gibberish" in speech or ("flaky" in speech and body.get("seed") == 0):
        return "Sure! Here are some great questions about the clip, enjoy."
    if "wrongshape" in speech:
        return json.dumps({"questions": ["What?"]})
    pairs = [{"type": "C", "question": "What does the speaker talk about?", "answer": f"They say: {speech}"},
             {"type": "CP", "question": "Why might the speaker feel this way?",
              "answer": f"They sound {emotion} because of what they describe: {speech}"},
             {"type": "DP", "question": "Which emotion comes through in the voice?", "answer": f"The speaker sounds {emotion}."},
             {"type": "DP", "question": "According to the transcript, what happened?", "answer": "Something happened."},
             {"type": "DP", "question": "Which emotion comes through in the voice?", "answer": f"The speaker sounds {emotion}."}]
    return "```json\n" + json.dumps({"pairs": pairs[: max(n, 5)]}) + "\n```"
