"""lap-tui: a terminal-first control room for running AI agents in production."""

__version__ = "0.1.0"
