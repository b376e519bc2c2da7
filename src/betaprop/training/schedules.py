"""Learning-rate schedules, stepped once at the end of every epoch (step 6's eta over time).

``lr = schedule.step(base_lr, epoch, metric)`` gives the learning rate of the next epoch;
``fit`` writes it into the optimizer's state (``state["lr"]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .optimizers import _in_range, _positive

__all__ = [
    "Schedule",
    "Constant",
    "InverseScaling",
    "StepDecay",
    "Cosine",
    "ReduceOnPlateau",
    "SCHEDULES",
    "get_schedule",
]


@dataclass
class Schedule:
    """A learning-rate schedule, stepped once at the end of every epoch.

    ``lr = schedule.step(base_lr, epoch, metric)`` gives the learning rate for the next
    epoch, where ``epoch`` counts the epochs completed so far (1 after the first) and
    ``metric`` is the monitored value of the epoch just ended (for ``ReduceOnPlateau``).
    The same sequence as the matching ``torch.optim.lr_scheduler`` stepped once per epoch.
    """

    def reset(self) -> None:
        """Forget what was seen (a schedule that keeps state overrides this)."""

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        raise NotImplementedError


@dataclass
class Constant(Schedule):
    """lr_e = lr_0."""

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        return base_lr


@dataclass
class InverseScaling(Schedule):
    """lr_e = lr_0 / (e + 1)^power_t  (torch: LambdaLR(lambda e: (e + 1) ** -power_t))."""

    power_t: float = 0.5

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        return base_lr / (epoch + 1) ** self.power_t


@dataclass
class StepDecay(Schedule):
    """lr_e = lr_0 gamma^floor(e / step_size)  (torch: StepLR)."""

    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.step_size, int) or self.step_size < 1:
            raise ValueError(f"step_size must be an integer >= 1, got {self.step_size!r}")
        _positive("gamma", self.gamma)

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


@dataclass
class Cosine(Schedule):
    """lr_e = eta_min + (lr_0 - eta_min) (1 + cos(pi e / T_max)) / 2  (torch: CosineAnnealingLR)."""

    T_max: int = 100
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.T_max, int) or self.T_max < 1:
            raise ValueError(f"T_max must be an integer >= 1, got {self.T_max!r}")

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        return (
            self.eta_min
            + (base_lr - self.eta_min) * (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
        )


@dataclass
class ReduceOnPlateau(Schedule):
    """Multiply lr by ``factor`` when the metric has not improved for ``patience`` epochs.

    Improvement (mode "min") means metric < best (1 - threshold) for threshold_mode "rel",
    metric < best - threshold for "abs"; after a reduction, ``cooldown`` epochs pass before
    counting again; lr never goes below ``min_lr`` (torch: ReduceLROnPlateau).
    """

    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    best: float = field(default=math.inf, init=False)
    bad_epochs: int = field(default=0, init=False)
    cooldown_left: int = field(default=0, init=False)
    lr: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _in_range("factor", self.factor, 0.0, 1.0)
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"threshold_mode must be one of ['rel', 'abs'], got {self.threshold_mode!r}"
            )

    def reset(self) -> None:
        self.best, self.bad_epochs, self.cooldown_left, self.lr = math.inf, 0, 0, None

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        if metric is None:
            raise ValueError("ReduceOnPlateau needs the monitored metric, got None")
        lr = base_lr if self.lr is None else self.lr
        if self.threshold_mode == "rel":
            improved = metric < self.best * (1.0 - self.threshold)
        else:
            improved = metric < self.best - self.threshold
        if improved:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            reduced = max(lr * self.factor, self.min_lr)
            if lr - reduced > 1e-8:
                lr = reduced
            self.cooldown_left, self.bad_epochs = self.cooldown, 0
        self.lr = lr
        return lr


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "invscaling": InverseScaling,
    "step": StepDecay,
    "cosine": Cosine,
    "plateau": ReduceOnPlateau,
}


def get_schedule(name: str | Schedule | None, **settings: object) -> Schedule:
    """A schedule from its registry name and settings (None: constant)."""
    if name is None:
        return Constant()
    if isinstance(name, Schedule):
        return name
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name](**settings)  # type: ignore[arg-type]
