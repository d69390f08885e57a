"""Load-test options: what to send, how fast, through which vendor; parsed and checked up front."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from streams.events import MessageType

__all__ = ["ALL_TYPES", "LoadTestOptions", "OptionError", "parse_mix", "parse_steps", "type_weights"]

ALL_TYPES: tuple[str, ...] = tuple(t.value for t in MessageType)
VENDORS = ("twilio", "telnyx", "bandwidth")


class OptionError(ValueError):
    """A load-test option that cannot work; the message names the option and why."""


@dataclass(frozen=True)
class LoadTestOptions:
    """One load-test run."""

    company_ids: tuple[str, ...]
    message_count: int | None = None
    duration_s: float | None = None
    senders: int = 500
    group_id: str | None = None
    workers: int = 32
    rate: float | None = None
    steps: tuple[float, ...] = ()
    step_seconds: float = 60.0
    randomize: bool = True
    skip_types: frozenset[str] = frozenset()
    mix: dict[str, float] = field(default_factory=dict)
    vendor: str = "twilio"
    out_dir: Path = Path("reports/loadtest")
    verify: bool = True
    # How long to wait, after the last acknowledgement, for the pipeline to project everything.
    settle_timeout_s: float = 120.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.company_ids:
            raise OptionError("--company-ids: name at least one load-test company")
        if self.message_count is None and self.duration_s is None:
            raise OptionError("give --message-count or --duration (or both: whichever ends first)")
        if self.message_count is not None and self.message_count < 1:
            raise OptionError("--message-count must be at least 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise OptionError("--duration must be positive")
        if self.senders < 1:
            raise OptionError("--senders must be at least 1")
        if self.workers < 1:
            raise OptionError("--workers must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise OptionError("--rate must be positive")
        if self.rate is not None and self.steps:
            raise OptionError("--rate and --steps exclude each other")
        if self.vendor not in VENDORS:
            raise OptionError(f"--vendor must be one of {', '.join(VENDORS)}, not {self.vendor!r}")
        unknown = self.skip_types - set(ALL_TYPES)
        if unknown:
            raise OptionError(f"--skip-types: unknown message type(s) {', '.join(sorted(unknown))}")
        type_weights(self.mix, self.skip_types)  # raises on a bad mix

    def rate_at(self, elapsed_s: float) -> float | None:
        """The target rate (messages/s) at a point of the run; None means as fast as the workers go."""
        if self.steps:
            index = min(int(elapsed_s // self.step_seconds), len(self.steps) - 1)
            return self.steps[index]
        return self.rate

    @property
    def planned_duration_s(self) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        if self.steps:
            return self.step_seconds * len(self.steps)
        return None


def parse_steps(text: str) -> tuple[float, ...]:
    """``200,500,1000`` → rates of successive steps."""
    try:
        steps = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise OptionError(
            f"--steps: expected comma-separated rates like 200,500,1000, got {text!r}"
        ) from None
    if not steps or any(s <= 0 for s in steps):
        raise OptionError("--steps: every step rate must be positive")
    return steps


def parse_mix(text: str) -> dict[str, float]:
    """``subscribe=0.1,unsubscribe=0.05`` → shares per type."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep:
            raise OptionError(f"--mix: expected type=share, got {part!r}")
        if name not in ALL_TYPES:
            raise OptionError(f"--mix: unknown message type {name!r} (types: {', '.join(ALL_TYPES)})")
        try:
            share = float(value)
        except ValueError:
            raise OptionError(f"--mix: share of {name} is not a number: {value!r}") from None
        if share < 0:
            raise OptionError(f"--mix: share of {name} is negative")
        mix[name] = share
    return mix


def type_weights(mix: dict[str, float], skip: frozenset[str]) -> dict[str, float]:
    """Shares of every type that is sent: listed shares as given, unlisted types split the rest evenly."""
    clash = skip & set(mix)
    if clash:
        raise OptionError(f"--mix names skipped type(s) {', '.join(sorted(clash))}")
    active = [t for t in ALL_TYPES if t not in skip]
    if not active:
        raise OptionError("--skip-types skips every message type")
    listed = sum(mix.values())
    if listed > 1.0 + 1e-9:
        raise OptionError(f"--mix shares add up to {listed:g}, more than 1")
    unlisted = [t for t in active if t not in mix]
    rest = max(0.0, 1.0 - listed)
    weights = {t: mix.get(t, rest / len(unlisted) if unlisted else 0.0) for t in active}
    total = sum(weights.values())
    if total <= 0:
        raise OptionError("--mix gives every sent type a share of 0")
    return {t: w / total for t, w in weights.items() if w > 0}
