"""The slot for annotators that are not transformers models, plus one ready example.

emotion2vec+ (the paper's categorical annotator) ships through its own toolkit; rules, other
frameworks or remote services are in the same position. Two ways in:

1. Write a class with the `Annotator` attributes/methods and decorate it with
   `@register_annotator("my_kind")`; import its module before the annotate command runs
   (e.g. `--plugin my_package.my_annotators`).
2. No class at all: `--annotator e2v=external:fn=my_package.e2v:predict` wraps a plain function
   `predict(audio: list[np.ndarray], sample_rate: int, metas: list[dict]) -> list[dict]` that returns
   one prediction dict per clip (keys as for `labels.pred`: emotion, probs, arousal, valence,
   dominance, gender, plus any extra fields).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable

from paralm.creation.annotators.base import AnnotatorInput, register_annotator


def import_callable(path: str) -> Callable:
    """`package.module:function` (attribute path may be dotted) -> the callable; errors name the path."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"fn={path!r} must look like package.module:function")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"fn={path!r}: {obj.__name__ if hasattr(obj, '__name__') else obj} has no {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"fn={path!r} is not callable")
    return obj


def callable_version(path: str, fn: Callable) -> str:
    """`<path>@<sha256[:12] of its source>` so a changed function gives a new version."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return path
    return f"{path}@{hashlib.sha256(source.encode()).hexdigest()[:12]}"


@register_annotator("external")
class CallableAnnotator:
    """Predictions from any python callable named by import path (see module docstring)."""

    needs_audio = True

    def __init__(self, id: str, *, device: str = "cpu", fn: str = "", version: str = "") -> None:
        """
        Args:
            id: prediction key under labels.pred.
            device: passed to nothing; the callable manages its own device.
            fn: import path `package.module:function`.
            version: version string to record; default: the path plus a hash of the function's source.
        """
        if not fn:
            raise ValueError(f"annotator {id!r} (external) needs fn=package.module:function")
        self.id = id
        self.path = fn
        self.fn = import_callable(fn)
        self.version = version or callable_version(fn, self.fn)

    def describe(self) -> dict:
        return {"kind": self.kind, "model": self.path, "version": self.version}

    def annotate(self, batch: list[AnnotatorInput]) -> list[dict]:
        rate = batch[0].sample_rate if batch else 16000
        preds = self.fn([b.audio for b in batch], rate, [b.meta for b in batch])
        if not isinstance(preds, list) or len(preds) != len(batch):
            got = len(preds) if isinstance(preds, list) else type(preds).__name__
            raise ValueError(f"annotator {self.id!r}: {self.path} returned {got} for {len(batch)} clips; "
                             "it must return a list with one dict per clip")
        bad = [type(p).__name__ for p in preds if not isinstance(p, dict)]
        if bad:
            raise ValueError(f"annotator {self.id!r}: {self.path} returned {bad[0]} items; each must be a dict")
        return [{**p, "version": p.get("version", self.version)} for p in preds]
