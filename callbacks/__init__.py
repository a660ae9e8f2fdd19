"""Lightning callbacks of paralm (an importable top-level package: `from callbacks import JudgeEvalCallback`)."""

from callbacks.judge_eval import JudgeEvalCallback
from callbacks.nonfinite import NonFiniteGuard
from callbacks.preemption import PreemptionCheckpoint
from callbacks.telemetry import TelemetryCallback

__all__ = ["TelemetryCallback", "JudgeEvalCallback", "NonFiniteGuard", "PreemptionCheckpoint"]
