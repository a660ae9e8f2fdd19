"""`paralm`: one command with subcommands.

`fit | validate | test | predict` go through LightningCLI (typed configs, repeated `--config` overlays,
`--help` for every option); the other subcommands are plain argparse programs that live beside the code
they drive and are looked up in `COMMANDS` (module path, function name) so that importing the CLI stays
cheap and a missing optional part fails only when used.
"""

from __future__ import annotations

import importlib
import os
import sys

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# "command words" -> (module, function taking argv and returning an exit code, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("export",): ("paralm.export", "main", "write safetensors + peft adapter + config from a checkpoint"),
    ("data", "pack"): ("paralm.data.pack", "main", "audio + manifest -> WebDataset shards + index"),
    ("data", "inspect"): ("paralm.data.inspect", "main", "counts, durations, label and question-type distributions"),
    ("data", "vad"): ("paralm.creation.vad", "main", "speech windows with silero-vad"),
    ("data", "transcribe"): ("paralm.creation.transcribe", "main", "Whisper transcripts with word timings"),
    ("data", "annotate"): ("paralm.creation.annotate", "main", "emotion + arousal/valence/dominance predictions"),
    ("data", "condense"): ("paralm.creation.condense", "main", "labelled windows + consistency filters"),
    ("data", "generate"): ("paralm.creation.generate", "main", "implicit QA pairs (LLM or template backend)"),
    ("judge",): ("paralm.judge.commands", "main_judge", "judge saved predictions with an LLM"),
    ("judge-validate",): ("paralm.judge.commands", "main_validate", "judge vs classification metrics"),
    ("ablate",): ("paralm.runs.ablate", "main", "run ablation rows and write the report"),
    ("sweep",): ("paralm.runs.sweep", "main", "run a W&B sweep YAML without a server"),
    ("demo",): ("paralm.demo", "main", "the main job on the embedded demo corpus"),
}


def usage() -> str:
    lines = ["usage: paralm COMMAND [options]", "", "training (LightningCLI; `paralm fit --help`):"]
    lines += [f"  {c:<22} {c} with --config experiments/X.yaml [--config overlay.yaml] [--a.b=v]"
              for c in LIGHTNING_COMMANDS]
    lines += ["", "other commands (`paralm COMMAND --help`):"]
    lines += [f"  {' '.join(words):<22} {help_}" for words, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _find(argv: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    for n in (2, 1):
        words = tuple(argv[:n])
        if words in COMMANDS:
            return words, argv[n:]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in LIGHTNING_COMMANDS:
        from paralm.lightning_cli import run_lightning_cli

        return run_lightning_cli(argv)
    found = _find(argv)
    if found is None:
        print(f"paralm: unknown command {' '.join(argv[:2])!r}\n\n{usage()}", file=sys.stderr)
        return 2
    words, rest = found
    module, func, _ = COMMANDS[words]
    try:
        fn = getattr(importlib.import_module(module), func)
    except ModuleNotFoundError as err:
        print(f"paralm {' '.join(words)}: not available ({err})", file=sys.stderr)
        return 2
    return int(fn(rest) or 0)


def entry() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())


if __name__ == "__main__":
    entry()
