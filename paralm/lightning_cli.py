"""LightningCLI for `paralm fit | validate | test | predict`.

Model and data are fixed classes (`SpeechLMModule`, `MixtureDataModule`), so every option is a typed,
documented argument. After instantiation the CLI hands the model's tokenizer and `AudioTokenSpec` to the
datamodule: the data layer never imports the model, it is told how many audio tokens a clip becomes.

Around Lightning's own CLI this adds what a user of the command relies on:
- every file of a run under `<trainer.default_root_dir>/<run_name>/` (paralm/run_folder.py) and the full
  resolved config in `<run>/config.yaml` and in the logger's run config (paralm/run_config.py);
- W&B mode, name and group from the config, `--run_name`, `--run_group` (paralm/wandb_run.py);
- `--ckpt_path` and `--resume PATH` verified (completeness marker) before anything reads the file, exit 3;
- key-shaped values and values of secret-named options masked in everything printed, parse errors included;
- ordinary mistakes (wrong folder, unknown name, refused secret, skip rate) end with one line and a code
  from paralm/fault/exits.py; tracebacks only for bugs, or for everything with `--debug`.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks.nonfinite import NonFiniteGuard
from callbacks.preemption import PreemptionCheckpoint
from paralm.data.datamodule import MixtureDataModule
from paralm.fault.checkpoint_io import AtomicCheckpointIO
from paralm.fault.exits import EXIT_USER_ERROR, FaultExit, UserError
from paralm.fault.orphans import bind_ranks_to_rank0
from paralm.fault.resume import LIGHTNING_CKPT_WORDS, checkpoint_folders, resolve_resume, verified_option_path
from paralm.fault.resume import MODES as RESUME_MODES
from paralm.lit_module import SpeechLMModule
from paralm.run_config import RunConfigSaver
from paralm.run_folder import default_run_name, resolve_paths, run_dir
from paralm.secret_guard import SecretInConfigError, masked_stdio, refuse_secrets_in_args, secret_values
from paralm.wandb_run import configure_wandb_loggers, resolve_mode, said_mode

PROJECT_DIRS = tuple(str(Path(__file__).resolve().parents[1] / d) + os.sep for d in ("paralm", "callbacks"))
USER_ERROR_TYPES = (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError)
SPECIFIC = re.compile(r"not accepted|unrecognized|expected|no action|does not exist|not a valid|invalid", re.I)


class ParserExit(SystemExit):
    """The config parser refused the command line (it has printed its message)."""


class ParalmCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str, default="",
                            help="Name of the run: the W&B run name and the run folder <trainer.default_root_dir>/"
                                 "<run_name> (default: the --config file stems joined by '+').")
        parser.add_argument("--run_group", type=str, default="", help="W&B group of the run (default: none).")
        parser.add_argument("--debug", type=bool, default=False,
                            help="Show the traceback of every error (default: only for bugs).")
        parser.add_argument("--resume", type=str, default="none",
                            help=f"{' | '.join(RESUME_MODES)} | PATH: which checkpoint to continue from "
                                 "(auto: newest valid one, exit 3 if none; see docs/reliability.md).")
        parser.add_argument("--resume_dir", type=str, default=None,
                            help="Folder --resume auto searches (default: the run's checkpoint folders).")
        parser.add_lightning_class_args(PreemptionCheckpoint, "preemption")
        parser.add_lightning_class_args(NonFiniteGuard, "nonfinite")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except SystemExit as stop:
            if stop.code in (0, None):
                raise
            raise ParserExit(stop.code) from None

    def _parse_ckpt_path(self) -> None:
        """Verify `--ckpt_path` before Lightning loads it to merge its hyper_parameters (exit 3 if unmarked)."""
        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if path and str(path) not in LIGHTNING_CKPT_WORDS:
            verified_option_path(str(path), "--ckpt_path")
        import pickle

        from paralm.fault.checkpoint_io import CheckpointError

        try:
            super()._parse_ckpt_path()
        except pickle.UnpicklingError as err:  # a marked file holding more than tensors: refused, never run
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()] or [type(err).__name__]
            reason = next((ln for ln in lines if "Unsupported global" in ln or "Unpickler error" in ln), lines[0])
            raise CheckpointError(f"--ckpt_path {path}: {Path(str(path)).name} failed to load with "
                                  f"weights_only=True (it holds objects other than tensors: {reason[:200]})") from None

    def before_instantiate_classes(self) -> None:
        refuse_secrets_in_args(self.config)
        sub = self.config[self.subcommand]
        sub.run_name = sub.get("run_name") or default_run_name(sub.get("config"))
        self.run_dir = run_dir(sub.trainer.get("default_root_dir"), sub.run_name)
        check_model_folders(sub)
        self.wandb_mode = resolve_mode(said_mode(self._raw_logger()))

    def _raw_logger(self):
        """trainer.logger as the user's files and flags give it, without defaults (None if unparsable)."""
        try:
            raw = self.parser.parse_args(sys.argv[1:], defaults=False)
        except SystemExit:
            return None
        return (raw.get(self.subcommand) or {}).get("trainer", {}).get("logger")

    def instantiate_classes(self) -> None:
        """Instantiate from a copy whose output paths point into the run folder; config.yaml keeps the
        paths as given (plus the run name), so rerunning it lands in the same folder again."""
        original = self.config
        self.config = original.clone()
        resolve_paths(self.config[self.subcommand], self.run_dir)
        try:
            super().instantiate_classes()
        finally:
            self.config = original
        for cb in self.trainer.callbacks:
            if isinstance(cb, RunConfigSaver):
                cb.config = original[self.subcommand]
        sub = original[self.subcommand]
        configure_wandb_loggers(self.trainer.loggers, self.wandb_mode, sub.run_name, sub.get("run_group") or None)
        if self.datamodule is not None:
            self.datamodule.attach(self.model.tokenizer, self.model.audio_token_spec)
        if not isinstance(self.trainer.strategy.checkpoint_io, AtomicCheckpointIO):
            raise UserError("trainer.plugins must include paralm.checkpointing.AtomicCheckpointIO (atomic, "
                            "verified checkpoints); a plugins list in a config replaces the default one")
        self._apply_resume()

    def before_predict(self) -> None:
        """`paralm predict`: weights through paralm.predict.load_for_prediction, answers to a jsonl."""
        from paralm.predict import prepare_predict

        prepare_predict(self)

    def _apply_resume(self) -> None:
        """Map --resume onto the subcommand's ckpt_path (see paralm/fault/resume.py)."""
        sub = self.config_init[self.subcommand]
        mode = sub.get("resume") or "none"
        if mode == "none":
            return
        if sub.get("ckpt_path"):
            raise UserError(f"give either --ckpt_path or --resume, not both (got {sub.ckpt_path!r} and {mode!r})")
        sub.ckpt_path = resolve_resume(mode, checkpoint_folders(self.trainer, sub.get("resume_dir")))


