"""Widgets of the Dataset area."""
