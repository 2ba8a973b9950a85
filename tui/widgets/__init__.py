"""Widgets, grouped by the area that uses them; shared ones live at the top level."""
