"""Intake: a webhook request (standard form, Salesbot widget_request, Chats API hook) in ->
verified, parsed, deduplicated events stored and enqueued out."""
