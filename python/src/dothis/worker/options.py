"""A worker's settings, defined once: ``WorkerOptions`` and the ``dothis worker`` flags share these
defaults (SPEC.md's where it has one)."""

from __future__ import annotations

from dataclasses import dataclass

from dothis.wire.protocol import (
    DEFAULT_FAILURE_TTL,
    DEFAULT_HEARTBEAT_MS,
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_CLAIMS,
    DEFAULT_MAX_FIELDS,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_REAP_MS,
    DEFAULT_RESULT_TTL,
    DEFAULT_RETRY_BASE_MS,
    DEFAULT_RETRY_MAX_MS,
    DEFAULT_SCHEDULE_MS,
)

POOLS = ("process", "thread", "inline")


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker; the defaults are SPEC.md's."""

    concurrency: int = 1
    prefetch: int | None = None  # None: auto (worker/prefetch.py)
    pool: str = "process"
    timeout: float | None = None
    lease_ms: int = DEFAULT_LEASE_MS
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    reap_ms: int = DEFAULT_REAP_MS
    max_claims: int = DEFAULT_MAX_CLAIMS
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_fields: int = DEFAULT_MAX_FIELDS
    retry_base_ms: int = DEFAULT_RETRY_BASE_MS
    retry_max_ms: int = DEFAULT_RETRY_MAX_MS
    schedule_ms: int = DEFAULT_SCHEDULE_MS
    result_ttl: int = DEFAULT_RESULT_TTL
    failure_ttl: int = DEFAULT_FAILURE_TTL
    cancel_check_ms: int = 500
    grace_seconds: float = 30.0
    block_seconds: float = 2.0
    # Drain what is queued now (pending, and scheduled tasks already due), then exit.
    burst: bool = False
    # Serve Prometheus metrics on this port (loopback unless metrics_host says otherwise).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.concurrency < 1 or (self.prefetch is not None and self.prefetch < 0):
            raise ValueError("concurrency must be at least 1, prefetch at least 0 (None: auto)")
        if self.pool not in POOLS:
            raise ValueError("pool must be process, thread or inline")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if not 0 < self.heartbeat_ms < self.lease_ms:
            raise ValueError("heartbeat must be positive and shorter than the lease")
        if min(self.reap_ms, self.max_claims, self.max_value_bytes, self.schedule_ms) < 1:
            raise ValueError(
                "reap-ms, max-claims, max-value-bytes and schedule-ms must be positive"
            )
        for ttl in (self.result_ttl, self.failure_ttl):
            if ttl < 1 and ttl != -1:
                raise ValueError("result-ttl and failure-ttl are seconds, or -1 to keep forever")
        if not 0 < self.retry_base_ms <= self.retry_max_ms:
            raise ValueError("retry-base-ms must be positive and at most retry-max-ms")
