"""Bring your own corpus: index foreign tar shards, pack Hugging Face datasets and Lhotse manifests."""
