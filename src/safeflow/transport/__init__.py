"""Transports move envelope bytes between the aggregator and the sites.

``local`` runs every role in this process (embedded default for notebooks, tests and
benchmarks); a Flower transport for real multi-machine studies implements the same
:class:`~safeflow.protocols.Channel`. Analyses and protocols never import a transport.

Examples
--------
>>> from safeflow.transport.local import LocalChannel
>>> from safeflow.protocols import Channel
>>> issubclass(LocalChannel, Channel)
True
"""
