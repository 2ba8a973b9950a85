"""Widgets of the Compare area."""
