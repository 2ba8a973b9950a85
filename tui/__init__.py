"""The Textual app and the command line, the two edges a person uses."""
