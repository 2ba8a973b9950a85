"""The torch-free part of the trainer: what the CLI and the app import to plan, start, follow
and talk to the torch processes. import-linter keeps the ML stack out of this whole package."""
