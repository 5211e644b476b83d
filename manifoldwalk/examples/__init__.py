"""Small runnable examples (the CLI's ``circle`` command lives here)."""
