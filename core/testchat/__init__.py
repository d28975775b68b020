"""The test chat: a manager talks to an agent as a customer would, in dry run (nothing reaches Kommo)."""
