"""JudgeEvalCallback inside a real Trainer fit with W&B offline: metrics and the table land in the run."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
from fake_openai_server import FakeOpenAIServer
from trainkit import tiny_datamodule, tiny_module, tiny_shards
from wandb_offline import history, records, run_file

from callbacks import JudgeEvalCallback


def _fit(tmp_path, callback, logger):
    module = tiny_module()
    dm = tiny_datamodule(tiny_shards(tmp_path, n=20), module)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, val_check_interval=1, limit_val_batches=1,
                         num_sanity_val_steps=0, logger=logger, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, callbacks=[callback],
                         default_root_dir=tmp_path)
    module.generation_config.max_new_tokens = 4
    trainer.fit(module, datamodule=dm)
    return trainer


def test_callback_logs_judge_metrics_and_table_to_offline_wandb(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OPENAI_API_KEY", "canary-key-not-a-secret")
    reply = json.dumps({"rationale": "close to the reference", "rating": 4})
    with FakeOpenAIServer(reply_fn=lambda body: reply) as server:
        cb = JudgeEvalCallback(every_n_validations=1, judge_base_url=server.base_url, judge_model="fake-judge",
                               out_dir=str(tmp_path / "judge"), timeout_s=10, audio_rows=2)
        logger = WandbLogger(project="paralm-test", save_dir=str(tmp_path), offline=True)
        _fit(tmp_path, cb, logger)
        import wandb

        wandb.finish()
        assert server.chat_requests(), "the judge endpoint was never called"
    run = run_file(tmp_path / "wandb")
    files = run.parent / "files"
    logged = [row for row in history(run) if "judge/score" in row]
    assert len(logged) == len(cb.history)
    summary = logged[-1]
    assert summary["judge/score"] == pytest.approx(80.0)
    assert summary["judge/success_rate"] == pytest.approx(1.0)
    assert "eval/n_items" in summary
    table = json.loads((files / summary["judge_eval/val/path"]).read_text()) if "judge_eval/val/path" in summary else \
        json.loads(sorted(files.rglob("*.table.json"))[-1].read_text())
    assert table["columns"][:3] == ["key", "audio", "type"]
    assert len(table["data"]) == int(summary["eval/n_items"]) and all(r[6] == 4 for r in table["data"])
    audio = [r[1] for r in table["data"]]  # the first audio_rows rows carry the clip, the rest None (never "")
    assert audio[:2] == ["Audio", "Audio"] and set(audio[2:]) == {None}
    tables = [[c for c in rec.artifact.manifest.contents if c.path.startswith("media/audio/")]
              for rec in records(run) if rec.WhichOneof("record_type") == "artifact"]  # one per logged table
    assert tables and all(len(wavs) == len({r[0] for r in table["data"][:2]}) for wavs in tables)
    assert all(c.size > 1000 for wavs in tables for c in wavs)  # real clips, not empty files
    assert len(cb.history) >= 2  # after each validation and not again at fit end (same step)


def test_callback_without_judge_runs_scorers_and_says_judge_is_off(tmp_path, caplog):
    cb = JudgeEvalCallback(every_n_validations=2, out_dir=str(tmp_path / "judge"))
    _fit(tmp_path, cb, logger=False)
    assert len(cb.history) == 1
    metrics = cb.history[0]
    assert not any(k.startswith("judge/") for k in metrics)
    assert any(k.startswith("eval/labels/emotion") for k in metrics)
    preds = list((tmp_path / "judge").rglob("predictions.jsonl"))
    assert preds and preds[0].read_text().strip()
