"""Agent administration for the console and the CLI: a validated draft in, a stored agent out
(create, edit one field, enable/disable, delete), checked against the synced Kommo catalog."""
