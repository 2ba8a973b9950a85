"""Modal dialogs shown over the areas: each returns its result to the screen that pushed it."""
