"""What QA generation knows about one clip: transcript (with timings when present) and its labels.

The labels come from one metadata source, `pred:<annotator>` or `gold`, chosen per run. With a permutation
seed, whole label sets (emotion with its arousal/valence/dominance) are shuffled across clips before
generation: the ablation's control, which keeps every transcript but breaks the link between a clip's
audio and the labels that shape its answers. The permutation depends only on the seed and the sorted
keys, so a resumed run permutes exactly as the first one did.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field, replace

from paralm.data.prompts import lookup_metadata, parse_metadata_source

LABEL_FIELDS = ("emotion", "arousal", "valence", "dominance", "gender")
CHUNK_S = 2.0  # words are grouped into lines of about this many seconds when no windows are stored


@dataclass(frozen=True)
class GenInput:
    """One clip as the generator sees it.

    Args:
        key: sample key.
        transcript: what is said.
        timed_lines: "[start-end s] words" lines when word timings are known, else empty.
        labels: emotion / arousal / valence / dominance / gender from the chosen source (absent ones left out).
        parents: keys this clip was cut from (a condensed window's clip), for the eval-set leakage check.
        label_span: (start, end) in seconds of the part the labels describe, for a condensed window (its
            labelled centre, relative to the window's start); None when they describe the whole clip.
    """

    key: str
    transcript: str
    timed_lines: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict)
    parents: tuple[str, ...] = ()
    label_span: tuple[float, float] | None = None

    @property
    def input_hash(self) -> str:
        """Hash of everything the generator is told about the clip (part of the API cache key)."""
        payload = [self.key, self.transcript, list(self.timed_lines), self.labels, self.label_span]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def emotion(self) -> str:
        return str(self.labels.get("emotion") or "")


def affect_word(value: float) -> str:
    return "low" if value < 0.4 else "high" if value > 0.6 else "moderate"


def describe_labels(labels: dict, span: tuple[float, float] | None = None) -> str:
    """Cue lines for the prompt, e.g. "emotion: sad" / "arousal: 0.31 (low)"; "unknown" when absent."""
    lines = [f"emotion: {labels.get('emotion') or 'unknown'}"]
    if span is not None:
        lines.append(f"(these cues were measured on {span[0]:.1f}-{span[1]:.1f} s of the clip)")
    for dim in ("arousal", "valence", "dominance"):
        if labels.get(dim) is not None:
            lines.append(f"{dim}: {float(labels[dim]):.2f} ({affect_word(float(labels[dim]))}, scale 0-1)")
    if labels.get("gender"):
        lines.append(f"gender: {labels['gender']}")
    return "\n".join(lines)


def _line(start: float, end: float, words: list[dict]) -> str:
    text = " ".join(str(w["w"]).strip() for w in words).strip()
    return f"[{start:.1f}-{end:.1f} s] {text}"


def timed_lines(words: list[dict] | None, chunk_s: float = CHUNK_S) -> tuple[str, ...]:
    """Words grouped into consecutive lines of about `chunk_s` seconds, each with its time span."""
    if not words:
        return ()
    lines, group = [], []
    for w in words:
        if group and float(w["end"]) - float(group[0]["start"]) > chunk_s:
            lines.append(_line(float(group[0]["start"]), float(group[-1]["end"]), group))
            group = []
        group.append(w)
    lines.append(_line(float(group[0]["start"]), float(group[-1]["end"]), group))
    return tuple(lines)


def input_from_meta(meta: dict, labels_source: str) -> GenInput:
    """A GenInput from a sample's metadata; labels from `labels_source` ("gold" or "pred:<annotator>")."""
    raw = lookup_metadata(meta, labels_source) or {}
    labels = {k: raw[k] for k in LABEL_FIELDS if raw.get(k) is not None}
    window = meta.get("window") or {}
    parents = tuple(str(p) for p in (window.get("parent"), meta.get("source_key")) if p)
    span = None
    if window.get("centre") and window.get("cut"):
        start = float(window["cut"][0])
        span = (round(float(window["centre"][0]) - start, 3), round(float(window["centre"][1]) - start, 3))
    return GenInput(key=str(meta["key"]), transcript=str(meta.get("transcript", "")).strip(),
                    timed_lines=timed_lines(meta.get("words")), labels=labels, parents=parents, label_span=span)


def check_labels_source(source: str) -> str:
    """Accept "gold" or "pred:<annotator>"; "none" makes no sense for generation."""
    kind, _ = parse_metadata_source(source)
    if kind == "none":
        raise ValueError("--labels must be 'gold' or 'pred:<annotator>'; generation needs labels, got 'none'")
    return source


def permute_labels(inputs: list[GenInput], seed: int) -> list[GenInput]:
    """The same inputs with label sets shuffled across clips (seeded by `seed` over the sorted keys).

    Only clips that have labels take part, so a clip without labels never receives some, and the
    output keeps the input order.
    """
    order = sorted((i for i, x in enumerate(inputs) if x.labels), key=lambda i: inputs[i].key)
    shuffled = [inputs[i].labels for i in order]
    random.Random(seed).shuffle(shuffled)
    out = list(inputs)
    for i, labels in zip(order, shuffled, strict=True):
        out[i] = replace(inputs[i], labels=dict(labels))
    return out
