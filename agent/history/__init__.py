"""History that survives restarts: frames and tiered aggregates in SQLite."""
