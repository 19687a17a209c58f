"""boto3 clients and waiters for the launcher, and its AWS-side error.

Credentials come from boto3's default chain only (``AWS_PROFILE``, SSO, environment, instance role);
nothing here reads a key from config.
"""

from __future__ import annotations

import math
from typing import Any

import boto3


class EmrError(RuntimeError):
    """An AWS-side failure: a step or job run failed, a cluster died, or waiting timed out."""


def client(service: str, region: str | None, client: Any = None) -> Any:
    """``client`` or a new boto3 client for ``service`` in ``region`` (injected clients are for tests)."""
    return client if client is not None else boto3.client(service, region_name=region)


def waiter_config(timeout: float, delay: float) -> dict[str, int]:
    """A boto3 ``WaiterConfig`` that polls every ``delay`` seconds and gives up after about ``timeout``.

    At least one attempt is made, so an already finished resource is seen without sleeping.

    >>> waiter_config(60, 15)
    {'Delay': 15, 'MaxAttempts': 4}
    >>> waiter_config(0, 30)
    {'Delay': 30, 'MaxAttempts': 1}
    """
    delay = max(1, int(delay))
    return {"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))}
