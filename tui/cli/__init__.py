"""The command line, the headless twin of the app: one module per command group."""
