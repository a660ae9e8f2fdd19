"""The pure core of `paralm data condense`: speech segments -> labelled windows -> filters, over plain lists.

Nothing here reads audio or shards, so a test can hand-compute which windows survive. The stages, in
order, each with the reasons it drops windows for:

1. **windows**: each speech segment (`meta["speech"]` when VAD ran, else the whole clip) is tiled from
   its start by labelled centres of `window` seconds; the last centre of a segment may be shorter. Each
   centre gets `context` seconds on both sides, clamped to the clip: the cut is at most t + 2*dt.
2. **label**: a window takes the annotator's per-window prediction when the annotate stage stored one
   (`meta["windows"] = [{start, end, pred}]`, the one overlapping the centre most, at least half of it),
   else the clip-level prediction (`labels.pred[annotator]`, or `labels.gold` for `annotator="gold"`).
   Dropped: `no_label` (no emotion anywhere).
3. **consistency**: the categorical label's sentiment must agree with valence (`SENTIMENT`): positive
   emotions need valence >= `valence_pos`, negative ones valence <= `valence_neg`. Neutral and surprised
   carry no sentiment and pass whatever the valence (`neutral_rule="any"`), or, with
   `neutral_rule="between"`, need valence_neg < valence < valence_pos. Dropped: `inconsistent`,
   `missing_valence`, `unknown_sentiment` (an emotion outside `SENTIMENT`).
4. **length**: `too_short` (centre under `min_centre` s), `too_few_words` (fewer than `min_words` words
   with their midpoint in the centre), `needs_word_timings` (a cut smaller than the clip whose words are
   unknown has no honest transcript: run `paralm data transcribe` first).
5. **occurrence**: labels with fewer than `min_occurrence` surviving windows are dropped: `rare_label`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from paralm.data.schema import DIMENSIONS

SENTIMENT: dict[str, str] = {
    "happy": "positive",
    "sad": "negative", "angry": "negative", "fearful": "negative", "disgusted": "negative",
    "neutral": "none", "surprised": "none",
}
NEUTRAL_RULES = ("any", "between")
STAGES = ("windows", "label", "consistency", "length", "occurrence")
EPS = 1e-6


@dataclass
class WindowGeometry:
    """Where a clip's windows lie: `paralm data annotate --windows` labels them and `paralm data condense`
    cuts them. Both configs inherit these fields (one declaration, one default, one check), so the two
    commands cannot disagree on what a window is unless told different values.

    Args:
        window: length t in seconds of the labelled centre of each window.
        context: seconds dt of context added on each side of the centre (clamped to the clip).
    """

    window: float = 2.0
    context: float = 1.0

    def __post_init__(self) -> None:
        if self.window <= 0 or self.context < 0:
            raise ValueError(f"--window must be > 0 and --context >= 0, got window={self.window}, "
                             f"context={self.context}")


@dataclass
class CondenseConfig(WindowGeometry):
    """How clips become labelled windows and which windows are kept.

    Args:
        window: length t in seconds of the labelled centre of each window (from `WindowGeometry`).
        context: seconds dt of context added on each side of the centre (from `WindowGeometry`).
        annotator: `labels.pred` annotator id that labels the windows, or "gold" for `labels.gold`.
        dimensions: annotator id whose arousal / valence / dominance replace the label's own (e.g. a
            dimensional regressor beside a categorical model, as in the source paper); None = the
            annotator's own values.
        valence_pos: positive emotions (happy) need valence >= this to pass the consistency filter.
        valence_neg: negative emotions (sad, angry, fearful, disgusted) need valence <= this.
        neutral_rule: "any" lets neutral/surprised pass whatever the valence; "between" asks
            valence_neg < valence < valence_pos of them.
        min_occurrence: a label needs at least this many surviving windows, else its windows are dropped.
        min_words: a window's centre needs at least this many words (only checked when word timings exist).
        min_centre: shortest labelled centre in seconds (the last centre of a segment may be shorter than t).
    """

    annotator: str = "gold"
    dimensions: str | None = None
    valence_pos: float = 0.5
    valence_neg: float = 0.4
    neutral_rule: str = "any"
    min_occurrence: int = 1
    min_words: int = 0
    min_centre: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_centre < 0:
            raise ValueError(f"condense: need min_centre >= 0; got min_centre={self.min_centre}")
        if self.neutral_rule not in NEUTRAL_RULES:
            raise ValueError(f"condense: unknown neutral_rule {self.neutral_rule!r}; valid: {list(NEUTRAL_RULES)}")
        if self.valence_neg > self.valence_pos:
            raise ValueError(f"condense: valence_neg ({self.valence_neg}) must not exceed valence_pos "
                             f"({self.valence_pos})")


@dataclass
class Window:
    """One candidate window of a clip; times are seconds from the clip's start.

    Args:
        parent: key of the clip the window comes from.
        index: position among all windows of that clip (stable whatever gets filtered; names the output key).
        centre: (start, end) of the labelled centre.
        cut: (start, end) of the audio kept: centre plus context, clamped to the clip.
        label: the prediction labelling the window (emotion, arousal, valence, dominance, ...), or None.
        label_scope: "window" when a per-window prediction was used, "clip" for the clip-level one.
        words: words whose midpoint lies in the cut, times relative to the cut start; None when unknown.
        transcript: text of the cut: its words, or the clip transcript when the cut is the whole clip.
        centre_words: number of words whose midpoint lies in the centre (None when unknown).
    """

    parent: str
    index: int
    centre: tuple[float, float]
    cut: tuple[float, float]
    label: dict | None = None
    label_scope: str = ""
    words: list[dict] | None = None
    transcript: str = ""
    centre_words: int | None = None

    @property
    def key(self) -> str:
        return f"{self.parent}_w{self.index:03d}"

    @property
    def emotion(self) -> str:
        return str((self.label or {}).get("emotion") or "")


@dataclass
class CondenseResult:
    """What survived and why the rest did not.

    Args:
        kept: windows that passed every filter, in clip order then window order.
        dropped: (window, reason) for every dropped window.
        stage_counts: windows left after each stage, in `STAGES` order.
    """

    kept: list[Window] = field(default_factory=list)
    dropped: list[tuple[Window, str]] = field(default_factory=list)
    stage_counts: dict[str, int] = field(default_factory=dict)

    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(reason for _, reason in self.dropped).items()))

    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(w.emotion for w in self.kept).items()))


def tile_segment(start: float, end: float, window: float) -> list[tuple[float, float]]:
    """Centres of `window` s tiling [start, end) from its start; the last one may be shorter."""
    centres, t = [], start
    while t < end - EPS:
        centres.append((round(t, 6), round(min(t + window, end), 6)))
        t += window
    return centres


def speech_segments(meta: dict) -> list[tuple[float, float]]:
    """The clip's speech segments from VAD (`meta["speech"]`), else the whole clip."""
    duration = float(meta["duration"])
    speech = meta.get("speech")
    if not speech:
        return [(0.0, duration)]
    return [(max(0.0, float(s["start"])), min(duration, float(s["end"]))) for s in speech
            if float(s["end"]) > float(s["start"])]


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _midpoint_in(word: dict, span: tuple[float, float]) -> bool:
    mid = (float(word["start"]) + float(word["end"])) / 2
    return span[0] <= mid < span[1]


