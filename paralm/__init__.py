"""paralm: contextual paralinguistic training and evaluation for Speech-LLMs."""

__version__ = "0.1.0"
