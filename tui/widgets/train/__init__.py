"""Widgets of the Train area."""
