"""Data layer: shards, index, plan, prompts, collate, DataModules. Never imports paralm.model."""
