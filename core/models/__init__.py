"""Domain models shared by core services and the repositories that store them."""
