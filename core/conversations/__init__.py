"""The conversation engine: from an incoming Kommo event to exactly one reply per turn."""
