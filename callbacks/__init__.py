"""Lightning callbacks of paralm (an importable top-level package: `from callbacks import JudgeEvalCallback`)."""

from callbacks.judge_eval import JudgeEvalCallback

__all__ = ["JudgeEvalCallback"]
