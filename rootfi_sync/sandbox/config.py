"""The sandbox's settings: who may call it, which companies exist, and which faults it injects.

Both models are frozen. Faults can still be changed while the sandbox runs: the admin API
(`PUT /_sandbox/faults`) replaces the running copy; the configured value is what
`POST /_sandbox/reset` goes back to.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Rate = Field(default=0.0, ge=0.0, le=1.0)


class Faults(BaseModel):
    """What goes wrong on `POST /v3/ecommerce/customers`, and how often (rates are 0..1).

    One `random.Random(seed)` decides per create request, in this order: a 429 (nothing
    stored), a 500 (nothing stored), a lost answer (stored, then the connection is dropped
    with no HTTP response), a slow answer (stored, answered after `slow_answer_seconds`).
    `latency_seconds` is added to every `/v3` request.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_500_rate: float = Rate
    error_429_rate: float = Rate
    lost_answer_rate: float = Rate
    slow_answer_rate: float = Rate
    slow_answer_seconds: float = Field(default=5.0, ge=0.0)
    latency_seconds: float = Field(default=0.0, ge=0.0)
    seed: int | None = None

    @property
    def any_create_fault(self) -> bool:
        """True when at least one per-request fault can fire."""
        return (
            self.error_500_rate > 0
            or self.error_429_rate > 0
            or self.lost_answer_rate > 0
            or self.slow_answer_rate > 0
        )


class SandboxConfig(BaseModel):
    """How a sandbox instance behaves; see `rootfi_sync.sandbox` for the rules it follows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_keys: frozenset[str] = frozenset({"sandbox-key"})
    company_ids: frozenset[int] = frozenset({1089})
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    async_delay_seconds: float = Field(default=0.2, ge=0.0)
    db_path: str | None = None
    faults: Faults = Field(default_factory=Faults)
