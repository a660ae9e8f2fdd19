"""`paralm data annotate S --out S2 --annotator SPEC [--annotator SPEC ...] [--folds K] [--device auto]`.

Runs annotators (see paralm/creation/annotators) over a shard set and writes each one's prediction to
`labels.pred[<id>]` in a new shard set. Annotators run in the order given, so an ensemble listed
after its members combines their fresh predictions.

Annotators fitted on the corpus (`FittableAnnotator`, e.g. acoustic_fit) are first fitted on the
training split's gold labels, then:
  * samples of other splits get `labels.pred[<id>]` from the model fitted on the whole training split;
  * with `--folds K`, each training sample gets `labels.pred[<id>@oof]` from a model fitted on the
    other K-1 folds (folds grouped by speaker, recorded as `fold` in the prediction); without
    `--folds`, training samples get no prediction from it at all (counted), because a model must never
    label its own training data.

With `--windows`, every annotator that is not fitted on the corpus also labels each window of each clip
(the spans `paralm data condense` cuts: `--window` s centres tiling the VAD speech segments, each heard
with `--context` s on both sides) and the predictions go to `meta["windows"] = [{start, end, cut, pred:
{<id>: prediction}}]`, times in seconds of the clip. Condense then labels each window with its own
prediction instead of the clip's, as in the source paper (2-s centres, 1-s context). An ensemble combines
its members' window predictions the same way it combines their clip predictions. Fitted annotators keep
clip-level predictions only (their out-of-fold guarantee is per clip), counted per clip.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paralm.creation.annotators import (
    ANNOTATORS,
    Annotator,
    AnnotatorInput,
    FittableAnnotator,
    build_annotator,
    clean_prediction,
    parse_spec,
    resolve_device,
)
from paralm.creation.annotators.folds import assign_folds, group_of
from paralm.creation.condense_core import WindowGeometry, window_spans
from paralm.creation.stage import StageSample, add_stage_args, read_samples, run_cli, run_stage
from paralm.data.skips import SkipCounter

SAMPLE_RATE = 16000
OOF_SUFFIX = "@oof"


@dataclass
class FitPlan:
    """How fitted annotators are trained and applied.

    Args:
        train_split: split whose gold labels fit the models (and that gets out-of-fold predictions).
        folds: K >= 2 for out-of-fold predictions on the training split; 0 = leave it unlabelled.
        seed: seed of the fold assignment.
        group_field: metadata field that groups samples by speaker; None = speaker, speaker_id, voice.
    """

    train_split: str = "train"
    folds: int = 0
    seed: int = 0
    group_field: str | None = None


@dataclass
class WindowPlan(WindowGeometry):
    """Per-window labelling (`--windows`): condense's window geometry (`WindowGeometry`, inherited, so the
    windows labelled here are the ones `paralm data condense` cuts with the same values) plus a floor.

    Args:
        window: seconds of each labelled centre (from `WindowGeometry`).
        context: seconds of audio heard on each side of the centre, clamped to the clip (from `WindowGeometry`).
        min_cut: windows whose audio is shorter than this (seconds) are not labelled (counted): too little
            for a model's front end.
    """

    min_cut: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_cut < 0:
            raise ValueError(f"min_cut must be >= 0, got {self.min_cut}")


@dataclass
class FittedPredictions:
    """Precomputed predictions of one fitted annotator: key -> (label id, prediction)."""

    by_key: dict[str, tuple[str, dict]] = field(default_factory=dict)
    record: dict = field(default_factory=dict)


def _inputs(batch: list[StageSample]) -> list[AnnotatorInput]:
    return [AnnotatorInput(s.key, s.audio, s.sample_rate, s.meta) for s in batch]


def _collect(src: Path, fittable: list[FittableAnnotator], batch_size: int, group_field: str | None):
    """One pass over `src`: (N, F) features per annotator, and (key, split, speaker group, gold) per sample."""
    feats: dict[str, list[np.ndarray]] = {a.id: [] for a in fittable}
    rows: list[tuple[str, str, str, dict]] = []
    batch: list[StageSample] = []

    def flush() -> None:
        inputs = _inputs(batch)
        for a in fittable:
            feats[a.id].append(a.features(inputs))
        batch.clear()

    for s in read_samples(src, SAMPLE_RATE, SkipCounter()):
        gold = (s.meta.get("labels") or {}).get("gold") or {}
        rows.append((s.key, s.meta["split"], group_of(s.meta, group_field), gold))
        batch.append(s)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return {k: np.concatenate(v) if v else np.zeros((0, 0)) for k, v in feats.items()}, rows


def fit_and_predict(a: FittableAnnotator, x: np.ndarray, rows: list, plan: FitPlan) -> FittedPredictions:
    """Fit `a` on the training split and predict every sample, out-of-fold inside the training split."""
    train = [i for i, r in enumerate(rows) if r[1] == plan.train_split]
    other = [i for i, r in enumerate(rows) if r[1] != plan.train_split]
    if not train:
        raise ValueError(f"annotator {a.id!r} is fitted on split {plan.train_split!r}, which has no samples")
    out = FittedPredictions(record={"train_split": plan.train_split, "n_train": len(train), "folds": plan.folds})
    full = a.fit(x[train], [rows[i][3] for i in train])
    for i, pred in zip(other, a.predict(full, x[other]) if other else [], strict=True):
        out.by_key[rows[i][0]] = (a.id, pred)
    if plan.folds < 2:
        return out
    groups = [rows[i][2] for i in train]
    fold_ids = assign_folds(groups, plan.folds, plan.seed)
    out.record["fold_sizes"] = [fold_ids.count(f) for f in range(plan.folds)]
    out.record["fold_seed"] = plan.seed
    for f in range(plan.folds):
        fit_rows = [i for i, fid in zip(train, fold_ids, strict=True) if fid != f]
        held = [i for i, fid in zip(train, fold_ids, strict=True) if fid == f]
        model = a.fit(x[fit_rows], [rows[i][3] for i in fit_rows])
        for i, pred in zip(held, a.predict(model, x[held]), strict=True):
            out.by_key[rows[i][0]] = (a.id + OOF_SUFFIX, {**pred, "fold": f})
    return out


def _write(meta: dict, label_id: str, pred: dict) -> bool:
    """Store one prediction; returns True when it replaced an earlier one under the same id."""
    preds = meta.setdefault("labels", {}).setdefault("pred", {})
    replaced = label_id in preds
    preds[label_id] = clean_prediction(pred, f"{meta['key']}: labels.pred.{label_id}")
    return replaced


def make_transform(annotators: list[Annotator], fitted: dict[str, FittedPredictions],
                   windows: WindowPlan | None = None):
    """The stage transform: run (or look up) every annotator on each batch, in the order given."""

    def transform(batch: list[StageSample], counts: Counter) -> list[StageSample]:
        inputs = _inputs(batch)
        for a in annotators:
            if a.id in fitted:
                preds = [fitted[a.id].by_key.get(s.key) for s in batch]
            else:
                preds = [(a.id, p) if p else None for p in a.annotate(inputs)]
            for s, item in zip(batch, preds, strict=True):
                if item is None:
                    counts[f"unlabelled:{a.id}"] += 1
                    continue
                if _write(s.meta, *item):
                    counts[f"replaced:{item[0]}"] += 1
                counts[f"labelled:{item[0]}"] += 1
        if windows is not None:
            annotate_windows(batch, [a for a in annotators if a.id not in fitted], windows, counts)
            for a in annotators:
                if a.id in fitted:
                    counts[f"windows_not_labelled_fitted:{a.id}"] += len(batch)
        return batch

    return transform


def _window_entries(s: StageSample, plan: WindowPlan) -> tuple[list[dict], int]:
    """The clip's window entries (earlier ones with the same centre keep their predictions), and how many
    earlier entries had another geometry and are dropped (one geometry per shard set)."""
    earlier = {(float(e["start"]), float(e["end"])): e for e in s.meta.get("windows") or []}
    entries = []
    for centre, cut in window_spans(s.meta, plan.window, plan.context):
        entry = earlier.pop(centre, None) or {"start": centre[0], "end": centre[1], "pred": {}}
        entry["cut"] = list(cut)
        entry.setdefault("pred", {})
        entries.append(entry)
    return entries, len(earlier)


def annotate_windows(batch: list[StageSample], annotators: list[Annotator], plan: WindowPlan,
                     counts: Counter) -> None:
    """Label every window of every clip in `batch` with each annotator; writes `meta["windows"]`."""
    todo: list[tuple[dict, AnnotatorInput]] = []  # (window entry, what the annotators see)
    for s in batch:
        entries, dropped = _window_entries(s, plan)
        s.meta["windows"] = entries
        if dropped:
            counts["earlier_windows_dropped:other_geometry"] += dropped
        for i, entry in enumerate(entries):
            cut = entry["cut"]
            if cut[1] - cut[0] < plan.min_cut:
                counts["window_too_short"] += 1
                continue
            audio = None
            if s.audio is not None:
                audio = s.audio[int(round(cut[0] * s.sample_rate)):int(round(cut[1] * s.sample_rate))]
            labels = {**(s.meta.get("labels") or {}), "pred": entry["pred"]}  # ensembles read the window's
            meta = {**s.meta, "key": f"{s.key}@w{i:03d}", "duration": cut[1] - cut[0], "labels": labels}
            todo.append((entry, AnnotatorInput(meta["key"], audio, s.sample_rate, meta)))
        counts["windows"] += len(entries)
    if not todo:
        return
    chunk = max(1, len(batch))  # as many windows per model call as the stage's batch has clips
    for a in annotators:
        preds = [p for i in range(0, len(todo), chunk) for p in a.annotate([inp for _, inp in todo[i:i + chunk]])]
        for (entry, inp), pred in zip(todo, preds, strict=True):
            if not pred:
                counts[f"window_unlabelled:{a.id}"] += 1
                continue
            entry["pred"][a.id] = clean_prediction(pred, f"{inp.key}: windows.pred.{a.id}")
            counts[f"window_labelled:{a.id}"] += 1


def annotate(src: str | Path, out: str | Path, specs: list[str], *, device: str = "auto", plan: FitPlan | None = None,
             batch_size: int = 16, shard_bytes: int | None = None, quiet: bool = False,
             windows: WindowPlan | None = None):
    """Library entry point of the command; returns the StageReport. `windows`: also label each window."""
    plan = plan or FitPlan()
    if plan.folds == 1 or plan.folds < 0:
        raise ValueError(f"--folds must be 0 (no out-of-fold predictions) or >= 2, got {plan.folds}")
    device = resolve_device(device)
    annotators = [build_annotator(parse_spec(s), device) for s in specs]
    ids = [a.id for a in annotators]
    if len(set(ids)) != len(ids):
        raise ValueError(f"annotator ids must be unique, got {', '.join(ids)}")
    fittable = [a for a in annotators if isinstance(a, FittableAnnotator)]
    fitted: dict[str, FittedPredictions] = {}
    if plan.folds and not fittable and not quiet:
        print("annotate: --folds has no effect: none of the annotators is fitted on the corpus")
    if fittable:
        feats, rows = _collect(Path(src), fittable, batch_size, plan.group_field)
        fitted = {a.id: fit_and_predict(a, feats[a.id], rows, plan) for a in fittable}
    record = {a.id: {**a.describe(), **(fitted[a.id].record if a.id in fitted else {}), "device": device}
              for a in annotators}
    if windows is not None:
        record["@windows"] = {"window": windows.window, "context": windows.context, "min_cut": windows.min_cut,
                              "annotators": [a.id for a in annotators if a.id not in fitted]}
    needs_audio = any(a.needs_audio and a.id not in fitted for a in annotators)
    kwargs = {"shard_bytes": shard_bytes} if shard_bytes else {}
    return run_stage(src, out, "annotate", make_transform(annotators, fitted, windows), record=record,
                     sample_rate=SAMPLE_RATE if needs_audio else None, batch_size=batch_size, quiet=quiet, **kwargs)


def kinds_help() -> str:
    """One line per registered annotator kind: what it is and its spec options."""
    lines = ["annotator kinds (spec: [ID=]KIND[:key=value,...]):"]
    for kind, cls in sorted(ANNOTATORS.items()):
        params = [n for n, p in inspect.signature(cls.__init__).parameters.items()
                  if p.kind == p.KEYWORD_ONLY and n != "device"]
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {kind:<15} {doc}")
        lines.append(f"  {'':<15} options: {', '.join(params) or 'none'}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm data annotate", description=__doc__.split("\n\n")[0],
                                epilog=kinds_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stage_args(p)
    p.add_argument("--annotator", action="append", required=True, metavar="SPEC",
                   help="[ID=]KIND[:key=value,...]; kinds: hf_categorical, msp_dim, gender, external, "
                        "ensemble, acoustic, acoustic_fit (repeatable; run in order)")
    p.add_argument("--folds", type=int, default=0, help="K >= 2: out-of-fold predictions for the training split")
    p.add_argument("--train-split", default="train", help="split that fitted annotators learn from")
    p.add_argument("--group-field", default=None, help="speaker field for grouped folds (default: speaker, "
                                                        "speaker_id, voice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--windows", action="store_true",
                   help="also label every window that `paralm data condense` will cut (meta.windows)")
    p.add_argument("--window", type=float, default=WindowGeometry.window,
                   help="seconds of each labelled window centre (use the same value for condense)")
    p.add_argument("--context", type=float, default=WindowGeometry.context,
                   help="seconds of context heard on each side of a window centre (same as condense)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (registers extra annotator kinds)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    for module in args.plugin:
        importlib.import_module(module)
    plan = FitPlan(args.train_split, args.folds, args.seed, args.group_field)
    windows = WindowPlan(args.window, args.context) if args.windows else None
    return run_cli("paralm data annotate", lambda: annotate(
        args.src, args.out, args.annotator, device=args.device, plan=plan, batch_size=args.batch_size,
        shard_bytes=args.shard_bytes, windows=windows))
