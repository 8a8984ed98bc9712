"""Alert rules evaluated on the agent, their history, and delivery through Apprise."""
