"""Requirement interview, task spec and example drafting."""
