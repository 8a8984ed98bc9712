"""GPU compute processes: the list and signals (issue 14, item 1)."""
