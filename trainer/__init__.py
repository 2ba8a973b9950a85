"""Everything that touches torch: the model server, training runs, evaluation, export.

This package's ``__init__`` and its ``client``/``launch`` modules stay free of torch so the
TUI process can start servers and talk to them without loading the ML stack.
"""
