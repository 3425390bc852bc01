"""What every API verb of the CLI shares: calling the API, failing in one line, common options."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from botocore.exceptions import BotoCoreError, ClientError

from portside.cli.client import endpoint_from_env


def fail(message: str) -> NoReturn:
    """Say ``portside: message`` on stderr and exit 1."""
    click.echo(f"portside: {message}", err=True)
    sys.exit(1)


def call(client: Any, operation: str, **params: Any) -> Any:
    """``client.operation(**params)``, or fail with the API's error code and message."""
    try:
        return getattr(client, operation)(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        fail(f"{error.get('Code', 'Error')}: {error.get('Message', '')}")
    except BotoCoreError as exc:
        fail(f"cannot reach the portside API: {exc}")


endpoint_option = click.option(
    "--endpoint", default=endpoint_from_env, show_default="$PORTSIDE_ENDPOINT or http://127.0.0.1:7070",
    help="The portside API endpoint.",
)
cluster_option = click.option("--cluster", default="default", show_default=True)
