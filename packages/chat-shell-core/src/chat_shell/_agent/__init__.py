"""The agent: the loop that turns one user message into model calls and tool calls (``loop``) and
the run that carries its events to whoever watches (``run``)."""
