"""OpenAI chat-completion requests with audio -> what the model needs, or a 4xx `Refusal` with one line.

Accepted (docs/serving.md): `model` (the served name), `messages` whose content is a string or a list of
parts `{"type": "text", "text": ...}` and `{"type": "input_audio", "input_audio": {"data": <base64>,
"format": "wav"|"mp3"|"flac"}}`; exactly one audio part in the whole conversation; the question is the
text of the user turns. `max_tokens` / `max_completion_tokens` lower the answer cap; `stream`;
`metadata` (an object of labels) for explicit-mode models. Answers are greedy (temperature is ignored).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from paralm.serve.audio_input import AudioRefused, decode_clip
from paralm.serve.limits import Refusal, ServeLimits
from paralm.serve.metadata import check_labels

AUDIO_FORMATS = ("wav", "mp3", "flac")


@dataclass
class ParsedRequest:
    audio: np.ndarray  # (n,) float32 at the model's rate
    question: str
    labels: dict | None
    max_new_tokens: int
    stream: bool
    include_usage: bool


def parse_request(body: object, model_name: str, sample_rate: int, limits: ServeLimits) -> ParsedRequest:
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_body", "the request body must be a JSON object")
    if body.get("model") != model_name:
        raise Refusal(404, "model_not_found", f"model {body.get('model')!r} is not served here; this server serves "
                      f"{model_name!r} (GET /v1/models)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refusal(400, "invalid_messages", "`messages` must be a non-empty list")
    texts, audio_parts = _split_parts(messages)
    if len(audio_parts) != limits.audio_parts:
        raise Refusal(400, "audio_part_count", f"the messages hold {len(audio_parts)} input_audio parts; this model "
                      f"takes exactly {limits.audio_parts}")
    question = "\n".join(t for t in texts if t.strip()).strip()
    if not question:
        raise Refusal(400, "no_question", "the user turn has no text part (the question about the audio)")
    return ParsedRequest(
        audio=_decode_audio_part(audio_parts[0], sample_rate, limits), question=question,
        labels=_labels(body.get("metadata")), max_new_tokens=_max_tokens(body, limits),
        stream=bool(body.get("stream", False)),
        include_usage=bool((body.get("stream_options") or {}).get("include_usage", False)),
    )


def _split_parts(messages: list) -> tuple[list[str], list[dict]]:
    """Text of the user turns and every input_audio part (other roles' text is not part of the prompt)."""
    texts, audio = [], []
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            raise Refusal(400, "invalid_messages", "every message needs a `role` and `content`")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise Refusal(400, "invalid_messages", "message content must be a string or a list of parts")
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "input_audio":
                audio.append(part)
            elif kind == "text" and message["role"] == "user":
                texts.append(str(part.get("text", "")))
            elif kind != "text":
                raise Refusal(400, "unsupported_part", f"content part type {kind!r} is not supported "
                              "(use text and input_audio)")
    return texts, audio


def _decode_audio_part(part: dict, sample_rate: int, limits: ServeLimits) -> np.ndarray:
    spec = part.get("input_audio")
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), str):
        raise Refusal(400, "invalid_audio", "input_audio needs {\"data\": <base64>, \"format\": ...}")
    fmt = spec.get("format")
    if fmt not in AUDIO_FORMATS:
        raise Refusal(400, "invalid_audio_format", f"input_audio.format {fmt!r} is not one of {', '.join(AUDIO_FORMATS)}")
    try:
        data = base64.b64decode(spec["data"], validate=True)
    except (binascii.Error, ValueError):
        raise Refusal(400, "invalid_base64", "input_audio.data is not valid base64") from None
    try:
        return decode_clip(data, sample_rate, limits.max_audio_seconds)
    except AudioRefused as err:
        if err.reason == "audio_too_long":
            raise Refusal(413, "audio_too_long", err.detail) from None
        raise Refusal(400, "undecodable_audio", f"input_audio.data is not decodable {fmt} audio ({err})") from None


def _labels(metadata: object) -> dict | None:
    if metadata is None:
        return None
    try:
        return check_labels(metadata)
    except ValueError as err:
        raise Refusal(400, "invalid_metadata", f"metadata: {err}") from None


def _max_tokens(body: dict, limits: ServeLimits) -> int:
    given = body.get("max_completion_tokens", body.get("max_tokens"))
    if given is None:
        return limits.max_new_tokens
    if not isinstance(given, int) or isinstance(given, bool) or given < 1:
        raise Refusal(400, "invalid_max_tokens", f"max_tokens must be a positive integer, got {given!r}")
    return min(given, limits.max_new_tokens)
