"""Plain nn.Modules: encoder -> projector -> LLM. No Lightning, no loss."""
