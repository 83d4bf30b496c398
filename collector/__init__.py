"""dcmon collector."""
