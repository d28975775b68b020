"""Delivery: a reply text in -> the customer's chat (Salesbot return_url or bot run, our Chats API
channel) or an internal note draft out."""
