"""dcmon reports."""
