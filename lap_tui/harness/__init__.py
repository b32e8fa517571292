"""Harnesses: how an agent thinks and acts. `builtin` runs its tools in the session's sandbox."""
