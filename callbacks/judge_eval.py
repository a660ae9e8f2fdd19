"""JudgeEvalCallback: generate on the evaluation set during training, score, judge, log.

Every `every_n_validations` validation runs (and once at the end of fit) the callback asks the
LightningModule's `generate()` for answers to the eval split (each rank generates its own share of the
datamodule's generation loader; rows are gathered on rank 0), writes predictions JSONL, runs the
deterministic scorers (label accuracy / macro-F1 on DP questions, token F1), and, when a judge endpoint
is configured, the LLM judge through the shared API client. Metrics go to the logger as `eval/...` and
`judge/...`; with a W&B logger a table of (audio, question, reference, answer, rating, rationale) rows is
logged too, the first `audio_rows` rows with the clip itself (`wandb.Audio`) so it can be listened to.
Results of one evaluation go to `<out_dir>/step<global step>`: during fit the trainer's step, under
`paralm validate --ckpt_path X` the step X was saved at; a folder that already exists is never
overwritten (the next free `step<N>-2`, `-3`, ... is used, and said). With no judge endpoint configured
the deterministic scorers still run and the callback says that the LLM judge is off. It talks to the
module only through `generate()` and the logger.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from paralm.api.chat_types import ClientConfig
from paralm.eval.generation import flatten_metrics, gather_rows, generate_rows
from paralm.eval.scorers import score_predictions
from paralm.formats.predictions import PredictionRow, write_predictions
from paralm.judge.judge import JudgeSettings


class JudgeEvalCallback(pl.Callback):
    """Periodic generation + scoring + LLM judging during fit.

    Args:
        every_n_validations: run after every N-th validation (sanity check excluded).
        split: which eval split of the datamodule to generate on (val | test).
        max_samples: cap on evaluated items per run (None: all).
        out_dir: where predictions and judge results go (default: the run folder's judge_eval/, i.e.
            <trainer.default_root_dir>/judge_eval, which `paralm fit` points at <root>/<run_name>).
        at_fit_end: also run once when fit ends (unless the last validation already did at that step).
        client: the judge's API client (`ClientConfig`: base_url, model, api_key_env, concurrency,
            timeout_s, max_retries, backoff, budget, prices); None: LLM judge off. Its cache defaults to
            <out_dir>/judge_cache.sqlite.
        rubric: judge rubric name (reference_match | paralinguistic_fit | label_binary).
        table_rows: at most this many rows in the W&B table.
        audio_rows: the first this many table rows carry the clip as `wandb.Audio` (0: none; clips are
            read again from the shards, so keep it small).
        judge: how each judge request is sampled (max_tokens, temperature, json_mode, invalid_retries
            re-asks of unreadable replies, max_field_chars): the same settings as `paralm judge`.
        judge_base_url: earlier flat spelling of `client.base_url` (configs written before `client`).
        judge_model: earlier flat spelling of `client.model` ("judge" when only judge_base_url is given).
        api_key_env: earlier flat spelling of `client.api_key_env`.
        concurrency: earlier flat spelling of `client.concurrency`.
        timeout_s: earlier flat spelling of `client.timeout_s`.
        max_retries: earlier flat spelling of `client.max_retries`.
    """

    def __init__(self, every_n_validations: int = 1, split: str = "val", max_samples: int | None = None,
                 out_dir: str | None = None, at_fit_end: bool = True, client: ClientConfig | None = None,
                 rubric: str = "reference_match", table_rows: int = 200, audio_rows: int = 16,
                 judge: JudgeSettings | None = None, judge_base_url: str | None = None,
                 judge_model: str | None = None, api_key_env: str | None = None, concurrency: int | None = None,
                 timeout_s: float | None = None, max_retries: int | None = None) -> None:
        self.every = max(1, int(every_n_validations))
        self.split = split
        self.max_samples = max_samples
        self.out_dir = out_dir
        self.at_fit_end = at_fit_end
        self.client = with_flat_keys(client, judge_base_url=judge_base_url, judge_model=judge_model,
                                     api_key_env=api_key_env, concurrency=concurrency, timeout_s=timeout_s,
                                     max_retries=max_retries)
        self.rubric = rubric
        self.table_rows = table_rows
        self.audio_rows = max(0, int(audio_rows))
        self.judge_settings = judge if judge is not None else JudgeSettings()
        self.validations = 0
        self.last_step: int | None = None
        self.history: list[dict] = []

    @property
    def judge_base_url(self) -> str | None:
        """The judge endpoint, None when the LLM judge is off."""
        return None if self.client is None else self.client.base_url

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
        rows = gather_rows(local)
        if not trainer.is_global_zero:
            return None
        step = evaluation_step(trainer)
        out = fresh_folder(Path(self.out_dir or Path(trainer.default_root_dir) / "judge_eval"), f"step{step:07d}")
        write_predictions(out / "predictions.jsonl", rows)
        metrics = flatten_metrics("eval", score_predictions(rows))
        judged = None
        if self.client is not None:
            summary, judged = self._judge(rows, out)
            metrics.update(flatten_metrics("judge", summary))
        else:
            rank_zero_info("JudgeEvalCallback: LLM judge is off (no client); deterministic scorers only")
        metrics["eval/n_items"] = float(len(rows))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        self.history.append({"step": step, "folder": str(out), **metrics})
        self._log(trainer, step, metrics, rows, judged)
        return metrics

    def _judge(self, rows: list[PredictionRow], out: Path):
        from paralm.api.client import ChatClient
        from paralm.judge.commands import judge_to_dir
        from paralm.judge.judge import Judge
        from paralm.judge.results import read_judged

        cache = self.client.cache_path or str(out.parent / "judge_cache.sqlite")
        client = ChatClient(replace(self.client, cache_path=cache))
        try:
            summary = judge_to_dir(rows, Judge(client, self.rubric, self.judge_settings), out)
        finally:
            client.close_cache()
        return summary, read_judged(out / "judged.jsonl")

    def _log(self, trainer: pl.Trainer, step: int, metrics: dict, rows: list[PredictionRow], judged) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            if type(logger).__name__ == "WandbLogger":
                clips = read_clips(trainer.datamodule, self.split, [r.key for r in rows[:self.audio_rows]])
                columns, data = _table(rows, judged, self.table_rows, clips, self.audio_rows)
                logger.log_table(key=f"judge_eval/{self.split}", columns=columns, data=data)


# earlier flat init_args -> ClientConfig field (the others kept their names)
FLAT_CLIENT_KEYS = {"judge_base_url": "base_url", "judge_model": "model"}


def with_flat_keys(client: ClientConfig | None, **flat) -> ClientConfig | None:
    """`client` with the earlier flat init_args that were given (not None) applied on top. Without a
    `client`, they make one only when `judge_base_url` is set (as before: no endpoint, no judge), with
    the model "judge" unless `judge_model` names one."""
    given = {FLAT_CLIENT_KEYS.get(k, k): v for k, v in flat.items() if v is not None}
    if client is not None:
        return replace(client, **given)
    if "base_url" not in given:
        return None
    return ClientConfig(**{"model": "judge", **given})


def _table(rows: list[PredictionRow], judged, limit: int, clips: dict | None = None,
           audio_rows: int = 0) -> tuple[list[str], list[list]]:
    """Table rows; the first `audio_rows` carry their clip from `clips` (key -> `wandb.Audio`), the rest
    None (never "")."""
    by_id = {j.item_id: j for j in judged or []}
    columns = ["key", "audio", "type", "question", "reference", "answer", "rating", "rationale"]
    data = []
    for i, r in enumerate(rows[:limit]):
        j = by_id.get(r.item_id)
        audio = (clips or {}).get(r.key) if i < audio_rows else None
        data.append([r.key, audio, r.type, r.question, r.reference, r.answer,
                     getattr(j, "rating", None) if j else None, getattr(j, "rationale", "") if j else ""])
    return columns, data


def read_clips(datamodule, split: str, keys: list[str]) -> dict:
    """`wandb.Audio` per key, read from the split's shards; a clip that cannot be read is left out (said)."""
    import wandb

    from paralm.data.reader import SampleReader, SkipSample

    wanted, clips = set(keys), {}
    sources = datamodule.sources(split) if wanted and hasattr(datamodule, "sources") else []
    for src in sources:
        reader = SampleReader(src.root, require_transcript=False)
        for row in src.rows:
            if row.key not in wanted or row.key in clips:
                continue
            try:
                sample = reader.read(row)
            except (SkipSample, OSError) as err:
                rank_zero_warn(f"JudgeEvalCallback: clip {row.key} not put into the table: {err}")
                continue
            clips[row.key] = wandb.Audio(sample.audio, sample_rate=sample.sample_rate, caption=row.key)
    return clips


def evaluation_step(trainer: pl.Trainer) -> int:
    """The step an evaluation belongs to: the trainer's during fit, else the loaded checkpoint's."""
    if trainer.state.fn == TrainerFn.FITTING or not trainer.ckpt_path:
        return trainer.global_step
    from paralm.fault.checkpoint_io import checkpoint_step

    return checkpoint_step(trainer.ckpt_path)


def fresh_folder(parent: Path, name: str) -> Path:
    """`parent/name`, or the first free `parent/name-2`, `-3`, ... when it exists (and say so)."""
    folder, n = parent / name, 1
    while folder.exists():
        n += 1
        folder = parent / f"{name}-{n}"
    if n > 1:
        rank_zero_warn(f"JudgeEvalCallback: {parent / name} exists (an earlier evaluation of this step); "
                       f"writing {folder} instead of overwriting it")
    folder.mkdir(parents=True)
    return folder
