"""``dashboard``: serve the web dashboard (docs/dashboard.md)."""

from __future__ import annotations

import os

import click

from durable_celery.cli.errors import InputError
from durable_celery.cli.instance import CliState, pass_state

TOKEN_VARIABLE = "DURABLE_DASHBOARD_TOKEN"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="the address to listen on; anything but a loopback address needs --token")
@click.option("--port", default=5556, show_default=True, type=click.IntRange(0, 65535),
              help="the port to listen on (0: any free port)")
@click.option("--token", metavar="TOKEN", default=None,
              help=f"a secret of 16 or more characters every visitor must present (default: ${TOKEN_VARIABLE})")
@pass_state
def dashboard(state: CliState, host: str, port: int, token: str | None) -> None:
    """Serve the web dashboard: live executions, their graphs and history, the inbox of human
    inputs, schedules and queues, with cancel, retry, send-event and answer actions."""
    try:
        from durable_celery.dashboard import HOST_AUTH, Dashboard
        from durable_celery.dashboard.server import is_loopback, make
    except ImportError as error:
        raise InputError(str(error)) from None
    token = token or os.environ.get(TOKEN_VARIABLE) or None
    local = is_loopback(host)
    if not local and token is None:
        raise InputError(f"--host {host} makes the dashboard reachable from other machines: "
                         f"give it a --token (or ${TOKEN_VARIABLE}) that visitors must present")
    try:
        board = Dashboard(state.durable, auth=token if token is not None else HOST_AUTH, local_only=local)
    except ValueError as error:
        raise InputError(str(error)) from None
    server = make(board.wsgi(), host, port)
    bound_port = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"durable dashboard on http://{shown}:{bound_port}/" + ("  (token required)" if token else ""),
               err=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        board.close()
