"""Learning-rate schedules as pure functions of the step, so resuming needs only the step count."""

from __future__ import annotations

import math

from labelfree3d.errors import ParameterError

__all__ = ["lr_factor", "run_length"]


def lr_factor(
    step: int,
    total_steps: int,
    schedule: str = "onecycle",
    warmup_fraction: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """Multiplier of the peak learning rate at optimiser step `step` (0-based) of `total_steps`.

    - "onecycle": torch's `OneCycleLR` with cosine annealing: from 1/div_factor up to 1 over the
      first `warmup_fraction` of the steps, then down to 1/(div_factor * final_div_factor).
    - "cosine": linear warm-up from 0 over `warmup_fraction` of the steps, then cosine decay to 0.
    - "constant": linear warm-up, then 1.
    """
    if total_steps < 1:
        raise ParameterError(f"total_steps must be >= 1, got {total_steps}")
    step = min(max(step, 0), total_steps - 1)
    warmup = warmup_fraction * total_steps
    if schedule == "onecycle":
        start, end = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)
        rise_end = max(warmup - 1, 0.0)  # OneCycleLR peaks at step pct_start * total - 1
        if step <= rise_end and rise_end > 0:
            return _cosine(start, 1.0, step / rise_end)
        fall = (step - rise_end) / max(total_steps - 1 - rise_end, 1e-9)
        return _cosine(1.0, end, min(fall, 1.0))
    if schedule in ("cosine", "constant"):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * progress))
    raise ParameterError(f"unknown schedule {schedule!r}; use onecycle, cosine or constant")


def _cosine(start: float, end: float, fraction: float) -> float:
    """Cosine interpolation from `start` (fraction 0) to `end` (fraction 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def run_length(num_scans: int, world_size: int, batch_size: int, epochs: int, max_steps: int | None) -> tuple[int, int]:
    """(steps per epoch, total steps) of a run: each process takes ceil(scans / world) scans (padded
    like DistributedSampler) in batches of `batch_size`; `max_steps`, when set, overrides epochs."""
    per_rank = math.ceil(num_scans / world_size)
    per_epoch = math.ceil(per_rank / batch_size)
    return per_epoch, (max_steps if max_steps is not None else epochs * per_epoch)
