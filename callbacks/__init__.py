"""Lightning callbacks of paralm (an importable top-level package: `from callbacks import JudgeEvalCallback`).

The names are resolved on first use (PEP 562), so importing one callback module, e.g. `callbacks.telemetry`
in the GPU benchmark, does not pull in the judge's API client (openai) or W&B.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "EncoderCacheFill": "callbacks.encoder_cache",
    "JudgeEvalCallback": "callbacks.judge_eval",
    "NonFiniteGuard": "callbacks.nonfinite",
    "PreemptionCheckpoint": "callbacks.preemption",
    "TelemetryCallback": "callbacks.telemetry",
}

__all__ = ["EncoderCacheFill", "JudgeEvalCallback", "NonFiniteGuard", "PreemptionCheckpoint", "TelemetryCallback"]

if TYPE_CHECKING:
    from callbacks.encoder_cache import EncoderCacheFill
    from callbacks.judge_eval import JudgeEvalCallback
    from callbacks.nonfinite import NonFiniteGuard
    from callbacks.preemption import PreemptionCheckpoint
    from callbacks.telemetry import TelemetryCallback


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'callbacks' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
