"""chat-shell-postgres."""
