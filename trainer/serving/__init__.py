"""The OpenAI-compatible model server: one base model, its adapters attached by name."""
