"""Delivery of the notifications outbox to the right operators: pending notifications in,
one delivery per operator out (at most once each), through a sender the console provides."""
