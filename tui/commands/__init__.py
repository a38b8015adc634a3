"""Sub-commands of `tokdeck`, one module each (see tui/cli.py for the contract)."""
