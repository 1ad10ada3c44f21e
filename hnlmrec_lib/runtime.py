"""Process-level settings that decide how fast this machine runs the study.

- ``native_bf16``: bfloat16 pays only where the hardware computes it (a CUDA GPU, or a CPU
  with AVX512-BF16 / AMX). On an AVX2-only CPU (e.g. AMD EPYC Zen 3) torch emulates it: a
  bf16 aligner-sized linear layer ran 12x slower than float32 there, an LLM-sampler epoch
  6-7x slower (``benchmarks/results/dtype.json``).
  Presets say ``auto`` and ``resolve_dtype`` turns it into the concrete dtype when the
  preset is read, so cache keys always hold the dtype that actually ran.
- ``keep_freed_memory``: glibc hands large freed blocks back to the kernel and page-faults
  them in again on the next allocation; a CF step allocates tens of MB of gathered
  candidate embeddings. Keeping freed memory in the heap made MixGCF and NGCF DNS(M,N) epochs
  1.5-2x faster, all 20 backbone x sampler cells 1.27x in sum (``benchmarks/results/cf.json``
  vs ``cf_glibc_default.json``).
"""
from __future__ import annotations

import ctypes
import functools
import os

AUTO = "auto"
DTYPES = ("float32", "bfloat16")

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD = 32 * 2**20       # glibc's maximum: blocks below it come from the heap
_TOP_PAD = 256 * 2**20             # grow the heap in 256 MiB steps
_TRIM_THRESHOLD = 2**31 - 1        # never give the heap's top back


@functools.cache
def native_bf16() -> bool:
    """True where bfloat16 matmuls run natively: CUDA with bf16, or a CPU with
    AVX512-BF16 or AMX tiles."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_dtype(value: str, where: str = "dtype") -> str:
    """``auto`` -> ``bfloat16`` where it is native (``native_bf16``), else ``float32``;
    a concrete dtype passes through. ``where`` names the setting in errors."""
    if value == AUTO:
        return "bfloat16" if native_bf16() else "float32"
    if value not in DTYPES and value != "float16":
        raise ValueError(f"{where}={value!r}: use one of {', '.join((AUTO, *DTYPES, 'float16'))}")
    return value


@functools.cache
def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep freed memory for reuse (see the module docstring).

    Returns False where there is no glibc (macOS, musl) or ``HNLMREC_KEEP_FREED=0`` is set
    (glibc's defaults stay then). Costs at most ``_TOP_PAD`` of extra resident memory per
    process.
    """
    if os.environ.get("HNLMREC_KEEP_FREED", "1") == "0":
        return False
    try:   # the symbols already loaded into this process (no ldconfig call at import)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
                (_M_TOP_PAD, _TOP_PAD))
    return all(mallopt(param, value) == 1 for param, value in settings)


def machine_facts() -> dict:
    """What a benchmark's numbers depend on: CPU model and vector units, cores, torch."""
    import platform

    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16(), "malloc_keeps_freed": keep_freed_memory(),
            "loadavg": round(os.getloadavg()[0], 2)}
