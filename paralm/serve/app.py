"""`paralm serve MODEL`: a trained model as an OpenAI-compatible audio chat endpoint.

    paralm serve runs/export --host 127.0.0.1 --port 8000
    curl http://127.0.0.1:8000/v1/models

Routes: GET /v1/models, POST /v1/chat/completions (request and response shapes: docs/serving.md;
`stream: true` answers as server-sent events), GET /paralm/stats (how requests were batched).
Concurrent requests are batched (--max-batch, --max-wait-ms) and generated off the event loop; each
answer is the greedy answer the request gets alone. Bad requests get a 4xx with a one-line reason and
the server keeps serving. Binds 127.0.0.1 by default; any other address needs --api-key-env NAME (the
key is read from that environment variable and never printed). Needs the `serve` extra
(`pip install -e .[serve]`: FastAPI + uvicorn).
"""


import argparse
import asyncio
import json
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from paralm.fault.exits import UserError
from paralm.secret_guard import mask_secrets
from paralm.serve.batching import Answer, Batcher
from paralm.serve.limits import Refusal, ServeLimits, check_auth, server_key
from paralm.serve.requests import ParsedRequest, parse_request


def make_run_batch(loaded):
    """The worker-thread function: (items, max_new_tokens) -> answers with token counts."""
    import torch

    from paralm.predict import prompt_batch

    model, tokenizer = loaded.model, loaded.model.tokenizer

    def run_batch(items: list[tuple], max_new_tokens: int) -> list[Answer]:
        with torch.inference_mode():
            batch = prompt_batch(model, items, prompt=loaded.prompt)
            texts = model.generate(batch.input_ids, batch.attention_mask, batch.features, batch.feature_lengths,
                                   max_new_tokens=max_new_tokens, do_sample=False)
        prompt_tokens = batch.attention_mask.sum(dim=1).tolist()
        out = []
        for text, n_prompt in zip(texts, prompt_tokens, strict=True):
            n_done = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            out.append(Answer(text, int(n_prompt), n_done, "length" if n_done >= max_new_tokens else "stop"))
        return out

    return run_batch


def completion_body(name: str, answer: Answer, request_id: str, created: int) -> dict:
    return {"id": request_id, "object": "chat.completion", "created": created, "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": answer.finish_reason}],
            "usage": _usage(answer)}


def _usage(answer: Answer) -> dict:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


def stream_events(name: str, answer: Answer, request_id: str, created: int, include_usage: bool):
    """Server-sent events of a finished answer: role, content, finish reason, [usage], [DONE]."""
    def chunk(delta: dict, finish: str | None, **extra) -> str:
        body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    if answer.text:
        yield chunk({"content": answer.text}, None)
    yield chunk({}, answer.finish_reason)
    if include_usage:
        body = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": name,
                "choices": [], "usage": _usage(answer)}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


async def read_body(request, limit: int) -> bytes:
    """The body, refused with 413 once it passes `limit` bytes (by its Content-Length before reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refusal(413, "request_too_large", f"request body of {int(declared)} bytes is over the "
                      f"{limit}-byte limit (--max-request-mb)")
    chunks, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise Refusal(413, "request_too_large", f"request body is over the {limit}-byte limit (--max-request-mb)")
        chunks.append(piece)
    return b"".join(chunks)


def build_app(loaded, name: str, limits: ServeLimits, key: str | None, max_batch: int = 8,
              max_wait_ms: float = 10.0):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    batcher = Batcher(make_run_batch(loaded), max_batch, max_wait_ms)

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="paralm serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher

    def refused(err: Refusal) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.get("/v1/models")
    async def models(request: Request):
        try:
            check_auth(request.headers.get("authorization"), key)
        except Refusal as err:
            return refused(err)
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "paralm"}]}

    @app.get("/paralm/stats")
    async def stats():
        return batcher.stats.as_dict()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        try:
            check_auth(request.headers.get("authorization"), key)
            parsed = await _parse(request)
            answer = await batcher.submit((parsed.audio, parsed.question, _meta(parsed)), parsed.max_new_tokens)
        except Refusal as err:
            return refused(err)
        except Exception as err:  # a bug or a failed batch: one line, a 500, and the server keeps serving
            line = mask_secrets(" ".join(f"{type(err).__name__}: {err}".split()))
            print(f"paralm serve: request failed: {line}", file=sys.stderr, flush=True)
            return JSONResponse({"error": {"message": line, "type": "server_error", "code": "internal_error",
                                           "param": None}}, status_code=500)
        request_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if parsed.stream:
            return StreamingResponse(stream_events(name, answer, request_id, created, parsed.include_usage),
                                     media_type="text/event-stream")
        return completion_body(name, answer, request_id, created)

    async def _parse(request) -> ParsedRequest:
        raw = await read_body(request, limits.max_request_bytes)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refusal(400, "invalid_json", "the request body is not valid JSON") from None
        return await asyncio.to_thread(parse_request, body, name, loaded.sample_rate, limits)

    def _meta(parsed: ParsedRequest) -> dict:
        from paralm.serve.metadata import sample_meta

        try:
            return sample_meta(parsed.labels, loaded.prompt, name)
        except UserError as err:
            raise Refusal(400, "metadata", str(err)) from None

    return app


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paralm serve", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("model", help="export folder of `paralm export`, or a .ckpt of `paralm fit`")
    p.add_argument("--config", action="append", default=None,
                   help="training config file(s) of a checkpoint (default: its run folder's config.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (not loopback: needs --api-key-env)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--model-name", default=None, help="name clients use in `model` (default: the MODEL folder name)")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the key clients must send")
    p.add_argument("--max-batch", type=int, default=8, help="most requests generated together")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits for more requests")
    p.add_argument("--max-request-mb", type=float, default=25.0, help="largest request body in MB (413 above)")
    p.add_argument("--max-audio-seconds", type=float, default=60.0, help="longest audio part (413 above)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest answer; max_tokens can only lower it")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    key = server_key(args.host, args.api_key_env)  # before any loading: an open public bind is refused at once
    limits = ServeLimits(int(args.max_request_mb * 1024 * 1024), args.max_audio_seconds, args.max_new_tokens)
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise UserError("paralm serve needs FastAPI and uvicorn: pip install -e '.[serve]'") from None
    from paralm.serve.model_source import load_answering_model

    loaded = load_answering_model(args.model, args.config)
    name = args.model_name or Path(args.model).resolve().name
    app = build_app(loaded, name, limits, key, args.max_batch, args.max_wait_ms)
    print(f"paralm serve: {name!r} ({loaded.prompt.mode} prompt) at http://{args.host}:{args.port}/v1; "
          f"max batch {args.max_batch}, wait {args.max_wait_ms:g} ms; key required: {'yes' if key else 'no'}",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
