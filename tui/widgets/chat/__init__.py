"""Widgets of the Chat area."""
