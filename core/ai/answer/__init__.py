"""Answering: a customer turn and retrieved chunks in -> a reply (LLM with tools, or extracts
without one) and validated planned actions out."""
