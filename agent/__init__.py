"""sparkdeck agent: telemetry and control for NVIDIA GPU workstations."""

__version__ = "0.1.0"
