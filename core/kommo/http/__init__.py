"""HTTP to Kommo: a request for one account in -> an authorised, paced (7 req/s), retried call -> JSON or a typed Kommo error out."""
