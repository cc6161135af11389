"""Typed configuration of a Flower deployment, split by trust (STYLE.md item 13).

* :class:`SiteConfig` (``site.toml``) stays at its hospital: where the data is, its
  schema, the jurisdiction, the state directory holding the site's signing key, audit log
  and agent socket, and the site's own export-gate packs. Its optional ``[supernode]``
  table (:class:`SupernodeConfig`) says how ``safeflow site serve`` reaches the SuperLink:
  ``superlink = "host:port"``, ``root_certificates`` (the CA), ``auth_private_key`` (the
  node key), ``clientappio_port``, ``profile = "production"|"test"`` and
  ``pinned_app_hashes`` (the Flower app bundles this site answers). A SuperNode started by
  hand gets only the path of this file (``--node-config 'safeflow-site="/srv/site.toml"'``).
* :class:`CoordinatorConfig` (``coordinator.toml``) stays with the aggregator and customs
  next to the SuperLink: customs' state directory (key, audit log, release ledger), the
  outbox where certified releases are handed to the analyst, and extra policy packs. The
  SuperLink's environment names it (``SAFEFLOW_COORDINATOR=/srv/coordinator.toml``), so an
  analyst cannot point customs at another ledger.
* :class:`StudySite` describes a site publicly (name, jurisdiction, the SuperNode's
  registered name or key, the site's signing key): this is what the shared study
  configuration, and each job, carries.

Every loader is strict: unknown keys, wrong types and bad values are typed errors that
name the file and the key.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "site.toml").write_text('''
... [site]
... name = "beijing"
... jurisdiction = "CN"
... state_dir = "state"
... [data]
... path = "rows.csv"
... [schema]
... path = "schema.json"
... ''')
>>> cfg = load_site_config(d / "site.toml")
>>> cfg.name, cfg.socket.name, cfg.state_dir == d / "state", cfg.supernode
('beijing', 'agent.sock', True, None)
>>> _ = (d / "site.toml").write_text((d / "site.toml").read_text() + '''
... [supernode]
... superlink = "superlink.example.org:9092"
... root_certificates = "ca.pem"
... auth_private_key = "node.key"
... pinned_app_hashes = ["''' + "ab" * 32 + '''"]
... ''')
>>> sn = load_site_config(d / "site.toml").supernode
>>> sn.profile, sn.root_certificates == d / "ca.pem", len(sn.pinned_app_hashes)
('production', True, 1)
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeflow.envelope import DEFAULT_MAX_BYTES
from safeflow.errors import InvalidParameter

COORDINATOR_ENV = "SAFEFLOW_COORDINATOR"
SITE_NODE_CONFIG = "safeflow-site"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CODE = re.compile(r"^[A-Z]{2}$")
_HEX_KEY = re.compile(r"^[0-9a-f]{64}$")
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")
PROFILES = ("production", "test")


def _fail(where: str, what: str) -> InvalidParameter:
    return InvalidParameter(f"{where}: {what}")


def _table(doc: Mapping[str, Any], key: str, where: str, allowed: set[str],
           required: bool = True) -> dict[str, Any]:
    t = doc.get(key)
    if t is None and not required:
        return {}
    if not isinstance(t, dict):
        raise _fail(where, f"missing [{key}] table")
    extra = set(t) - allowed
    if extra:
        raise _fail(where, f"unknown key(s) {sorted(extra)} in [{key}]; allowed: "
                           f"{sorted(allowed)}")
    return t


def _str(t: Mapping[str, Any], key: str, where: str, *, default: str | None = None,
         pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
    v = t.get(key, default)
    if not isinstance(v, str) or (pattern is not None and not pattern.match(v)):
        raise _fail(where, f"{key} must be {hint or 'a string'}; got {v!r}")
    return v


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _read_toml(path: str | Path) -> tuple[dict[str, Any], Path, str]:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InvalidParameter(f"cannot read {p} ({e.strerror}); give the path of the "
                               "configuration file") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidParameter(f"{p} is not valid TOML ({e})") from None
    return doc, p.resolve().parent, str(p)


@dataclass(frozen=True)
class SupernodeConfig:
    """How ``safeflow site serve`` starts the site's ``flower-supernode`` (``[supernode]``).

    Parameters
    ----------
    superlink : str
        ``host:port`` of the SuperLink's Fleet API.
    root_certificates : Path, optional
        The CA certificate that signed the SuperLink's TLS certificate; without it the
        SuperNode connects in clear (refused by the production profile).
    auth_private_key : Path, optional
        The SuperNode's node-authentication key (OpenSSH ECDSA); required by the production
        profile.
    clientappio_port : int, optional
        Port of the SuperNode's Runtime API on 127.0.0.1 (default: a free port).
    profile : {"production", "test"}
        ``production`` refuses to start without TLS, node authentication and pinned app
        hashes.
    pinned_app_hashes : tuple of str
        SHA-256 (hex) of the Flower App Bundles this site answers
        (``safeflow site app-hash`` prints the one of the installed safeflow).
    """

    superlink: str
    root_certificates: Path | None = None
    auth_private_key: Path | None = None
    clientappio_port: int | None = None
    profile: str = "production"
    pinned_app_hashes: tuple[str, ...] = ()


def _supernode(t: Mapping[str, Any], base: Path, where: str) -> SupernodeConfig:
    address = _str(t, "superlink", where, pattern=_ADDRESS, hint="host:port of the SuperLink")
    if not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        raise _fail(where, f"superlink port must be in 1..65535; got {address!r}")
    profile = _str(t, "profile", where, default="production", hint="'production' or 'test'")
    if profile not in PROFILES:
        raise _fail(where, f"profile must be 'production' or 'test'; got {profile!r}")
    port = t.get("clientappio_port")
    if port is not None and (type(port) is not int or not 1024 <= port < 65536):
        raise _fail(where, f"clientappio_port must be an int in [1024, 65535]; got {port!r}")
    pins = t.get("pinned_app_hashes", [])
    if not isinstance(pins, list) or not all(isinstance(x, str) and _HEX_KEY.match(x)
                                             for x in pins):
        raise _fail(where, "pinned_app_hashes must be a list of SHA-256 hex digests (64 "
                           "lower-case hex digits; `safeflow site app-hash` prints the one "
                           "of the installed safeflow)")
    paths = {}
    for key in ("root_certificates", "auth_private_key"):
        v = t.get(key) or None
        paths[key] = None if v is None else _path(base, _str(t, key, where, hint="a file path"))
    return SupernodeConfig(superlink=address, clientappio_port=port, profile=profile,
                           pinned_app_hashes=tuple(dict.fromkeys(pins)), **paths)


@dataclass(frozen=True)
class SiteConfig:
    """A site's private configuration (``site.toml``); never sent anywhere."""

    name: str
    jurisdiction: str
    state_dir: Path
    data: Path | None
    sql: str | None
    database: Path | None
    schema_path: Path
    socket: Path
    ciio: bool = False
    ftz: str | None = None
    studies: tuple[str, ...] = ()
    customs_key: str | None = None
    packs: tuple[Path, ...] = ()
    sdc_profile: str = "acro"
    max_envelope_bytes: int = DEFAULT_MAX_BYTES
    supernode: SupernodeConfig | None = None
    path: Path | None = None

    def data_source(self) -> Any:
        """The data source SiteData reads: a file path or an ``sf.SQL`` query."""
        if self.sql is not None:
            from safeflow.data import SQL

            return SQL(self.sql, database=None if self.database is None
                       else str(self.database))
        return self.data

    def schema(self) -> Any:
        """The site's declared schema (``sf.Schema``), read from its JSON file."""
        from safeflow.data import Schema

        try:
            raw = json.loads(self.schema_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InvalidParameter(f"cannot read the schema {self.schema_path} ({e}); "
                                   "write it with json.dump(schema.to_dict(), f)") from None
        return Schema.from_dict(raw)


def load_site_config(path: str | Path) -> SiteConfig:
    """Load and validate ``site.toml`` (paths are relative to the file).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "site.toml"
    >>> _ = p.write_text('[site]\\nname = "x"\\njurisdiction = "cn"\\nstate_dir = "s"\\n')
    >>> load_site_config(p)
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: ...site.toml: jurisdiction must be an ISO 3166 ...
    """
    doc, base, where = _read_toml(path)
    extra = set(doc) - {"site", "data", "schema", "policy", "supernode"}
    if extra:
        raise _fail(where, f"unknown table(s) {sorted(extra)}; allowed: site, data, schema, "
                           "policy, supernode")
    s = _table(doc, "site", where, {"name", "jurisdiction", "state_dir", "socket", "ciio",
                                    "ftz", "studies", "customs_key", "max_envelope_bytes"})
    name = _str(s, "name", where, pattern=_NAME, hint="1-64 letters, digits or _.-")
    jur = _str(s, "jurisdiction", where, pattern=_CODE,
               hint="an ISO 3166 alpha-2 code such as 'CN'")
    state = _path(base, _str(s, "state_dir", where, hint="a directory path"))
    sock = s.get("socket")
    socket = state / "agent.sock" if sock in (None, "") else _path(base, _str(s, "socket",
                                                                                where))
    ciio = s.get("ciio", False)
    if not isinstance(ciio, bool):
        raise _fail(where, f"ciio must be true or false; got {ciio!r}")
    ftz = s.get("ftz") or None
    if ftz is not None and not isinstance(ftz, str):
        raise _fail(where, f"ftz must be a string; got {ftz!r}")
    studies = s.get("studies", [])
    if not isinstance(studies, list) or not all(isinstance(x, str) for x in studies):
        raise _fail(where, "studies must be a list of study ids")
    ck = s.get("customs_key") or None
    if ck is not None and (not isinstance(ck, str) or not _HEX_KEY.match(ck)):
        raise _fail(where, "customs_key must be 64 lower-case hex digits (customs' public "
                           "Ed25519 key)")
    limit = s.get("max_envelope_bytes", DEFAULT_MAX_BYTES)
    if type(limit) is not int or not 1024 <= limit <= DEFAULT_MAX_BYTES:
        raise _fail(where, f"max_envelope_bytes must be an int in [1024, {DEFAULT_MAX_BYTES}]")
    d = _table(doc, "data", where, {"path", "sql", "database"}, required=False)
    data = sql = database = None
    if "sql" in d:
        sql = _str(d, "sql", where, hint="a SQL query")
        if d.get("database"):
            database = _path(base, _str(d, "database", where))
    elif "path" in d:
        data = _path(base, _str(d, "path", where))
    elif d:
        raise _fail(where, "[data] needs path = 'rows.csv' or sql = 'SELECT ...'")
    sch = _table(doc, "schema", where, {"path"}, required=False)
    schema_path = _path(base, _str(sch, "path", where, default="schema.json"))
    pol = _table(doc, "policy", where, {"packs", "sdc_profile"}, required=False)
    packs = pol.get("packs", [])
    if not isinstance(packs, list) or not all(isinstance(x, str) for x in packs):
        raise _fail(where, "policy.packs must be a list of pack file paths")
    profile = _str(pol, "sdc_profile", where, default="acro")
    sn = _table(doc, "supernode", where, {"superlink", "root_certificates", "auth_private_key",
                                          "clientappio_port", "profile", "pinned_app_hashes"},
                required=False)
    return SiteConfig(name=name, jurisdiction=jur, state_dir=state, data=data, sql=sql,
                      database=database, schema_path=schema_path, socket=socket, ciio=ciio,
                      ftz=ftz, studies=tuple(studies), customs_key=ck,
                      packs=tuple(_path(base, p) for p in packs), sdc_profile=profile,
                      max_envelope_bytes=limit,
                      supernode=_supernode(sn, base, where) if "supernode" in doc else None,
                      path=Path(path).resolve())


@dataclass(frozen=True)
class CoordinatorConfig:
    """The aggregator's and customs' private configuration (``coordinator.toml``)."""

    state_dir: Path
    outbox: Path
    packs: tuple[Path, ...] = ()
    reply_timeout: float = 120.0
    poll_interval: float = 0.1


def load_coordinator_config(path: str | Path) -> CoordinatorConfig:
    """Load and validate ``coordinator.toml``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "coordinator.toml"
    >>> _ = p.write_text('[coordinator]\\nstate_dir = "state"\\noutbox = "out"\\n')
    >>> load_coordinator_config(p).outbox.name
    'out'
    """
    doc, base, where = _read_toml(path)
    c = _table(doc, "coordinator", where, {"state_dir", "outbox", "packs", "reply_timeout",
                                           "poll_interval"})
    packs = c.get("packs", [])
    if not isinstance(packs, list) or not all(isinstance(x, str) for x in packs):
        raise _fail(where, "packs must be a list of pack file paths")
    timeout, poll = c.get("reply_timeout", 120.0), c.get("poll_interval", 0.1)
    if not isinstance(timeout, int | float) or not 1 <= timeout <= 86400:
        raise _fail(where, "reply_timeout must be a number of seconds in [1, 86400]")
    if not isinstance(poll, int | float) or not 0.01 <= poll <= 10:
        raise _fail(where, "poll_interval must be a number of seconds in [0.01, 10]")
    return CoordinatorConfig(
        state_dir=_path(base, _str(c, "state_dir", where, hint="a directory path")),
        outbox=_path(base, _str(c, "outbox", where, hint="a directory path")),
        packs=tuple(_path(base, p) for p in packs), reply_timeout=float(timeout),
        poll_interval=float(poll))


@dataclass(frozen=True)
class StudySite:
    """A site as the study (and every party) knows it: public facts only.

    Parameters
    ----------
    name, jurisdiction : str
        As in the site's own ``site.toml`` (the site refuses a session that disagrees).
    node_name : str, optional
        The name its SuperNode was registered under (``flwr supernode register --name``);
        defaults to ``name``.
    node_key : str, optional
        The SuperNode's authentication public key (OpenSSH line or PEM). When given, the
        coordinator only talks to the node that authenticated with this key.
    signing_key : str, optional
        The site's Ed25519 public key (hex) that co-signs certificates; pinned when given.
    ciio, ftz
        As for :class:`safeflow.Site`.

    Examples
    --------
    >>> StudySite("beijing", "CN").to_dict()["node_name"]
    'beijing'
    """

    name: str
    jurisdiction: str
    node_name: str | None = None
    node_key: str | None = None
    signing_key: str | None = None
    ciio: bool = False
    ftz: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name) \
                or self.name == "aggregator":
            raise InvalidParameter(f"site name must be 1-64 letters, digits or _.-; "
                                   f"got {self.name!r}")
        if not isinstance(self.jurisdiction, str) or not _CODE.match(self.jurisdiction):
            raise InvalidParameter(f"jurisdiction must be an ISO 3166 alpha-2 code such as "
                                   f"'CN'; got {self.jurisdiction!r}")
        if self.signing_key is not None and not _HEX_KEY.match(str(self.signing_key)):
            raise InvalidParameter("signing_key must be 64 lower-case hex digits")
        object.__setattr__(self, "node_name", self.node_name or self.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (as carried in a job)."""
        return {"name": self.name, "jurisdiction": self.jurisdiction,
                "node_name": self.node_name or self.name, "node_key": self.node_key,
                "signing_key": self.signing_key, "ciio": self.ciio, "ftz": self.ftz}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudySite:
        """Inverse of :meth:`to_dict` (typed error on unknown keys)."""
        if not isinstance(d, Mapping) or set(d) - {"name", "jurisdiction", "node_name",
                                                    "node_key", "signing_key", "ciio",
                                                    "ftz"}:
            raise InvalidParameter("malformed site entry in the study configuration")
        return cls(**dict(d))


__all__ = [
    "COORDINATOR_ENV",
    "PROFILES",
    "SITE_NODE_CONFIG",
    "CoordinatorConfig",
    "SiteConfig",
    "StudySite",
    "SupernodeConfig",
    "load_coordinator_config",
    "load_site_config",
]
