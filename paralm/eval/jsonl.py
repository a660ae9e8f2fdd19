"""Old import path of `paralm.formats.jsonl` (moved so that the judge need not import paralm.eval)."""

from paralm.formats.jsonl import JsonlAppender, read_jsonl, write_jsonl_atomic, write_text_atomic

__all__ = ["JsonlAppender", "read_jsonl", "write_jsonl_atomic", "write_text_atomic"]
