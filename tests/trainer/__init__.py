"""Tests of the trainer package, one module per module or journey."""
