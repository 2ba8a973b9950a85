"""Tests of the store package, one module per module or journey."""
