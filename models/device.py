"""Where training and sampling run: the CPU, or a CUDA device when there is one.

One setting names the device (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) and is resolved here,
once, into a :class:`torch.device`; everything else follows the model's own device
(:func:`module_device`) instead of creating tensors on an implicit one. What changes on a GPU,
and what does not:

* **The DP mechanism does not.** Poisson sampling still draws on the CPU (Opacus' sampler
  builds the batch indices there) and the Gaussian noise comes from a secret generator on the
  parameters' device, seeded from the OS like the CPU one (:mod:`privsynth.models.secret_rng`),
  so σ, q, C and the accountant are exactly those of a CPU run.
* **Precision of what trains does not.** Trained parameters, their activations and gradients
  stay fp32, so per-sample clipping bounds exactly the gradient that is applied. Only a frozen
  base (already stored in bf16) runs under bf16 autocast on CUDA (:func:`bf16_autocast`): a
  public, deterministic feature extractor whose rounding changes nothing in the guarantee.
* **Stored weights are device-free.** Everything is loaded with ``map_location="cpu"`` and then
  moved, so a model trained on a GPU loads on a CPU-only replica and the other way round.
"""

from __future__ import annotations

import contextlib
import re
from functools import lru_cache
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEVICE_PATTERN",
    "DeviceUnavailableError",
    "bf16_autocast",
    "cpu_has_fast_bf16",
    "describe_device",
    "frozen_dtype",
    "module_device",
    "resolve_device",
]

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
"""The device settings accepted: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``
(the current CUDA device) or ``cuda:N``."""


class DeviceUnavailableError(ValueError):
    """A device was asked for that this process cannot use (no CUDA, or no such index)."""


def resolve_device(name: str = "auto") -> torch.device:
    """The device a setting names, checked against what this process can use.

    ``auto`` picks ``cuda`` when :func:`torch.cuda.is_available` says so, else ``cpu``; an
    explicit ``cuda`` never falls back silently: an operator who asked for a GPU and got the CPU
    would find out only from a job that takes a hundred times longer.

    Raises:
        DeviceUnavailableError: Malformed, CUDA asked for where there is none, or an index past
            the devices present.
    """
    if re.fullmatch(DEVICE_PATTERN, name) is None:
        raise DeviceUnavailableError(
            f"device {name!r} is not one of auto, cpu, cuda, cuda:N (N a device index)"
        )
    if name == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if name == "auto":
        return torch.device("cuda" if available else "cpu")
    if not available:
        built = (
            f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        )
        raise DeviceUnavailableError(
            f"device {name!r} asked for, but torch {torch.__version__} sees no CUDA device "
            f"({built})"
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceUnavailableError(
            f"device {name!r} asked for, but only {count} CUDA device(s) are present "
            f"(indices 0..{count - 1})"
        )
    return device


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for an empty module)."""
    for parameter in module.parameters():
        return parameter.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def bf16_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a CUDA device, nothing elsewhere (for frozen, public computation only).

    On the CPU the frozen base already runs in bf16 through its stored weights; autocast there
    would only add casts.
    """
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU's oneDNN has native bf16 matmul kernels (AVX512-BF16, AMX, …)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def frozen_dtype(device: torch.device) -> torch.dtype:
    """The dtype a frozen public base is stored and run in on ``device``.

    bf16 on CUDA (under :func:`bf16_autocast`) and on CPUs with native bf16 kernels, where it
    is about four times fp32's matmul throughput. fp32 on every other CPU: without those
    kernels a bf16 matmul is emulated, and on an AVX2-only machine the frozen 49,152 × 576
    head ran 5× slower forward and ~100× slower backward than in fp32 (960 tokens: 3.7 s and
    76 s against 0.7 s and 0.6 s), which made a training step minutes long. The choice is
    about speed only: frozen weights are public, and clipping bounds whatever gradient
    comes out of them.
    """
    if device.type == "cuda" or cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32


def describe_device(device: torch.device) -> str:
    """A short name for logs and the model card: ``cpu`` or ``cuda:0 (<GPU name>)``."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
