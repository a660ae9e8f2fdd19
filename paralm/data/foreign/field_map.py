"""Field maps: how a corpus that was not written in paralm's schema becomes schema metadata.

Why one mechanism for all foreign inputs: tar shards from another pipeline (`wav` + `cls` + `txt`
members), a Hugging Face dataset (columns) and Lhotse cuts (supervisions, custom fields) all reduce to
one flat-ish *record* per clip (a dict; nested values are reached with dotted paths), and one map says
which record entry fills which schema field. The map is a small YAML file (or dict):

    audio: [wav, flac]              # record entries holding audio, tried in order (tar: member extensions)
    fields:                         # schema path <- record path
      transcript: txt               # the text of the `txt` member
      labels.gold.emotion: cls      # the text of the `cls` member (or `json.emotion`, a JSON field)
    values:                         # renames of record values, per schema path
      labels.gold.emotion: [neutral, happy, sad, angry]     # a list maps 0, 1, 2, ... by position
      # or {ang: angry, hap: happy}
    split: train                    # one value | {field: json.split} | {pattern: "(train|val|test)"}
    corpus: my_corpus               # default: the folder (or file) name of the input
    qa:                             # optional QA pairs from record fields
      - {question: json.q, answer: json.a, type: DP, asks: emotion, origin: human}

A tar group's record is {extension: member text, ..., "json": parsed JSON member}; when a JSON member
holds an object it is also the starting metadata, so shards already in paralm's schema need no map.
`duration` is never taken from the record: callers measure it from the decoded audio.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from paralm.data.manifest import NUMERIC_LEAVES, _set_path
from paralm.data.schema import EMOTIONS, GENDERS, QA_ORIGINS, QUESTION_TYPES
from paralm.data.tario import AUDIO_EXTS

MAP_KEYS = ("audio", "fields", "values", "split", "corpus", "qa")
_CHOICES = {"emotion": EMOTIONS, "gender": GENDERS}


class MapError(ValueError):
    """A field map that cannot be used; the message names the entry."""


@dataclass(frozen=True)
class SplitRule:
    """Where `split` comes from: one `value`, a record `field`, or a regex `pattern` on the input's name."""

    value: str | None = None
    field: str | None = None
    pattern: str | None = None

    def resolve(self, record: dict, name: str) -> str | None:
        if self.field is not None:
            found = lookup(record, self.field)
            return None if found is None else str(found).strip()
        if self.pattern is not None:
            match = re.search(self.pattern, name)
            if match is None:
                return None
            return match.groupdict().get("split") or (match.group(1) if match.groups() else match.group(0))
        return self.value


@dataclass(frozen=True)
class FieldMap:
    """A parsed field map (see the module docstring). The empty map keeps JSON metadata as it is."""

    audio: tuple[str, ...] = AUDIO_EXTS
    fields: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    split: SplitRule | None = None
    corpus: str | None = None
    qa: tuple[dict, ...] = ()

    def apply(self, record: dict, base: dict | None = None, name: str = "") -> dict:
        """Metadata for one record: `base` (e.g. the JSON member) with mapped fields, split, corpus and QA set.

        `name` is the input's name (shard file, dataset split) that a split `pattern` is matched against.
        Values are copied as found; validation is the schema's job, so a bad value becomes a counted skip.
        """
        meta = copy.deepcopy(base or {})  # the caller compares base and result to see whether anything changed
        for target, source in self.fields.items():
            value = lookup(record, source)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            _set_path(meta, target.split("."), self._convert(target, value))
        if self.split is not None:
            split = self.split.resolve(record, name)
            if split:
                meta["split"] = split
        if self.corpus and not meta.get("corpus"):
            meta["corpus"] = self.corpus
        pairs = [pair for rule in self.qa if (pair := _qa_pair(rule, record))]
        if pairs:
            meta["qa"] = list(meta.get("qa") or []) + pairs
        return meta

    def _convert(self, target: str, value: Any) -> Any:
        leaf = target.rsplit(".", 1)[-1]
        renames = self.values.get(target)
        if isinstance(renames, list):
            try:
                value = renames[int(str(value).strip())]
            except (ValueError, IndexError):
                pass  # left as found: the schema check names it
        elif isinstance(renames, dict):
            value = renames.get(str(value).strip(), renames.get(value, value))
        if isinstance(value, str):
            value = value.strip()
            if leaf in _CHOICES and value.lower() in _CHOICES[leaf]:
                value = value.lower()
        if leaf in NUMERIC_LEAVES and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        return value

    def with_defaults(self, corpus: str | None = None, split: str | None = None) -> FieldMap:
        """This map with a corpus / a single split filled in where the map does not say."""
        return FieldMap(
            audio=self.audio,
            fields=self.fields,
            values=self.values,
            split=self.split or (SplitRule(value=split) if split else None),
            corpus=self.corpus or corpus,
            qa=self.qa,
        )


