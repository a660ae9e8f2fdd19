"""paralm.runs."""
