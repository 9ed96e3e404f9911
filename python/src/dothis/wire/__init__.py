"""The wire layer: protocol constants and key names, the clock, strict JSON and records read from
Redis. It imports nothing else of dothis but ``dothis.errors``."""