def lookup(record: dict, path: str) -> Any:
    """`record["a"]["b"]` for "a.b"; an exact key wins over the dotted reading; None when absent."""
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _qa_pair(rule: dict, record: dict) -> dict | None:
    question, answer = lookup(record, rule["question"]), lookup(record, rule["answer"])
    if question is None or answer is None or not str(question).strip() or not str(answer).strip():
        return None
    pair = {
        "question": str(question).strip(),
        "answer": str(answer).strip(),
        "type": rule.get("type", "DP"),
        "origin": rule.get("origin", "human"),
    }
    if rule.get("asks"):
        pair["asks"] = rule["asks"]
    return pair


def parse_map(doc: dict | None) -> FieldMap:
    """A FieldMap from a dict (a loaded YAML file); raises MapError naming the bad entry."""
    doc = doc or {}
    if not isinstance(doc, dict):
        raise MapError(f"a field map must be a mapping, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(MAP_KEYS))
    if unknown:
        raise MapError(f"unknown field-map entries {unknown}; valid: {', '.join(MAP_KEYS)}")
    audio = doc.get("audio", list(AUDIO_EXTS))
    audio = [audio] if isinstance(audio, str) else audio
    if not isinstance(audio, list) or not audio or not all(isinstance(a, str) and a for a in audio):
        raise MapError(f"audio: must be a name or a list of names, got {audio!r}")
    fields = _mapping(doc.get("fields"), "fields")
    for target, source in fields.items():
        if not isinstance(source, str) or not source:
            raise MapError(f"fields.{target}: must name a record entry, got {source!r}")
    values = _mapping(doc.get("values"), "values")
    for target, renames in values.items():
        if not isinstance(renames, (list, dict)):
            raise MapError(f"values.{target}: must be a list (by position) or a mapping, got {renames!r}")
    return FieldMap(
        audio=tuple(a.lower().lstrip(".") for a in audio),
        fields=fields,
        values=values,
        split=_split_rule(doc.get("split")),
        corpus=_optional_str(doc.get("corpus"), "corpus"),
        qa=tuple(_qa_rule(rule, i) for i, rule in enumerate(doc.get("qa") or [])),
    )


def load_map(path: str | os.PathLike | None) -> FieldMap:
    """Read a YAML field map; None gives the empty map."""
    if path is None:
        return FieldMap()
    path = Path(path)
    if not path.is_file():
        raise MapError(f"field map {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MapError(f"field map {path}: not YAML ({exc})") from exc
    try:
        return parse_map(doc)
    except MapError as exc:
        raise MapError(f"field map {path}: {exc}") from exc


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MapError(f"{where}: must be a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _optional_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise MapError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _split_rule(value: Any) -> SplitRule | None:
    if value is None:
        return None
    if isinstance(value, str):
        return SplitRule(value=value)
    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"value", "field", "pattern"}:
        rule = SplitRule(**{k: str(v) for k, v in value.items()})
        if rule.pattern is not None:
            try:
                re.compile(rule.pattern)
            except re.error as exc:
                raise MapError(f"split.pattern {rule.pattern!r}: {exc}") from exc
        return rule
    raise MapError(f"split: must be a value, {{field: PATH}} or {{pattern: REGEX}}, got {value!r}")


def _qa_rule(rule: Any, i: int) -> dict:
    where = f"qa[{i}]"
    if not isinstance(rule, dict) or not rule.get("question") or not rule.get("answer"):
        raise MapError(f"{where}: needs `question` and `answer` record paths, got {rule!r}")
    if rule.get("type", "DP") not in QUESTION_TYPES:
        raise MapError(f"{where}.type: {rule.get('type')!r} is not one of {', '.join(QUESTION_TYPES)}")
    if rule.get("origin", "human") not in QA_ORIGINS:
        raise MapError(f"{where}.origin: {rule.get('origin')!r} is not one of {', '.join(QA_ORIGINS)}")
    return dict(rule)
