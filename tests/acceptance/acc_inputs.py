"""Inputs the docs assume a user already has, made small inside a workspace.

Each builder is keyed by the path a documented command names (`corpus.jsonl`, `models/ser`, ...) and
runs only when a command that names it is about to run. Models are tiny random ones built from configs
(nothing is downloaded); the corpus is a few clips of the embedded demo corpus, which is speech, so
voice activity detection finds something to keep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

EMOTION_LABELS = {0: "ang", 1: "hap", 2: "neu", 3: "sad"}
CORPUS_CLIPS = 6


def corpus(ws: Path) -> None:
    """corpus.jsonl + audio/: demo clips of the train split as a user's manifest and audio folder."""
    from acc_workspace import DEMO_SHARDS, ROOT

    from paralm.data.index import ShardIndex
    from paralm.data.reader import iter_samples

    (ws / "audio").mkdir(exist_ok=True)
    rows = []
    for _row, meta, audio in iter_samples(ShardIndex.load(ROOT / DEMO_SHARDS)):
        if meta.get("split") != "train":
            continue
        name = f"{meta['key']}.flac"
        (ws / "audio" / name).write_bytes(audio)
        keep = {k: v for k, v in meta.items() if k in ("key", "transcript", "duration", "corpus", "split")}
        rows.append({"audio": name, **keep, "labels": {"gold": meta.get("labels", {}).get("gold", {})}})
        if len(rows) == CORPUS_CLIPS:
            break
    (ws / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def whisper(ws: Path) -> None:
    """The test suite's tiny Whisper, with a real Whisper's 448 decoder positions (transcribe asks for 440)."""
    import torch
    from test_creation_transcribe import build_whisper
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    folder = build_whisper(ws / "models" / "whisper-large-v3")
    cfg = WhisperConfig.from_pretrained(folder)
    cfg.max_target_positions = 448
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig.from_pretrained(folder)
    model.generation_config.max_length = 448
    model.save_pretrained(folder)


def ser(ws: Path) -> None:
    import torch
    from test_creation_annotate import save_extractor, tiny_w2v_config
    from transformers import Wav2Vec2ForSequenceClassification

    folder = ws / "models" / "ser"
    torch.manual_seed(0)
    cfg = tiny_w2v_config(num_labels=len(EMOTION_LABELS), id2label=EMOTION_LABELS,
                          label2id={v: k for k, v in EMOTION_LABELS.items()})
    Wav2Vec2ForSequenceClassification(cfg).save_pretrained(folder)
    save_extractor(folder)


def msp_dim(ws: Path) -> None:
    import torch
    from test_creation_annotate import save_extractor, tiny_w2v_config

    from paralm.creation.annotators.msp_dim import MspDimModel

    folder = ws / "models" / "msp-dim"
    torch.manual_seed(0)
    MspDimModel(tiny_w2v_config(num_labels=3)).save_pretrained(folder)
    save_extractor(folder)


def predictions(ws: Path) -> None:
    """preds.jsonl: answers of a system on DP and C questions (the format `paralm judge` reads)."""
    from paralm.formats.predictions import PredictionRow, write_predictions

    rows = [PredictionRow(key=f"clip{i}", question="How does the speaker feel?", type="DP",
                          reference=f"The speaker sounds {emo}.", answer=f"They sound {emo}.", emotion=emo)
            for i, emo in enumerate(["angry", "happy", "sad", "neutral"])]
    write_predictions(ws / "preds.jsonl", rows)


def judged_runs(ws: Path) -> None:
    """judged_a, judged_b, judged_c: three systems' judged rows (what `paralm judge` writes)."""
    from test_eval_validate import system_rows

    from paralm.judge.results import write_judged

    for name, accuracy in (("a", 0.3), ("b", 0.5), ("c", 0.8)):
        write_judged(ws / f"judged_{name}" / "judged.jsonl", system_rows(name, accuracy))


# path named in a documented command -> builder of that input
BUILDERS: dict[str, Callable[[Path], None]] = {
    "corpus.jsonl": corpus,
    "models/whisper-large-v3": whisper,
    "models/ser": ser,
    "models/msp-dim": msp_dim,
    "preds.jsonl": predictions,
    "judged_a": judged_runs,
}


def ensure_inputs(ws: Path, command_text: str, made: set) -> None:
    for name, build in BUILDERS.items():
        if name in command_text and name not in made and not (ws / name).exists():
            build(ws)
            made.add(name)
