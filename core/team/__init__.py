"""Organisations' people: onboarding, invites, roles and permissions, each user's active
organisation and console preferences. In: a Telegram user id and an actor; out: operators."""
