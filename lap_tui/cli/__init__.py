"""The `lap-tui` command: subcommands for scripts, or the Textual app when bare."""
