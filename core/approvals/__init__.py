"""Approval mode: an agent's drafts wait for a person to send, edit or reject them."""
