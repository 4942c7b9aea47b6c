"""Use cases shared by the CLI and the HTTP API (connect, disconnect, sync), above layers 1-4."""