def _has_emotion(pred: dict) -> bool:
    return bool(pred.get("emotion"))


def _has_dimensions(pred: dict) -> bool:
    return any(pred.get(d) is not None for d in DIMENSIONS)


def clip_label(meta: dict, annotator: str, usable: Callable[[dict], bool] = _has_emotion) -> dict | None:
    """The clip-level prediction of `annotator` ("gold" reads labels.gold), or None."""
    labels = meta.get("labels") or {}
    label = labels.get("gold") if annotator == "gold" else (labels.get("pred") or {}).get(annotator)
    return dict(label) if isinstance(label, dict) and usable(label) else None


def _window_pred(entry: dict, annotator: str) -> dict | None:
    """A stored window's prediction: either the prediction itself or a dict keyed by annotator id."""
    pred = entry.get("pred") or {}
    if "emotion" in pred or "valence" in pred:
        return dict(pred)
    inner = pred.get(annotator)
    return dict(inner) if isinstance(inner, dict) else None


def window_label(meta: dict, centre: tuple[float, float], annotator: str,
                 usable: Callable[[dict], bool] = _has_emotion) -> tuple[dict | None, str]:
    """(prediction, scope) for a centre: the stored window overlapping it most (>= half), else the clip's.
    `usable` says which predictions count (default: those with an emotion)."""
    best, best_overlap = None, 0.5 * (centre[1] - centre[0]) - EPS
    for entry in meta.get("windows") or []:
        ov = _overlap(centre, (float(entry["start"]), float(entry["end"])))
        pred = _window_pred(entry, annotator)
        if ov > best_overlap and pred and usable(pred):
            best, best_overlap = pred, ov
    if best is not None:
        return best, "window"
    label = clip_label(meta, annotator, usable)
    return label, "clip" if label else ""


