"""HTTP to Kommo: a request for one account in -> the account's host, an authorised, paced
(7 req/s), retried call -> JSON or a typed Kommo error out."""
