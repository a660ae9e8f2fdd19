"""paralm.creation."""
