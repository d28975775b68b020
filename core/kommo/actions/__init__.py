"""Actions: a validated side effect in (move a lead, create a task, write a field, send a reply) ->
exactly one journaled Kommo call out."""
