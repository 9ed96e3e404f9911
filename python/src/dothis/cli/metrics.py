"""``dothis metrics``: serve the gauges of queues (producer/gauges.py) for Prometheus."""

from __future__ import annotations

import click

from dothis.cli.common import CliError, queues_option, url_option
from dothis.cli.config import config_option
from dothis.producer import gauges
from dothis.worker.logs import configure as configure_logging


@click.command()
@config_option(None)
@url_option
@queues_option("A queue to export; repeat for several (default: every known queue)")
@click.option("--port", type=click.IntRange(0, 65535), required=True,
              help="The port to serve /metrics on (0: a free one, logged).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=gauges.DEFAULT_INTERVAL,
              show_default=True, help="Read Redis at most this often (seconds).")  # fmt: skip
def metrics(url: str | None, queues: tuple[str, ...], port: int, host: str,
            interval: float) -> None:  # fmt: skip
    """Serve Prometheus gauges of queues (tasks by state, oldest pending, live workers) until
    Ctrl-C; a worker's own metrics are its --metrics-port."""
    configure_logging("info", "text")
    try:
        gauges.run(url, list(queues) or None, port, host, interval)
    except OSError as error:
        raise CliError(str(error)) from error
