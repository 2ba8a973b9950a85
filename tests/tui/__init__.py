"""Tests of the tui package, one module per module or journey."""
