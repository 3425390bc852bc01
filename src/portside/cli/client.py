"""A botocore client for the portside endpoint, as the CLI uses it."""

from __future__ import annotations

import os
from typing import Any

import botocore.session
from botocore.config import Config

DEFAULT_ENDPOINT = "http://127.0.0.1:7070"


def endpoint_from_env() -> str:
    return os.environ.get("PORTSIDE_ENDPOINT", DEFAULT_ENDPOINT)


def make_client(service: str, endpoint: str, region: str | None = None) -> Any:
    """A client signed with the caller's AWS credentials when set, else placeholder ones (loopback needs none)."""
    session = botocore.session.get_session()
    credentials = session.get_credentials()
    access_key = credentials.access_key if credentials else "portside"
    secret_key = credentials.secret_key if credentials else "portside"
    return session.create_client(
        service,
        endpoint_url=endpoint,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
    )
