"""Answering with a trained model outside training: the loaded model and its training prompt
(model_source.py), user-given metadata (metadata.py), audio checks (audio_input.py), and the
OpenAI-compatible server of `paralm serve` (requests.py, limits.py, batching.py, app.py; FastAPI and
uvicorn come with the `serve` extra and are imported only by the server modules)."""
