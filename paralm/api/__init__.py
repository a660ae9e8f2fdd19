"""The one OpenAI-compatible client, shared by QA generation and the judge. Never imports torch."""
