"""Canonical JSON (RFC 8785) and UTC timestamps: the byte forms that get hashed and signed.

Audit entries, checkpoint statements and certificate bodies are signed or hashed in their
canonical JSON encoding (:func:`canonical_json`: sorted keys, no whitespace, one spelling
per value), so equal values always give equal bytes. Times are ISO 8601 UTC strings ending
in ``Z`` (:func:`utc_timestamp` writes them, :func:`check_timestamp` checks them).

Examples
--------
>>> import datetime as dt
>>> canonical_json({"time": utc_timestamp(lambda: dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)),
...                 "kind": "decision"})
b'{"kind":"decision","time":"2026-01-05T09:00:00.000000Z"}'
>>> check_timestamp("2026-01-05T09:00:00Z", "time")
'2026-01-05T09:00:00Z'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import rfc8785

from safeflow.errors import InvalidParameter

#: A clock: returns the current time as a timezone-aware :class:`datetime.datetime`.
Clock = Callable[[], dt.datetime]

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


def canonical_json(value: Any, what: str = "value") -> bytes:
    """Encode a JSON value in its RFC 8785 canonical form (sorted keys, no whitespace).

    Parameters
    ----------
    value : Any
        dicts with ``str`` keys, lists, tuples, ``str``, ``int`` (within ±2**53), finite
        ``float``, ``bool`` and ``None``.
    what : str, default "value"
        Name used in the error message.

    Returns
    -------
    bytes
        UTF-8 bytes; equal values give equal bytes.

    Raises
    ------
    InvalidParameter
        If ``value`` holds something JSON cannot represent exactly (NaN, a set, bytes, an
        integer beyond ±2**53, a non-string key).

    Examples
    --------
    >>> canonical_json({"b": [1, 2.5], "a": "x"})
    b'{"a":"x","b":[1,2.5]}'
    >>> canonical_json({"x": float("nan")}, "entry")
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: entry cannot be encoded as canonical JSON (RFC 8785): ...
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise InvalidParameter(
            f"{what} cannot be encoded as canonical JSON (RFC 8785): {e}. Use only dicts with "
            "str keys, lists, str, finite floats, bools, None and ints within ±2**53 "
            "(encode bytes as hex, sets as sorted lists)"
        ) from None


def utc_timestamp(clock: Clock | None = None) -> str:
    """The current time as an ISO 8601 UTC timestamp with microseconds and a ``Z``.

    Parameters
    ----------
    clock : callable, optional
        Returns a timezone-aware :class:`datetime.datetime`; default: the system clock.

    Returns
    -------
    str

    Examples
    --------
    >>> import datetime as dt
    >>> utc_timestamp(lambda: dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC))
    '2026-01-05T09:00:00.000000Z'
    """
    now = dt.datetime.now(dt.UTC) if clock is None else clock()
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise InvalidParameter(
            "clock() must return a timezone-aware datetime, e.g. datetime.now(datetime.UTC)"
        )
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_timestamp(value: object, what: str) -> str:
    """Return ``value`` if it is an ISO 8601 UTC timestamp ending in ``Z``.

    Parameters
    ----------
    value : object
    what : str
        Name used in the error message.

    Returns
    -------
    str

    Raises
    ------
    InvalidParameter
        If ``value`` is not such a string or not a valid date and time.

    Examples
    --------
    >>> check_timestamp("2026-01-05T09:00:00Z", "time")
    '2026-01-05T09:00:00Z'
    >>> check_timestamp("2026-01-05 09:00", "time")
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: time must be an ISO 8601 UTC timestamp ...
    """
    ok = isinstance(value, str) and _TIMESTAMP.fullmatch(value) is not None
    if ok:
        try:
            dt.datetime.fromisoformat(value[:-1])  # type: ignore[index]
        except ValueError:
            ok = False
    if not ok:
        raise InvalidParameter(
            f"{what} must be an ISO 8601 UTC timestamp like '2026-01-05T09:00:00Z'; "
            f"got {value!r:.60}"
        )
    return value  # type: ignore[return-value]


__all__ = ["Clock", "canonical_json", "check_timestamp", "utc_timestamp"]
