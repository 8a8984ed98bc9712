"""Incidents: what the agent can say after a run that did not end cleanly (a crash, a frozen box)."""