def labelled(meta: dict, centre: tuple[float, float], cfg: CondenseConfig) -> tuple[dict | None, str]:
    """The window's label: `cfg.annotator`'s emotion, with arousal / valence / dominance taken from
    `cfg.dimensions` when set (the same window, else its clip; recorded as `dimensions_from` and
    `dimensions_scope`). Without such values the consistency filter drops the window as missing_valence."""
    label, scope = window_label(meta, centre, cfg.annotator)
    if label is None or not cfg.dimensions:
        return label, scope
    for d in DIMENSIONS:
        label.pop(d, None)
    dims, dim_scope = window_label(meta, centre, cfg.dimensions, _has_dimensions)
    if dims is not None:
        label.update({d: dims[d] for d in DIMENSIONS if dims.get(d) is not None})
        label.update(dimensions_from=cfg.dimensions, dimensions_scope=dim_scope)
    return label, scope


def window_spans(meta: dict, window: float, context: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """(centre, cut) of every window of a clip, in order (stage 1). `paralm data annotate --windows` labels
    the same spans, so its per-window predictions line up with the windows condense cuts."""
    duration = float(meta["duration"])
    spans = []
    for seg in speech_segments(meta):
        for centre in tile_segment(seg[0], seg[1], window):
            cut = (round(max(0.0, centre[0] - context), 6), round(min(duration, centre[1] + context), 6))
            spans.append((centre, cut))
    return spans


def clip_windows(meta: dict, cfg: CondenseConfig) -> list[Window]:
    """All candidate windows of one clip, labelled, with their words and transcript (stages 1-2 inputs)."""
    duration = float(meta["duration"])
    words = meta.get("words")
    out: list[Window] = []
    for centre, cut in window_spans(meta, cfg.window, cfg.context):
        w = Window(str(meta["key"]), len(out), centre, cut)
        w.label, w.label_scope = labelled(meta, centre, cfg)
        if words is not None:
            inside = [x for x in words if _midpoint_in(x, cut)]
            w.words = [{"w": x["w"], "start": round(float(x["start"]) - cut[0], 6),
                        "end": round(float(x["end"]) - cut[0], 6)} for x in inside]
            w.transcript = " ".join(str(x["w"]).strip() for x in inside).strip()
            w.centre_words = sum(_midpoint_in(x, centre) for x in words)
        elif cut[0] <= EPS and cut[1] >= duration - EPS:
            w.transcript = str(meta.get("transcript", ""))
        out.append(w)
    return out


def consistency_reason(label: dict, cfg: CondenseConfig) -> str | None:
    """Why a label fails the sentiment/valence agreement check, or None when it passes."""
    sentiment = SENTIMENT.get(str(label.get("emotion")))
    if sentiment is None:
        return "unknown_sentiment"
    if sentiment == "none" and cfg.neutral_rule == "any":
        return None
    valence = label.get("valence")
    if valence is None:
        return "missing_valence"
    v = float(valence)
    ok = {"positive": v >= cfg.valence_pos, "negative": v <= cfg.valence_neg,
          "none": cfg.valence_neg < v < cfg.valence_pos}[sentiment]
    return None if ok else "inconsistent"


def length_reason(w: Window, cfg: CondenseConfig) -> str | None:
    """Why a window fails the length filter, or None."""
    if w.centre[1] - w.centre[0] < cfg.min_centre - EPS:
        return "too_short"
    if w.words is None and not w.transcript:
        return "needs_word_timings"
    if w.centre_words is not None and w.centre_words < cfg.min_words:
        return "too_few_words"
    return None


def condense_clips(clips: list[dict], cfg: CondenseConfig) -> CondenseResult:
    """Run all stages over clip metadata dicts (key, duration, transcript, labels, speech?, words?, windows?)."""
    res = CondenseResult()
    live = [w for meta in clips for w in clip_windows(meta, cfg)]
    res.stage_counts["windows"] = len(live)

    def apply(stage: str, reason_of: Callable[[Window], str | None]) -> None:
        nonlocal live
        survivors = []
        for w in live:
            reason = reason_of(w)
            if reason is None:
                survivors.append(w)
            else:
                res.dropped.append((w, reason))
        live = survivors
        res.stage_counts[stage] = len(live)

    apply("label", lambda w: None if w.label else "no_label")
    apply("consistency", lambda w: consistency_reason(w.label, cfg))
    apply("length", lambda w: length_reason(w, cfg))
    counts = Counter(w.emotion for w in live)
    apply("occurrence", lambda w: None if counts[w.emotion] >= cfg.min_occurrence else "rare_label")
    res.kept = live
    return res
