"""The sandbox's settings: who may call it, which companies exist, and which faults it injects.

Both models are frozen. Faults can still be changed while the sandbox runs: the admin API
(`PUT /_sandbox/faults`) replaces the running copy; the configured value is what
`POST /_sandbox/reset` goes back to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rootfi_sandbox.platforms import PlatformName

JobsOrder = Literal["sent", "reversed", "failures_first", "shuffled"]
Rate = Field(default=0.0, ge=0.0, le=1.0)
Seconds = Field(default=0.0, ge=0.0)


class Faults(BaseModel):
    """What goes wrong, and how often (rates are 0..1).

    Creates (`POST /v3/ecommerce/customers`): one `random.Random(seed)` decides per request,
    in this order: a 429 (nothing stored), a 500 (nothing stored), a lost answer, a slow
    answer (stored, answered after `slow_answer_seconds`). A lost answer drops the connection
    with no HTTP response; the customer is stored before the drop, or, for a synchronous
    create with `lost_answer_landing_seconds` > 0, only that many seconds after it (an async
    create's sync is opened and runs as usual).

    GETs (every GET route under `/v3`): a second `random.Random(seed + 1)` (unseeded when
    `seed` is None) decides per request, in this order: a 429 with `Retry-After: 1`, a 500, a
    dropped connection; creates draw the same sequence whatever the GET rates are.

    `async_write_seconds`: how long an async write stays RUNNING before its records are
    written (after `SandboxConfig.async_delay_seconds` in CREATED). `latency_seconds` is
    added to every `/v3` request, GETs included.

    What RootFi and its platform do that the docs leave open (each a test's lever):
    `platform` is the profile behind every company (`rootfi_sandbox.platforms`: what it
    refuses and the form it keeps records in). `jobs_order` is the order
    `GET /v3/core/syncs/{id}/jobs` lists jobs in: as the records were `sent`, `reversed`,
    `failures_first` (then the rest, each group as sent), or `shuffled` (seeded by `seed` and
    the sync id, so every page of one listing agrees). `sync_unreadable_seconds`: for that
    long after a write, its sync and jobs answer 404 SYNC_NOT_FOUND while the write goes on.
    `repeat_cursor`: every list hands back the `next` cursor it was asked with (on a first
    page, the cursor of the second page or, with one page, of the first) forever.
    `strict_schema`: the API also refuses whole requests for rules RootFi does not state
    (`validation.STRICT_RULES`: one `@`, three capitals, phone characters, 1-255 character
    names), so a test can have a batch refused whole.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_500_rate: float = Rate
    error_429_rate: float = Rate
    lost_answer_rate: float = Rate
    slow_answer_rate: float = Rate
    slow_answer_seconds: float = Field(default=5.0, ge=0.0)
    lost_answer_landing_seconds: float = Seconds
    get_error_500_rate: float = Rate
    get_error_429_rate: float = Rate
    get_lost_answer_rate: float = Rate
    async_write_seconds: float = Seconds
    latency_seconds: float = Seconds
    platform: PlatformName = "lenient"
    jobs_order: JobsOrder = "sent"
    sync_unreadable_seconds: float = Seconds
    repeat_cursor: bool = False
    strict_schema: bool = False
    seed: int | None = None

    @property
    def any_create_fault(self) -> bool:
        """True when at least one per-create fault can fire."""
        return (
            self.error_500_rate > 0
            or self.error_429_rate > 0
            or self.lost_answer_rate > 0
            or self.slow_answer_rate > 0
        )

    @property
    def any_get_fault(self) -> bool:
        """True when at least one per-GET fault can fire."""
        rates = (self.get_error_500_rate, self.get_error_429_rate, self.get_lost_answer_rate)
        return any(rate > 0 for rate in rates)

    @property
    def get_seed(self) -> int | None:
        """The seed of the GET dice: `seed + 1`, so creates keep the sequence `seed` gives."""
        return None if self.seed is None else self.seed + 1


class SandboxConfig(BaseModel):
    """How a sandbox instance behaves; see `rootfi_sandbox` for the rules it follows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_keys: frozenset[str] = frozenset({"sandbox-key"})
    company_ids: frozenset[int] = frozenset({1089})
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    async_delay_seconds: float = Field(default=0.2, ge=0.0)
    db_path: str | None = None
    faults: Faults = Field(default_factory=Faults)
