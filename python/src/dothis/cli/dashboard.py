"""``dothis dashboard``: serve the dashboard (dothis.dashboard) with uvicorn."""

from __future__ import annotations

import click

from dothis.cli.common import CliError, queues_option, url_option
from dothis.cli.config import config_option

MISSING = ("the dashboard needs its extra: pip install 'dothis[dashboard]' (starlette, jinja2, "
           "uvicorn)")  # fmt: skip


@click.command()
@config_option(None)
@url_option
@queues_option("A queue to show; repeat for several (default: every known queue)")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True,
              help="The port to listen on.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; beyond loopback, actions need --auth.")  # fmt: skip
@click.option("--read-only", is_flag=True, help="Show everything, change nothing: no action.")
@click.option("--auth", metavar="USER:PASSWORD", default=None,
              help="Ask for this user and password (HTTP basic auth) on every page.")  # fmt: skip
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between live updates (polled only while someone watches).",
)
def dashboard(url: str | None, queues: tuple[str, ...], port: int, host: str, read_only: bool,
              auth: str | None, interval: float) -> None:  # fmt: skip
    """Serve the web dashboard: queues, tasks, workers, live counts and actions."""
    try:
        import uvicorn

        from dothis.dashboard import check_exposure, create_app
        from dothis.dashboard.security import parse_credentials
    except ImportError as error:
        raise CliError(f"{MISSING} ({error})") from error
    credentials = parse_credentials(auth) if auth else None
    check_exposure(host, read_only, credentials)
    app = create_app(url, queues=list(queues) or None, read_only=read_only, auth=credentials,
                     poll_interval=interval)  # fmt: skip
    app.state.dashboard.reader.ping()  # a wrong URL or password fails here, not at the first page
    click.echo(f"dashboard on http://{host}:{port}/ ({'read-only' if read_only else 'actions on'}"
               f"{', basic auth' if credentials else ''}); Ctrl-C stops it", err=True)  # fmt: skip
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    except (OSError, SystemExit) as error:
        raise CliError(f"cannot serve the dashboard on {host}:{port}: {error}") from error
