"""The NVML boundary: the only place that knows where NVML comes from.

Everything else talks to the object ``load_nvml`` returns, which has pynvml's
function names. With ``simulate`` set, that object is a FakeNvml scenario that
raises the real ``pynvml`` exception classes with real error codes, so the same
collector code runs on a laptop, in CI and on a real GPU.
"""

from __future__ import annotations

from typing import Any

import pynvml
from pynvml import NVMLError

# Errors that mean the device (or the driver under it) is gone, not that one field
# is unsupported: the GPU is marked in error and NVML is re-initialised with backoff.
FATAL_CODES = frozenset(
    {
        pynvml.NVML_ERROR_GPU_IS_LOST,
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_GPU_NOT_FOUND,
        pynvml.NVML_ERROR_RESET_REQUIRED,
        pynvml.NVML_ERROR_UNKNOWN,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    }
)

# Why NVML could not start, and what the user can do about it.
INIT_FIXES: dict[int, tuple[str, str]] = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: (
        "NVIDIA driver library libnvidia-ml.so.1 not found",
        "install the NVIDIA driver (DGX OS ships it); check with `nvidia-smi`",
    ),
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: (
        "NVIDIA kernel driver is not loaded",
        "run `nvidia-smi`; after a driver update, reboot",
    ),
    pynvml.NVML_ERROR_NO_PERMISSION: (
        "no permission to open /dev/nvidia*",
        "give the agent's user access to /dev/nvidia* (the systemd unit's DeviceAllow= does)",
    ),
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "NVML library and kernel driver versions differ",
        "reboot to load the updated driver",
    ),
}


def error_text(exc: BaseException) -> str:
    """A short reason for an NVML error, e.g. 'Not Supported' or 'GPU is lost'."""
    if isinstance(exc, NVMLError):
        try:
            return str(exc)
        except Exception:  # pynvml's __str__ calls into the library, which may be gone
            return f"NVML error {getattr(exc, 'value', '?')}"
    return f"{type(exc).__name__}: {exc}"


def load_nvml(simulate: str | None = None) -> Any:
    """Return pynvml itself, or a fake for the named scenario."""
    if simulate:
        from agent.collectors.nvml_fake import FakeNvml

        return FakeNvml.scenario(simulate)
    return pynvml
