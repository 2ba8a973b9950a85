"""Tests of the agent package, one module per module or journey."""
