"""dcmon metrics."""
