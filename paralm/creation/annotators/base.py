"""The annotator interface, its registry, and the spec syntax used by `paralm data annotate --annotator`.

An annotator turns a batch of clips (+ their metadata) into one prediction dict per clip, the value
stored at `labels.pred[<annotator id>]`: any of `emotion` (one of `EMOTIONS`), `probs` ({emotion: p}),
`arousal` / `valence` / `dominance` (0..1), `gender` (female | male | other), plus `version` and any
extra fields the annotator documents. Anything that is not a transformers model (emotion2vec+ through
its own toolkit, a rule, a remote service) plugs in the same way: write a class with the attributes
and methods of `Annotator` and decorate it with `@register_annotator("kind")`.

Annotators fitted on the corpus itself additionally implement `FittableAnnotator`; the annotate
command fits them on the training split and, with `--folds K`, writes out-of-fold predictions so no
sample is ever labelled by a model that was fitted on it.

Spec syntax (one `--annotator` each): `[ID=]KIND[:key=value,key=value...]`, e.g.
`e2v=hf_categorical:model=models/e2v,batch_size=8` or `ens=ensemble:members=e2v+hub`. ID defaults to KIND.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from paralm.data.schema import ANNOTATOR_PATTERN, DIMENSIONS, EMOTIONS, GENDERS


@dataclass
class AnnotatorInput:
    """One clip handed to an annotator.

    Args:
        key: sample key.
        audio: float32 mono audio, shape (N,), at `sample_rate`.
        sample_rate: Hz.
        meta: the sample's metadata (read it; the driver writes the prediction).
    """

    key: str
    audio: np.ndarray
    sample_rate: int
    meta: dict


@runtime_checkable
class Annotator(Protocol):
    """What every annotator provides.

    Attributes:
        id: the key under `labels.pred` its predictions are written to.
        kind: the registry name it was built from.
        needs_audio: False for annotators that only read metadata (e.g. an ensemble of other predictions).
    """

    id: str
    kind: str
    needs_audio: bool

    def describe(self) -> dict:
        """Provenance record: kind, model (folder or callable), version, parameters. JSON-serialisable."""
        ...

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        """One prediction dict per input, in order."""
        ...


@runtime_checkable
class FittableAnnotator(Annotator, Protocol):
    """An annotator whose model is fitted on the corpus's own gold labels (training split only)."""

    def features(self, batch: list[AnnotatorInput]) -> np.ndarray:
        """(B,) clips -> (B, F) feature rows used for fitting and prediction."""
        ...

    def fit(self, x: np.ndarray, gold: list[dict]) -> Any:
        """Fit on (N, F) features and the N samples' `labels.gold` dicts; returns a fitted model."""
        ...

    def predict(self, model: Any, x: np.ndarray) -> list[dict]:
        """(N, F) features -> N prediction dicts from a fitted model."""
        ...


ANNOTATORS: dict[str, type] = {}


def register_annotator(kind: str) -> Callable[[type], type]:
    """Class decorator: make `kind` usable in `--annotator` specs. Constructor: `(id, *, device, **options)`."""

    def deco(cls: type) -> type:
        if kind in ANNOTATORS and ANNOTATORS[kind] is not cls:
            raise ValueError(f"annotator kind {kind!r} is already registered by {ANNOTATORS[kind].__name__}")
        ANNOTATORS[kind] = cls
        cls.kind = kind
        return cls

    return deco


@dataclass
class AnnotatorSpec:
    """A parsed `--annotator` value.

    Args:
        id: prediction key under `labels.pred`.
        kind: registry name.
        options: constructor options as written (strings, converted by `build_annotator`).
    """

    id: str
    kind: str
    options: dict[str, str]


def parse_spec(text: str) -> AnnotatorSpec:
    """`[ID=]KIND[:k=v,k=v]` -> AnnotatorSpec; raises ValueError naming the problem."""
    head, _, opts = text.partition(":")
    ident, eq, kind = head.partition("=")
    if not eq:
        ident, kind = head, head
    options: dict[str, str] = {}
    for item in filter(None, opts.split(",")):
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise ValueError(f"annotator spec {text!r}: option {item!r} must look like key=value")
        options[name.strip()] = value.strip()
    if not ANNOTATOR_PATTERN.fullmatch(ident.strip()):
        raise ValueError(f"annotator spec {text!r}: id {ident!r} must match {ANNOTATOR_PATTERN.pattern}")
    return AnnotatorSpec(ident.strip(), kind.strip(), options)


def _coerce(value: str, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is bool:
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"{where}: {value!r} is not a boolean (true/false)")
        return value.lower() in ("1", "true", "yes")
    if hint in (int, float):
        try:
            return hint(value)
        except ValueError as err:
            raise ValueError(f"{where}: {value!r} is not a valid {hint.__name__}") from err
    if typing.get_origin(hint) in (list, tuple):
        return [v for v in value.split("+") if v]
    return value


def build_annotator(spec: AnnotatorSpec | str, device: str = "cpu") -> Annotator:
    """Instantiate a registered annotator from a spec, converting option strings to the constructor's types."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.kind not in ANNOTATORS:
        raise ValueError(f"unknown annotator kind {spec.kind!r}; registered: {', '.join(sorted(ANNOTATORS))}")
    cls = ANNOTATORS[spec.kind]
    hints = typing.get_type_hints(cls.__init__)
    params = {n for n, p in inspect.signature(cls.__init__).parameters.items()
              if p.kind == p.KEYWORD_ONLY and n != "device"}
    unknown = sorted(set(spec.options) - params)
    if unknown:
        raise ValueError(f"annotator {spec.id!r} ({spec.kind}): unknown option(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(sorted(params)) or 'none'}")
    kwargs = {n: _coerce(v, hints.get(n, str), f"annotator {spec.id!r} option {n}") for n, v in spec.options.items()}
    return cls(spec.id, device=device, **kwargs)


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; other values are checked against torch."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"--device {device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from err
    return device


def folder_version(folder: str | Path) -> str:
    """`<folder name>@<sha256[:12] of its weight files>`: names the exact weights that produced a label."""
    folder = Path(folder)
    digest = hashlib.sha256()
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".onnx"))
    for path in weights:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return f"{folder.name}@{digest.hexdigest()[:12]}"


def clean_prediction(pred: dict, where: str) -> dict:
    """Round floats, clip dimensions to [0, 1] (the schema's scale) and check categorical values.

    Values outside [0, 1] from a regressor are clipped rather than refused; the unclipped value is kept
    under `raw_<dim>` so nothing is hidden.
    """
    out = dict(pred)
    for dim in DIMENSIONS:
        if out.get(dim) is None:
            continue
        value = float(out[dim])
        if not math.isfinite(value):
            raise ValueError(f"{where}: {dim} is not finite ({value})")
        if not 0.0 <= value <= 1.0:
            out[f"raw_{dim}"] = round(value, 6)
        out[dim] = round(min(1.0, max(0.0, value)), 6)
    if out.get("emotion") is not None and out["emotion"] not in EMOTIONS:
        raise ValueError(f"{where}: emotion {out['emotion']!r} is not one of {', '.join(EMOTIONS)}")
    if out.get("gender") is not None and out["gender"] not in GENDERS:
        raise ValueError(f"{where}: gender {out['gender']!r} is not one of {', '.join(GENDERS)}")
    if "probs" in out:
        out["probs"] = {k: round(float(v), 6) for k, v in out["probs"].items()}
    return out
