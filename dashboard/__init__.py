"""dcmon dashboard."""
