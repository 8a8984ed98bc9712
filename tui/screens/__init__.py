"""The client's screens: overview, machine detail, containers, logs, models, and dialogs."""
