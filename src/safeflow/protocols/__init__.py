"""Secure-sum protocols: one module per protocol, site half and server half together.

``make_protocol(name)`` returns the server-half class's instance factory and the site-half
class. Protocol modules never import analyses or transports; they talk through a
:class:`~safeflow.protocols._base.Channel`.

Examples
--------
>>> sorted(PROTOCOLS)
['he', 'masking', 'plain']
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from safeflow.errors import InvalidParameter
from safeflow.protocols._base import (
    Channel,
    ServerHalf,
    SessionInfo,
    SiteHalf,
    SumResult,
    default_threshold,
)
from safeflow.protocols.spec import ExportGate, ProtocolSpec, load_spec

#: protocol name -> (module, server class, site class)
PROTOCOLS: dict[str, tuple[str, str, str]] = {
    "plain": ("safeflow.protocols.plain", "PlainServer", "PlainSite"),
    "masking": ("safeflow.protocols.masking", "MaskingServer", "MaskingSite"),
    "he": ("safeflow.protocols.he", "HEServer", "HESite"),
}


class _Spec:
    def __init__(self, name: str) -> None:
        self.spec = load_spec(name)


def protocol_classes(name: str) -> tuple[type[ServerHalf], type[SiteHalf]]:
    """The server-half and site-half classes of protocol ``name``."""
    if name not in PROTOCOLS:
        raise InvalidParameter(
            f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)} (see sf.protocols)"
        )
    mod, server, site = PROTOCOLS[name]
    m = import_module(mod)
    return getattr(m, server), getattr(m, site)


def make_protocol(name: str) -> tuple[Any, type[SiteHalf]]:
    """A lightweight handle exposing the spec, and the site-half class (for inspection)."""
    _, site = protocol_classes(name)
    return _Spec(name), site


__all__ = [
    "PROTOCOLS",
    "Channel",
    "ExportGate",
    "ProtocolSpec",
    "ServerHalf",
    "SessionInfo",
    "SiteHalf",
    "SumResult",
    "default_threshold",
    "load_spec",
    "make_protocol",
    "protocol_classes",
]