def check_model_folders(sub) -> None:
    """A model `path` that is not a folder: one line now, instead of a hub lookup traceback later."""
    model = (sub.get("model") or {}).get("model") or {}
    for part in ("encoder", "llm"):
        path = (model.get(part) or {}).get("path")
        if path and not Path(path).is_dir():
            raise UserError(f"--model.model.{part}.path {path}: no such folder (relative to {os.getcwd()}); "
                            "point it at a local Hugging Face model folder (config.json + weights)")


def trainer_defaults() -> dict:
    return {
        "plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.{AtomicCheckpointIO.__name__}"}],
        "default_root_dir": os.environ.get("PARALM_RUNS_DIR", "runs"),
    }


def argv_secret_values(argv: list[str]) -> list[str]:
    """Secret values named in the flags and in the --config files, to mask them in every message."""
    import yaml

    flags, configs, found, pending = {}, [], [], None
    for word in argv:
        if word.startswith("--") and "=" in word:
            pending, value = word[2:].split("=", 1)
        elif word.startswith("-") and len(word) > 1 and not word[1].isdigit():
            pending = word.lstrip("-")
            continue
        elif pending is not None:
            value = word
        else:
            continue
        if pending in ("config", "c"):
            configs.append(value)
        else:
            flags[pending] = value
        pending = None
    for path in configs:
        if os.path.isfile(path):
            try:
                found += secret_values(yaml.safe_load(Path(path).read_text()))
            except (OSError, yaml.YAMLError):
                pass
    return sorted(set(found + secret_values(flags)), key=len, reverse=True)


def is_user_error(err: BaseException) -> bool:
    """An ordinary mistake (a path or value the project's own checks refused), not a bug."""
    if isinstance(err, (FaultExit, SecretInConfigError)):
        return True
    if not isinstance(err, USER_ERROR_TYPES):
        return False
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PROJECT_DIRS)


def _parser_error_line(tail: str) -> str:
    """The parser's own error line (plus its first detail), to repeat as the last line printed."""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    start = max((i for i, ln in enumerate(lines) if ln.startswith("error:")), default=None)
    if start is None:
        return "the command line or a config file was refused (see above)"
    details = lines[start + 1:]
    listed = next((ln for ln in details if ln.startswith("- ")), "")
    detail = next((ln for ln in details if SPECIFIC.search(ln)), listed)
    return " ".join([lines[start][len("error:"):].strip(), detail.lstrip("- ")]).strip()


def run_lightning_cli(argv: list[str], debug: bool = False) -> int:
    """Run one Lightning subcommand; returns its exit code (a parse error raises SystemExit(2) as before).

    `debug` (or `--debug` anywhere in argv, also `paralm --debug fit ...`): tracebacks for every error."""
    debug = debug or "--debug" in argv or "--debug=true" in argv
    argv = [a for a in argv if a != "--debug"]  # the bare flag; `--debug=true` is a parser option too
    # Lightning's DDP launcher starts ranks > 0 by re-running sys.argv, so it must hold this very command;
    # LightningCLI then parses sys.argv itself (args=None: it warns when both are given).
    sys.argv = sys.argv[:1] + list(argv)
    bind_ranks_to_rank0()  # DDP ranks > 0 die with the rank that started them (paralm/fault/orphans.py)
    command = f"paralm {argv[0] if argv else ''}"
    with masked_stdio(argv_secret_values(list(argv))) as err:
        try:
            ParalmCLI(
                SpeechLMModule,
                MixtureDataModule,
                args=None,
                trainer_defaults=trainer_defaults(),
                save_config_callback=RunConfigSaver,
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
                parser_kwargs={"description": "paralm: train and evaluate Speech-LLMs (LightningCLI)"},
            )
        except ParserExit as stop:  # the parser printed usage and its message; repeat the message last
            print(f"{command}: error: {_parser_error_line(err.tail)} (`{command} --help` lists the options)",
                  file=sys.stderr)
            raise SystemExit(stop.code) from None
        except Exception as error:  # noqa: BLE001 - sorted into user errors (one line) and bugs (traceback)
            if not is_user_error(error):
                raise
            if debug:
                traceback.print_exc()
            code = getattr(error, "exit_code", EXIT_USER_ERROR)
            said_enough = debug or isinstance(error, (FaultExit, SecretInConfigError))
            hint = "" if said_enough else " (add --debug for the traceback)"
            print(f"{command}: {error}{hint}", file=sys.stderr)
            return code
    return 0
