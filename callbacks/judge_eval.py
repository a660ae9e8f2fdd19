"""JudgeEvalCallback: generate on the evaluation set during training, score, judge, log.

Every `every_n_validations` validation runs (and once at the end of fit) the callback asks the
LightningModule's `generate()` for answers to the eval split (each rank generates its own share of the
datamodule's generation loader; rows are gathered on rank 0), writes predictions JSONL, runs the
deterministic scorers (label accuracy / macro-F1 on DP questions, token F1), and, when a judge endpoint
is configured, the LLM judge through the shared API client. Metrics go to the logger as `eval/...` and
`judge/...`; with a W&B logger a table of (audio, question, reference, answer, rating, rationale) rows is
logged too. With no judge endpoint configured the deterministic scorers still run and the callback says
that the LLM judge is off. It talks to the module only through `generate()` and the logger.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_info

from paralm.eval.generation import flatten_metrics, generate_rows
from paralm.eval.predictions import PredictionRow, write_predictions
from paralm.eval.scorers import score_predictions


class JudgeEvalCallback(pl.Callback):
    """Periodic generation + scoring + LLM judging during fit.

    Args:
        every_n_validations: run after every N-th validation (sanity check excluded).
        split: which eval split of the datamodule to generate on (val | test).
        max_samples: cap on evaluated items per run (None: all).
        out_dir: where predictions and judge results go (default: <trainer.default_root_dir>/judge_eval).
        at_fit_end: also run once when fit ends (unless the last validation already did at that step).
        judge_base_url: OpenAI-compatible endpoint of the judge (None: LLM judge off).
        judge_model: model name sent to the judge endpoint.
        rubric: judge rubric name (reference_match | paralinguistic_fit | label_binary).
        api_key_env: name of the environment variable holding the judge API key (never the key itself).
        concurrency: simultaneous judge requests.
        timeout_s: per-request timeout of judge calls.
        table_rows: at most this many rows in the W&B table.
    """

    def __init__(self, every_n_validations: int = 1, split: str = "val", max_samples: int | None = None,
                 out_dir: str | None = None, at_fit_end: bool = True, judge_base_url: str | None = None,
                 judge_model: str = "judge", rubric: str = "reference_match",
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, timeout_s: float = 60.0,
                 table_rows: int = 200) -> None:
        self.every = max(1, int(every_n_validations))
        self.split = split
        self.max_samples = max_samples
        self.out_dir = out_dir
        self.at_fit_end = at_fit_end
        self.judge_base_url = judge_base_url
        self.judge_model = judge_model
        self.rubric = rubric
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.table_rows = table_rows
        self.validations = 0
        self.last_step: int | None = None
        self.history: list[dict] = []

    # ---- hooks ------------------------------------------------------------------------------------
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if self.validations % self.every == 0:
            self.evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_fit_end and self.last_step != trainer.global_step:
            self.evaluate(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"validations": self.validations, "last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.validations = int(state.get("validations", 0))
        self.last_step = state.get("last_step")

    # ---- one evaluation ---------------------------------------------------------------------------
    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict | None:
        """Generate, gather, score and judge; returns the logged metrics on rank 0 (None elsewhere)."""
        self.last_step = trainer.global_step
        loader = trainer.datamodule.generation_dataloader(self.split)
        local = generate_rows(pl_module.generate, loader, max_samples=self.max_samples,
                              to_device=lambda b: b.to(pl_module.device), seed=None)
        rows = _gather_rows(local, trainer.world_size)
        if not trainer.is_global_zero:
            return None
        rows.sort(key=lambda r: (r.key, r.extra.get("qa_index") or 0, r.question))
        out = Path(self.out_dir or Path(trainer.default_root_dir) / "judge_eval") / f"step{trainer.global_step:07d}"
        out.mkdir(parents=True, exist_ok=True)
        write_predictions(out / "predictions.jsonl", rows)
        metrics = flatten_metrics("eval", score_predictions(rows))
        judged = None
        if self.judge_base_url:
            summary, judged = self._judge(rows, out)
            metrics.update(flatten_metrics("judge", summary))
        else:
            rank_zero_info("JudgeEvalCallback: LLM judge is off (no judge_base_url); deterministic scorers only")
        metrics["eval/n_items"] = float(len(rows))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        self.history.append({"step": trainer.global_step, **metrics})
        self._log(trainer, metrics, rows, judged)
        return metrics

    def _judge(self, rows: list[PredictionRow], out: Path):
        from paralm.api.client import ChatClient, ClientConfig
        from paralm.judge.commands import judge_to_dir
        from paralm.judge.judge import Judge
        from paralm.judge.results import read_judged

        config = ClientConfig(base_url=self.judge_base_url, model=self.judge_model, api_key_env=self.api_key_env,
                              concurrency=self.concurrency, timeout_s=self.timeout_s,
                              cache_path=str(out.parent / "judge_cache.sqlite"))
        client = ChatClient(config)
        try:
            summary = judge_to_dir(rows, Judge(client, self.rubric), out)
        finally:
            client.close_cache()
        return summary, read_judged(out / "judged.jsonl")

    def _log(self, trainer: pl.Trainer, metrics: dict, rows: list[PredictionRow], judged) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            if type(logger).__name__ == "WandbLogger":
                columns, data = _table(rows, judged, self.table_rows)
                logger.log_table(key=f"judge_eval/{self.split}", columns=columns, data=data)


def _gather_rows(rows: list[PredictionRow], world_size: int) -> list[PredictionRow]:
    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return list(rows)
    parts: list = [None] * world_size
    dist.all_gather_object(parts, [r.to_dict() for r in rows])
    return [PredictionRow.from_dict(d) for part in parts for d in part]


def _table(rows: list[PredictionRow], judged, limit: int) -> tuple[list[str], list[list]]:
    by_id = {j.item_id: j for j in judged or []}
    columns = ["key", "audio", "type", "question", "reference", "answer", "rating", "rationale"]
    data = []
    for r in rows[:limit]:
        j = by_id.get(r.item_id)
        data.append([r.key, r.audio or "", r.type, r.question, r.reference, r.answer,
                     getattr(j, "rating", None) if j else None, getattr(j, "rationale", "") if j else ""])
    return columns, data
