"""`paralm serve` on a tiny exported model, called with the real `openai` client and with raw HTTP.

One server per module (127.0.0.1, a free port, a key from the environment), always stopped; answers are
compared with `paralm ask` on the same files (both greedy, fp32, CPU).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
import pytest
import soundfile as sf
from fitprobe import run_paralm
from servekit import KEY, MAX_NEW_TOKENS, audio_message, tiny_export, write_clips

from paralm.cli import main as cli_main
from paralm.serve.local_server import LocalServer

pytest.importorskip("fastapi")
QUESTION = "How does the speaker sound?"
NAME = "tiny"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    export, clips = tiny_export(tmp / "export"), write_clips(tmp / "clips")
    log = tmp / "server.log"
    args = ["--model-name", NAME, "--api-key-env", "SERVE_TEST_KEY", "--max-batch", "8", "--max-wait-ms", "300",
            "--max-new-tokens", str(MAX_NEW_TOKENS), "--max-audio-seconds", "60", "--max-request-mb", "25"]
    with LocalServer(export, args, env={"SERVE_TEST_KEY": KEY}, key=KEY, log_path=log) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)
        yield {"server": server, "client": client, "export": export, "clips": clips, "log": log}


@pytest.fixture(scope="module")
def asked(served):
    """`paralm ask` answers for the clips (one batch), through the CLI entry in this process (tests/serve/test_ask.py
    runs the console script and checks it against SpeechLM.generate)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["ask", str(served["export"]), *map(str, served["clips"]), QUESTION,
                         "--max-new-tokens", str(MAX_NEW_TOKENS), "--json"]) == 0
    return [row["answer"] for row in json.loads(out.getvalue())["answers"]]


def chat(client, path, **kwargs):
    return client.chat.completions.create(model=NAME, messages=audio_message(path.read_bytes(), QUESTION), **kwargs)


def test_openai_client_with_an_input_audio_part_gets_the_answer_of_paralm_ask(served, asked):
    replies = [chat(served["client"], clip) for clip in served["clips"]]
    assert [r.choices[0].message.content for r in replies] == asked
    assert len(set(asked)) > 1
    usage = replies[0].usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= MAX_NEW_TOKENS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert replies[0].model == NAME and replies[0].choices[0].finish_reason in ("stop", "length")
    assert [m.id for m in served["client"].models.list().data] == [NAME]


def test_sixteen_concurrent_requests_are_answered_correctly_and_batched(served, asked):
    before = served["server"].stats()
    clips = served["clips"]
    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(lambda i: chat(served["client"], clips[i % 4]).choices[0].message.content, range(16)))
    assert texts == [asked[i % 4] for i in range(16)]
    after = served["server"].stats()
    assert after["requests"] - before["requests"] == 16
    bigger = {int(k): v - before["batch_sizes"].get(k, 0) for k, v in after["batch_sizes"].items()}
    assert sum(n for size, n in bigger.items() if size > 1) >= 1  # at least one batch held several requests
    assert after["batches"] - before["batches"] < 16


def test_streaming_returns_the_same_text(served, asked):
    stream = chat(served["client"], served["clips"][1], stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == asked[1]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def post(served, body: bytes, key: str | None = KEY) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(served["server"].base_url + "/chat/completions", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())["error"]["message"]


def post_big(served, size: int) -> tuple[int, str]:
    """POST a `size`-byte body as a client would; the server answers 413 without reading it, so the client
    reads the reply once the server stops taking bytes (or has closed the connection)."""
    port = served["server"].port
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}"
                      f"\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode())
        try:
            sock.sendall(b" " * (1024 * 1024))
        except OSError:
            pass  # the server already refused and closed
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        return reply.status, json.loads(reply.read())["error"]["message"]


def request_body(messages, model=NAME) -> bytes:
    return json.dumps({"model": model, "messages": messages}).encode()


def flac_seconds(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * rate), dtype=np.float32), rate, format="FLAC")
    return buf.getvalue()


def test_bad_requests_get_their_4xx_with_a_one_line_reason_and_the_server_keeps_serving(served, asked):
    good = served["clips"][0].read_bytes()
    bad_b64 = [{"role": "user", "content": [{"type": "text", "text": "q"},
                                            {"type": "input_audio", "input_audio": {"data": "@@not base64@@", "format": "wav"}}]}]
    cases = {
        "undecodable base64": (request_body(bad_b64), KEY, 400, "not valid base64"),
        "text file as audio": (request_body(audio_message(b"just some text, not audio\n" * 20)), KEY, 400,
                               "not decodable wav audio"),
        "10 minutes of audio": (request_body(audio_message(flac_seconds(600), fmt="flac")), KEY, 413,
                                "600.0 s of audio is over the 60-s limit"),
        "no audio part": (request_body([{"role": "user", "content": "How does the speaker sound?"}]), KEY, 400,
                          "0 input_audio parts"),
        "two audio parts": (request_body(audio_message(good) + audio_message(good)), KEY, 400, "2 input_audio parts"),
        "unknown model": (request_body(audio_message(good), model="gpt-4o"), KEY, 404, "'gpt-4o' is not served"),
        "wrong key": (request_body(audio_message(good)), "sk-wrong-key-000000000000", 401, "API key is not valid"),
        "no key": (request_body(audio_message(good)), None, 401, "Authorization: Bearer"),
    }
    for name, (body, key, status, reason) in cases.items():
        got_status, message = post(served, body, key)
        assert (got_status, reason in message, "\n" in message) == (status, True, False), (name, got_status, message)
    assert post_big(served, 50 * 1024 * 1024) == (413, "request body of 52428800 bytes is over the 26214400-byte "
                                                       "limit (--max-request-mb)")
    assert served["server"].alive()
    assert chat(served["client"], served["clips"][0]).choices[0].message.content == asked[0]


def test_the_key_never_appears_in_the_server_log(served):
    post(served, request_body([{"role": "user", "content": "x"}]), key="sk-wrong-key-000000000000")
    served["client"].models.list()
    text = served["log"].read_text()
    assert "POST /v1/chat/completions" in text and KEY not in text


def test_binding_a_non_loopback_address_without_a_key_is_refused(served):
    proc = run_paralm(["serve", str(served["export"]), "--host", "0.0.0.0", "--port", "9"])
    assert proc.returncode == 2 and "needs a key" in proc.stderr and "--api-key-env" in proc.stderr
