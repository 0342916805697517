"""Which hardware this machine offers speech engines: always a CPU, a GPU only when one is found.

Detection needs no GPU library: the NVIDIA driver's `nvidia-smi -L` lists the devices (and
`/proc/driver/nvidia/gpus` shows a loaded driver when the tool itself is missing). Standard
library only, so it also runs on a bare machine (bench/speech_rtf.py reports it as is).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class GpuInfo:
    present: bool
    devices: list[str] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"present": self.present, "devices": list(self.devices), "reason": self.reason}


def detect_gpu(*, proc_dir: Path = NVIDIA_PROC, timeout: float = 10.0) -> GpuInfo:
    """Find NVIDIA GPUs; `reason` says what was found or why nothing was."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return GpuInfo(False, [], "CUDA_VISIBLE_DEVICES hides every GPU")
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return GpuInfo(False, [], f"nvidia-smi failed: {exc}")
        devices = [line.strip() for line in listing.stdout.splitlines() if line.strip().startswith("GPU ")]
        if devices:
            return GpuInfo(True, devices, f"nvidia-smi lists {len(devices)} GPU(s)")
        detail = (listing.stderr or listing.stdout).strip().splitlines()
        return GpuInfo(False, [], f"nvidia-smi lists no GPU ({detail[0] if detail else f'exit {listing.returncode}'})")
    if proc_dir.is_dir():
        devices = sorted(p.name for p in proc_dir.iterdir())
        if devices:
            return GpuInfo(
                True, [f"GPU {d}" for d in devices], f"NVIDIA driver shows {len(devices)} GPU(s) in {proc_dir}"
            )
    return GpuInfo(False, [], f"no NVIDIA GPU: nvidia-smi is not on PATH and {proc_dir} does not exist")
