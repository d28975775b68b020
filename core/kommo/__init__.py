"""Kommo CRM: http (paced, retried API calls) <- auth (tokens, OAuth, connections); intake
(webhooks in -> stored events); sync (catalog copy); actions and delivery (our side effects
out)."""
