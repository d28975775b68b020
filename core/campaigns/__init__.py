"""Campaigns (рассылки): an operator's message to the leads of a pipeline stage, sent through
the agent's delivery mode, paced by the account's shared rate limit, resumable without sending
twice, within WhatsApp's 24-hour window, with progress and a final report.

Modules: `template` (placeholders), `facts` (what a lead's placeholders may use), `eligibility`
(who may be written to now), `personalise` (optional LLM rewrite), `targets` (listing the leads),
`runner` (one batch of sends), `service` (start / status / cancel / resume / list).
"""
