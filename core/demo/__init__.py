"""The demo: a furniture store's documents shipped in the repo (ru, en) in -> an organisation with
one agent, "Anna", and her knowledge out, seeded once per installation."""
