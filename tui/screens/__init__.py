"""The four areas of the app (Textual modes) and the screen they share."""
