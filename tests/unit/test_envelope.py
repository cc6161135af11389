"""Envelopes: round trips, and every malformed, truncated, replayed or out-of-stage input
is a typed error (never a crash, never a wrong value)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeflow.envelope import Envelope, Header, Payload, ReplayGuard
from safeflow.errors import (
    EnvelopeTooLarge,
    MalformedEnvelope,
    ReplayedEnvelope,
    TransportError,
    UnexpectedStage,
)


def _env(**meta: object) -> Envelope:
    h = Header("study", "run", 1, "masked_input", "beijing", "aggregator")
    p = Payload("masked", meta=dict(meta), arrays={"vector": np.arange(5, dtype=np.uint64)},
                blobs={"c_pk": b"\x01" * 32})
    return Envelope(h, p)


def test_round_trip_preserves_everything() -> None:
    env = _env(k=1, s="x", f=0.5)
    back = Envelope.from_bytes(env.to_bytes())
    assert back.header == env.header
    assert back.payload.meta == {"k": 1, "s": "x", "f": 0.5}
    assert back.payload.arrays["vector"].dtype == np.uint64
    assert back.payload.arrays["vector"].tolist() == [0, 1, 2, 3, 4]
    assert back.payload.blobs == {"c_pk": b"\x01" * 32}


def test_every_truncation_is_rejected() -> None:
    raw = _env().to_bytes()
    for cut in range(len(raw)):
        with pytest.raises(MalformedEnvelope):
            Envelope.from_bytes(raw[:cut])


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(MalformedEnvelope, match="body length"):
        Envelope.from_bytes(_env().to_bytes() + b"\0")


def test_non_canonical_header_is_rejected() -> None:
    raw = _env().to_bytes()
    hlen = int.from_bytes(raw[4:8], "little")
    header = raw[8 : 8 + hlen].replace(b'"v":1', b'"v": 1')
    forged = raw[:4] + len(header).to_bytes(4, "little") + header + raw[8 + hlen :]
    with pytest.raises(MalformedEnvelope, match="canonical"):
        Envelope.from_bytes(forged)


def test_oversized_is_rejected() -> None:
    with pytest.raises(EnvelopeTooLarge, match="exceeds the transport limit"):
        Envelope.from_bytes(_env().to_bytes(), max_bytes=10)


def test_unsupported_dtype_is_refused_at_the_sender() -> None:
    p = Payload("none", arrays={"x": np.array(["a"], dtype=object)})
    with pytest.raises(MalformedEnvelope, match="unsupported dtype"):
        Envelope(Header("s", "r", 0, "x", "a", "b"), p).to_bytes()


def test_large_float_in_meta_is_refused_at_the_sender() -> None:
    with pytest.raises(MalformedEnvelope, match="JSON"):
        _env(bound=1.7e16).to_bytes()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(TransportError):
        Envelope.from_bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_rejected_or_visible(pos: int, val: int) -> None:
    """Canonical form: no two byte strings parse to the same envelope, so a change that
    still parses is visible in what the receiver sees (integrity is TLS's and the guards' job)."""
    orig = _env()
    raw = bytearray(orig.to_bytes())
    pos %= len(raw)
    if raw[pos] == val:
        return
    raw[pos] = val
    try:
        back = Envelope.from_bytes(bytes(raw))
    except TransportError:
        return
    assert back.to_bytes() == bytes(raw)
    assert (back.header != orig.header or back.payload.meta != orig.payload.meta
            or back.payload.protection != orig.payload.protection
            or back.payload.blobs != orig.payload.blobs
            or {k: (v.dtype.str, v.tolist()) for k, v in back.payload.arrays.items()}
            != {k: (v.dtype.str, v.tolist()) for k, v in orig.payload.arrays.items()})


def test_replay_and_out_of_stage() -> None:
    g = ReplayGuard("study", "run", me="aggregator")
    h = _env().header
    g.accept(h, round=1, stage="masked_input", sender="beijing")
    with pytest.raises(ReplayedEnvelope, match="replay"):
        g.accept(h, round=1, stage="masked_input", sender="beijing")
    h2 = Header("study", "run", 1, "unmask", "beijing", "aggregator")
    with pytest.raises(UnexpectedStage, match="out-of-stage"):
        g.accept(h2, round=1, stage="masked_input", sender="beijing")
    h3 = Header("study", "other-run", 1, "masked_input", "beijing", "aggregator")
    with pytest.raises(UnexpectedStage, match="another study or run"):
        g.accept(h3, round=1, stage="masked_input", sender="beijing")
    h4 = Header("study", "run", 1, "masked_input", "amsterdam", "aggregator")
    with pytest.raises(UnexpectedStage, match="where 'beijing' was expected"):
        g.accept(h4, round=1, stage="masked_input", sender="beijing")


def test_in_order_guard_rejects_going_back() -> None:
    g = ReplayGuard("s", "r", me="site")
    order = ("advertise", "share_keys", "scale", "masked_input", "unmask")
    g.accept_in_order(Header("s", "r", 0, "advertise", "aggregator", "site"), order=order,
                      sender="aggregator")
    g.accept_in_order(Header("s", "r", 1, "masked_input", "aggregator", "site"), order=order,
                      sender="aggregator")
    with pytest.raises(UnexpectedStage, match="after a later one"):
        g.accept_in_order(Header("s", "r", 0, "share_keys", "aggregator", "site"),
                          order=order, sender="aggregator")
    with pytest.raises(UnexpectedStage, match="not part of this protocol"):
        g.accept_in_order(Header("s", "r", 2, "bogus", "aggregator", "site"), order=order,
                          sender="aggregator")
