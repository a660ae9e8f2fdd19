"""`paralm data pack --from-lhotse CUTS.jsonl.gz [SUPERVISIONS.jsonl.gz]`: Lhotse manifests -> shards + index.

The NeMo / k2 world keeps corpora as Lhotse manifests: a CutSet, or a RecordingSet with a SupervisionSet.
Each cut becomes one clip: its audio is loaded through Lhotse's libsndfile backend (so cuts that are
segments of longer recordings come out cut), the supervisions' text joined in order becomes the
transcript, and the field map (paralm/data/foreign/field_map.py) reaches every other field of the
record below, e.g. `labels.gold.emotion: custom.emotion`:

    {"id", "recording_id", "text", "speaker", "gender", "language",
     "custom": {cut custom fields, then the first supervision's custom fields},
     "supervision": {the first supervision as a dict}}

Without a map: transcript <- text, labels.gold.emotion <- custom.emotion; keys are the cut ids.
`lhotse` is the optional extra `pip install 'paralm[lhotse]'`, imported only here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import soundfile as sf

from paralm.data.foreign.field_map import FieldMap
from paralm.data.manifest import RowProblem
from paralm.fault.exits import UserError

DEFAULT_FIELDS = {"transcript": "text", "labels.gold.emotion": "custom.emotion"}
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-+=@,:~]")


def import_lhotse():
    try:
        import lhotse
    except ImportError as exc:
        raise UserError(f"--from-lhotse needs the optional `lhotse` package: pip install 'paralm[lhotse]' ({exc})") from None
    return lhotse


def load_cuts(paths: list[str]):
    """A CutSet from a cut manifest, or from a recording manifest plus an optional supervision manifest."""
    lhotse = import_lhotse()
    manifests = []
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"--from-lhotse {path}: no such manifest file")
        try:
            manifests.append(lhotse.load_manifest(path))
        except Exception as exc:  # lhotse raises ValueError / KeyError / JSON errors for foreign files
            raise UserError(f"--from-lhotse {path}: not a Lhotse manifest ({type(exc).__name__}: {str(exc)[:200]})") from None
    kinds = {type(m).__name__: m for m in manifests}
    if "CutSet" in kinds and len(manifests) == 1:
        return kinds["CutSet"]
    if "RecordingSet" in kinds and len(manifests) == len(kinds) and set(kinds) <= {"RecordingSet", "SupervisionSet"}:
        return lhotse.CutSet.from_manifests(recordings=kinds["RecordingSet"], supervisions=kinds.get("SupervisionSet"))
    raise UserError(f"--from-lhotse takes one CutSet, or a RecordingSet (+ a SupervisionSet); got {list(kinds)}")


def cut_record(cut) -> dict:
    """The record the field map reads for one cut (see the module docstring)."""
    sups = sorted(cut.supervisions, key=lambda s: s.start)
    first = sups[0] if sups else None
    custom = {**(getattr(cut, "custom", None) or {}), **((first.custom or {}) if first else {})}
    return {
        "id": cut.id,
        "recording_id": getattr(cut, "recording_id", None),
        "text": " ".join(s.text.strip() for s in sups if s.text and s.text.strip()),
        "speaker": first.speaker if first else None,
        "gender": first.gender if first else None,
        "language": first.language if first else None,
        "custom": custom,
        "supervision": first.to_dict() if first else {},
    }


def _subtype(cut) -> str:
    """The source file's sample format when it is plain PCM (written back exactly), else 32-bit float."""
    try:
        source = cut.recording.sources[0]
        if source.type == "file":
            subtype = sf.info(source.source).subtype
            return subtype if subtype in ("PCM_16", "PCM_24", "PCM_32") else "FLOAT"
    except (AttributeError, IndexError, RuntimeError, sf.LibsndfileError):
        pass
    return "FLOAT"


def lhotse_records(paths: list[str], fmap: FieldMap, workdir: Path) -> Iterator[dict | RowProblem]:
    """Manifest-like records (audio written to `workdir` as WAV, one file at a time) for `pack`.

    The manifests are read here, before packing starts, so a wrong path is one error line and no output."""
    cuts = load_cuts(paths)
    fmap = FieldMap(fmap.audio, {**DEFAULT_FIELDS, **fmap.fields}, fmap.values, fmap.split, fmap.corpus, fmap.qa)
    return _records(cuts, paths, fmap.with_defaults(corpus=Path(paths[0]).name.split(".")[0]), workdir)


def _records(cuts, paths: list[str], fmap: FieldMap, workdir: Path) -> Iterator[dict | RowProblem]:
    lhotse = import_lhotse()
    previous: Path | None = None
    with lhotse.audio_backend("LibsndfileBackend"):
        for i, cut in enumerate(cuts):
            if previous is not None:
                previous.unlink(missing_ok=True)
            record = cut_record(cut)
            meta = fmap.apply(record, None, name=Path(paths[0]).name)
            meta.setdefault("key", _KEY_UNSAFE.sub("_", str(cut.id)))
            meta.setdefault("transcript", "")
            try:
                audio = cut.load_audio()
            except Exception as exc:  # missing file, unreadable audio: counted, the pack goes on
                yield RowProblem(f"cut {i}", str(meta["key"]), str(cut.id), "corrupt_audio",
                                 f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            previous = workdir / f"cut-{i:07d}.wav"
            sf.write(previous, audio.T, int(cut.sampling_rate), format="WAV", subtype=_subtype(cut))
            yield {**meta, "audio": previous.name}
