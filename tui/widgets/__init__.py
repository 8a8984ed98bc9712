"""One widget per module; each renders from an AgentClient (or a part of its snapshot)."""
