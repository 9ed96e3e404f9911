"""The engine: what happens to one task, shared by the worker, eager mode and the retask consumer.

A task's handling is written once, as flows (``lifecycle``, ``followups``) that yield requests
(script calls, reads, a try to run) and are driven by a synchronous or an asyncio driver
(``flow``). The decision after a try is a pure function (``decide``).
"""
