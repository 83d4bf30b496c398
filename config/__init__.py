"""dcmon config."""
