"""`paralm data pack --from-hf PATH`: a local Hugging Face dataset with an `Audio` column -> shards + index.

Most public emotion corpora are distributed as `datasets` datasets. Accepted, all local (nothing is
downloaded; the hub is switched off before `datasets` is imported): a folder written by
`Dataset.save_to_disk` / `DatasetDict.save_to_disk`, or a folder `datasets.load_dataset(folder)` reads
(parquet / arrow / csv / json files).

Audio: recent `datasets` versions decode audio through torchcodec, which needs FFmpeg and a wheel matched
to torch. The audio column is therefore cast to `Audio(decode=False)`, which yields the stored bytes (or a
file path), and those bytes go through the same soundfile decoding as every other input.
Columns: the `--map` field map (paralm/data/foreign/field_map.py) says which column fills which schema
field; a `ClassLabel` column is read as its label *names*, so `labels.gold.emotion: emotion` needs no
value table when the names are the schema's. Keys: the audio file's stem when the rows carry paths,
else `<split>-<row number>`. Split: the DatasetDict's split name unless the map says otherwise.
`datasets` is the optional extra `pip install 'paralm[hf]'`, imported only here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from paralm.data.foreign.field_map import FieldMap
from paralm.data.manifest import RowProblem
from paralm.fault.exits import UserError

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-+=@,:~]")


def import_datasets():
    """The `datasets` module, offline; a one-line UserError naming the extra when it is not installed."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError as exc:
        raise UserError("--from-hf needs the optional `datasets` package: pip install 'paralm[hf]' "
                        f"({exc})") from None
    return datasets


def load_local(path: str | os.PathLike) -> dict:
    """{split name: Dataset} from a save_to_disk folder or a local data-files folder; never downloads."""
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"--from-hf {path}: not a local folder (datasets are read from disk only, never downloaded)")
    datasets = import_datasets()
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        loaded = datasets.load_from_disk(str(folder))
    else:
        try:
            loaded = datasets.load_dataset(str(folder))
        except Exception as exc:  # datasets raises many types for "no data files here"
            raise UserError(f"--from-hf {path}: no dataset here ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(loaded, datasets.Dataset):
        return {loaded.split and str(loaded.split) or "": loaded}
    return dict(loaded.items())


def audio_column(dataset, fmap: FieldMap) -> str:
    """The map's audio column when it names one of the columns, else the first `Audio` column."""
    from datasets import Audio

    named = [c for c in fmap.audio if c in dataset.features]
    if named:
        return named[0]
    audio = [name for name, feature in dataset.features.items() if isinstance(feature, Audio)]
    if not audio:
        raise UserError(f"no Audio column among {list(dataset.features)}; name it with `audio: COLUMN` in --map")
    return audio[0]


def _label_names(dataset) -> dict:
    from datasets import ClassLabel

    return {name: f for name, f in dataset.features.items() if isinstance(f, ClassLabel)}


def _audio_bytes(value: dict, root: Path) -> tuple[bytes | None, str]:
    """(encoded bytes, file name) of an undecoded Audio value; bytes None when neither bytes nor file exist."""
    name = str(value.get("path") or "")
    if value.get("bytes"):
        return bytes(value["bytes"]), name
    if name:
        path = Path(name) if Path(name).is_absolute() else root / name
        if path.is_file():
            return path.read_bytes(), name
    return None, name


def hf_records(path: str | os.PathLike, fmap: FieldMap, workdir: Path) -> Iterator[dict | RowProblem]:
    """Manifest-like records (audio bytes written to `workdir`, one file at a time) for `paralm.data.pack.pack`.

    The dataset is opened here, before packing starts, so a wrong path is one error line and no output."""
    splits = load_local(path)
    return _records(path, splits, fmap.with_defaults(corpus=Path(path).resolve().name), workdir)


def _records(path, splits: dict, fmap: FieldMap, workdir: Path) -> Iterator[dict | RowProblem]:
    from datasets import Audio

    for split, dataset in splits.items():
        column = audio_column(dataset, fmap)
        dataset = dataset.cast_column(column, Audio(decode=False))
        labels = _label_names(dataset)
        split_map = fmap.with_defaults(split=split or None)
        previous: Path | None = None
        for i, row in enumerate(dataset):
            if previous is not None:
                previous.unlink(missing_ok=True)  # pack has read it by the time the next row is asked for
            data, name = _audio_bytes(row.pop(column) or {}, Path(path))
            record = {k: _named(labels, k, v) for k, v in row.items()}
            meta = split_map.apply(record, None, name=split)
            meta.setdefault("key", _KEY_UNSAFE.sub("_", Path(name).stem) if name else f"{split or 'row'}-{i:07d}")
            meta.setdefault("transcript", "")
            if data is None:
                yield RowProblem(f"{split} row {i}", str(meta["key"]), name, "missing_member",
                                 "the Audio value has neither bytes nor a readable file")
                continue
            previous = workdir / f"row-{i:07d}{Path(name).suffix or '.audio'}"
            previous.write_bytes(data)
            yield {**meta, "audio": previous.name}


def _named(labels: dict, column: str, value):
    """A ClassLabel id as its name (-1, "no label", stays as it is and fails the schema if mapped)."""
    feature = labels.get(column)
    if feature is not None and isinstance(value, int) and 0 <= value < feature.num_classes:
        return feature.int2str(value)
    return value
