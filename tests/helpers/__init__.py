"""What the test layers share (unit, integration, tui, faults, booted) and bench/ imports: agents, Docker, calls, streams."""
