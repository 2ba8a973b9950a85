"""Screens: the four areas (Textual modes) and the dialogs shown over them."""
