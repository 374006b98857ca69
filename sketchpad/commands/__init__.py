"""The command line's subcommands: thin fronts over the headless library."""
