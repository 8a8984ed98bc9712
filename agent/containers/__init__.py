"""Docker containers: live list, per-container stats and GPU memory, actions, logs, model launcher.

aiodocker is imported lazily (engine.py) so the agent still runs without it; the
container view then says why it is unavailable.
"""
