"""Peak FLOP/s of the device, the denominator of MFU.

Why a table and a measurement: accelerator peaks are published dense (no sparsity) bf16 tensor-core
figures, looked up by device name; CPUs have no useful published figure, so their "peak" is measured
as the rate of a large fp32 matmul on this machine (so CPU MFU reads as a share of what this box can
actually do). Either can be overridden with an explicit number.
"""

from __future__ import annotations

import time

import torch

# Dense bf16 peaks by device-name fragment, most specific first (the first fragment found wins).
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def lookup_peak(name: str) -> float | None:
    """Published dense bf16 FLOP/s for a device name, or None when the name is not in the table."""
    for fragment, peak in PEAK_BF16_FLOPS:
        if fragment.lower() in name.lower():
            return peak
    return None


def measure_matmul_flops(size: int = 1024, seconds: float = 0.3, dtype: torch.dtype = torch.float32,
                         device: torch.device | str = "cpu") -> float:
    """Achieved FLOP/s of repeated (size x size) @ (size x size) matmuls for about `seconds`."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b  # warm-up (allocations, kernel selection)
    runs, start = 0, time.perf_counter()
    while True:
        a @ b
        runs += 1
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2.0 * size**3 * runs / elapsed


def peak_flops(device: torch.device | str, override: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s, where it came from) for `device`: the override, the table, or a measurement."""
    if override is not None:
        if override <= 0:
            raise ValueError(f"peak_flops must be > 0, got {override}")
        return float(override), "configured"
    name = device_name(device)
    known = lookup_peak(name)
    if known is not None:
        return known, f"table ({name}, dense bf16)"
    if torch.device(device).type == "cpu":
        return measure_matmul_flops(), "measured (fp32 matmul on this CPU)"
    names = ", ".join(f for f, _ in PEAK_BF16_FLOPS)
    raise ValueError(f"no peak FLOP/s known for device {name!r}; set peak_flops explicitly (known: {names})")
