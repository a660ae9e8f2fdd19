"""File formats shared by evaluation, judging and the runners: crash-safe JSON lines (jsonl) and the
predictions format (predictions). Torch-free, so `paralm.judge` and `paralm.eval` can both import it
without importing each other."""
