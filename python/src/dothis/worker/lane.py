"""One lane per queue a worker serves: its keys, its operations and the engine's context for it.
A worker serving ``--queue high --queue low`` has two lanes and claims from them in order."""

from __future__ import annotations

from dataclasses import dataclass

from dothis.engine.lifecycle import Context
from dothis.store.ops import Ops
from dothis.wire.protocol import Keys


@dataclass
class Lane:
    keys: Keys
    ops: Ops
    context: Context
