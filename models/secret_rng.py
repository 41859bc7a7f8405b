"""Secret randomness for every draw a DP guarantee rests on.

DP-SGD's guarantee holds over its own coin flips: which records each Poisson batch includes and
the Gaussian noise added to the clipped gradient sum. If those draws can be regenerated from
public inputs (a fixed seed, a user's seed, the job id), whoever holds the code, the released
weights and the other records can subtract the noise and read the remaining record's clipped
gradient: the stated ε would be false. So every such draw comes from a generator seeded here,
per run and per rank, from the operating system's CSPRNG, and the seed is never written
anywhere a reader of the model could find it (only a resumable checkpoint holds generator
state, as a private file deleted when the job ends).

Opacus' own ``secure_mode`` needs ``torchcsprng``, which has no build for the torch this project
pins; when it imports we still do not depend on it. Instead:

* **Seeds**: 64 bits from :func:`secrets.randbits` (``os.urandom``) for each
  ``torch.Generator`` (the widest seed it takes). Fresh per run and per rank, so two jobs with
  equal inputs draw different noise and batches.
* **Noise**: drawn with Opacus' floating-point-hardened sampler (its ``secure_mode`` noise: the
  sum of 2n Gaussian draws scaled back, after Mironov and the Opacus attack paper), which closes
  the attack that recovers a draw from the low bits of a float Gaussian sample.
* **Devices**: on a GPU the noise generator lives on the parameters' device (a CUDA generator
  takes the same 64-bit seed; ``torch.normal`` refuses a generator on another device), while
  Poisson sampling keeps drawing on the CPU, where Opacus' sampler builds batch indices.
* **Other coin flips** outside torch (which record of a user survives contribution bounding,
  the label-count noise) use :class:`secrets.SystemRandom` directly.

:data:`NOISE_SOURCE` names this on every model card (``noise_source``).
"""

from __future__ import annotations

import random
import secrets

import torch

__all__ = ["NOISE_SOURCE", "secret_generator", "system_random"]

NOISE_SOURCE = (
    "os-seeded: torch.Generator per run and rank seeded with 64 bits from os.urandom; "
    "floating-point-hardened Gaussian noise (Opacus secure_mode sampler)"
)
"""What the card's ``noise_source`` says: where DP noise and Poisson sampling draw from."""


def secret_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device``, seeded from the OS's CSPRNG.

    Never seed one of these from anything a caller gives: that is what makes the noise secret.

    Args:
        device: Where its draws are made: the device of the tensors it fills (DP noise must be
            drawn on the gradients' device; a CUDA generator cannot fill a CPU tensor).
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(64))
    return generator


def system_random() -> random.Random:
    """The OS's CSPRNG behind Python's ``random`` API (for non-tensor DP coin flips)."""
    return secrets.SystemRandom()
