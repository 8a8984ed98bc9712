"""Docker containers: live list, per-container stats and GPU memory, actions, logs, model launcher.

The engine client (engine.py) is plain HTTP over the Docker socket; without an engine
the agent still runs and the container view says why it is unavailable.
"""
