"""paralm.eval."""
