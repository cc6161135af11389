"""Sites and federations: what binds data, protocol, transport and (later) policy.

A :class:`Site` holds a hospital's data (never serialised) and its jurisdiction. A
:class:`Federation` knows the sites, the destination and purpose of the study, the public
schema every party agrees on, and drives analyses: each run makes a fresh protocol session
(keys exchanged once per run), asks the analysis for each round's public layout, has the
protocol securely sum the sites' statistics over the transport, and hands the totals back
to the analysis. Customs turns the result into a :class:`~safeflow.release.Release` whose
facts it derives from the run itself.

Examples
--------
>>> import pandas as pd, safeflow as sf
>>> s = sf.Schema([sf.Column("x", classes=("public",), bounds=(0, 10))])
>>> fed = sf.Federation.local([sf.Site("a", pd.DataFrame({"x": [1.0, 2]}), "CN", schema=s),
...                           sf.Site("b", pd.DataFrame({"x": [3.0]}), "NL", schema=s)],
...                          destination="NL", purpose="scientific-research")
>>> fed
<Federation local: a (CN), b (NL) -> NL for scientific-research>
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from safeflow.analyses import Analysis, Done, Next
from safeflow.analyses.batch import Batch
from safeflow.data import Column, Schema, SiteData
from safeflow.dp.accounts import SiteAccounts
from safeflow.envelope import DEFAULT_MAX_BYTES
from safeflow.errors import (
    ExportDenied,
    InvalidParameter,
    ProtocolError,
    SafeflowError,
    SchemaError,
)
from safeflow.policy.customs import Customs, PolicySettings, messages_digest, release_files
from safeflow.policy.release_sdc import SUPPRESSIBLE, suppress_release
from safeflow.protocols import SessionInfo, default_threshold, load_spec, protocol_classes
from safeflow.protocols.dp import DPPlan, check_contributions
from safeflow.release import Release
from safeflow.runtime import SiteRuntime
from safeflow.transport.local import LocalChannel

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_JURISDICTION = re.compile(r"^[A-Z]{2}$")


class Site:
    """A data holder: a name, a jurisdiction and data that never leaves it.

    Parameters
    ----------
    name : str
        Letters, digits, ``_ . -`` (at most 64).
    data : DataFrame, pyarrow Table, path or sf.data.SQL
        The site's rows (see :class:`safeflow.data.SiteData`).
    jurisdiction : str
        ISO 3166 alpha-2 code of the country the data is in, e.g. ``"CN"``, ``"NL"``.
    schema : sf.Schema, optional
        The public schema; inferred (with a warning) when omitted.
    budget : number, or (ε, δ), optional
        The site's total privacy budget for this dataset (exact: ``0.1`` is one tenth).
        Needed for differentially private releases; the site's ledger (in the
        federation's state directory) is debited before any DP value leaves.
    dataset : str, optional
        Name of the dataset in the budget ledger (default: the site name).
    """

    def __init__(self, name: str, data: Any, jurisdiction: str, schema: Schema | None = None,
                 *, ciio: bool = False, ftz: str | None = None, budget: Any = None,
                 dataset: str | None = None) -> None:
        if not isinstance(name, str) or not _NAME.match(name) or name == "aggregator":
            raise InvalidParameter(
                f"site name must be 1-64 letters, digits or _.- (and not 'aggregator'); "
                f"got {name!r}")
        if not isinstance(jurisdiction, str) or not _JURISDICTION.match(jurisdiction):
            raise InvalidParameter(
                f"jurisdiction must be an ISO 3166 alpha-2 code such as 'CN' or 'NL'; "
                f"got {jurisdiction!r}")
        self.name, self.jurisdiction, self.ciio, self.ftz = name, jurisdiction, ciio, ftz
        self.budget, self.dataset = budget, dataset or name
        self._raw = data
        self._data = SiteData(data, schema=schema)

    @property
    def schema(self) -> Schema:
        """The site's schema (declared or inferred)."""
        return self._data.schema

    def __reduce__(self) -> Any:
        raise SchemaError("a site holds patient data; it is never serialised")

    def __repr__(self) -> str:
        return f"<Site {self.name} ({self.jurisdiction})>"


def _merge_schemas(sites: Sequence[Site]) -> Schema:
    """The public schema: identical declared schemas, or a merge of inferred ones."""
    schemas = [s.schema for s in sites]
    if all(s.declared for s in schemas):
        first = schemas[0].to_dict()
        for site, sch in zip(sites[1:], schemas[1:], strict=True):
            if sch.to_dict() != first:
                raise SchemaError(
                    f"site {site.name!r} declares a different schema from {sites[0].name!r}; "
                    "every site must declare the same public schema (bounds, levels, roles)")
        return schemas[0]
    common = [n for n in schemas[0].names if all(n in s for s in schemas)]
    cols = []
    for n in common:
        variants = [s.column(n) for s in schemas]
        c0 = variants[0]
        cats = None
        if c0.kind != "numeric":
            levels = {c for v in variants for c in (v.categories or ())}
            cats = tuple(sorted(levels, key=lambda x: (str(type(x)), str(x))))
        classes = tuple(sorted({k for v in variants for k in v.classes}))
        cols.append(Column(n, role=c0.role, kind=c0.kind, classes=classes, categories=cats,
                           on_missing=c0.on_missing))
    return Schema(cols, unit=schemas[0].unit, declared=False)


class Federation:
    """Sites, destination and purpose of a study, and how to reach the sites."""

    def __init__(self, sites: Sequence[Site], *, destination: str, purpose: str,
                 transport: str, study: str | None = None, threshold: int | None = None,
                 max_rows_per_site: int = 2**32,
                 max_envelope_bytes: int = DEFAULT_MAX_BYTES,
                 policy: PolicySettings | None = None,
                 state_dir: str | Path | None = None) -> None:
        sites = list(sites)
        if not all(isinstance(s, Site) for s in sites):
            raise InvalidParameter("Federation takes a list of sf.Site objects")
        names = [s.name for s in sites]
        if len(set(names)) != len(names):
            raise InvalidParameter(f"site names must be unique; got {names}")
        if not isinstance(destination, str) or not _JURISDICTION.match(destination):
            raise InvalidParameter(
                f"destination must be an ISO 3166 alpha-2 code such as 'NL'; got {destination!r}")
        if not isinstance(purpose, str) or not purpose:
            raise InvalidParameter("purpose must be a non-empty string, e.g. "
                                   "'scientific-research'")
        if not (isinstance(max_rows_per_site, int) and 1 <= max_rows_per_site < 2**52):
            raise InvalidParameter("max_rows_per_site must be an int between 1 and 2^52")
        self.sites, self.destination, self.purpose = sites, destination, purpose
        self.transport, self.study = transport, study or f"study-{uuid.uuid4().hex[:8]}"
        self.threshold = threshold if threshold is not None else default_threshold(len(sites))
        SessionInfo(self.study, "check", tuple(names), self.threshold)  # validates
        self.max_rows_per_site, self.max_envelope_bytes = max_rows_per_site, max_envelope_bytes
        self.public_schema = _merge_schemas(sites)
        self._site_data = {s.name: (s._data if s.schema is self.public_schema
                                    else SiteData(s._raw, schema=self.public_schema))
                           for s in sites}
        self._faults: dict[str, Any] = {}
        if policy is not None and not isinstance(policy, PolicySettings):
            raise InvalidParameter("policy must be an sf.PolicySettings")
        self.policy = policy or PolicySettings()
        ephemeral = state_dir is None
        self.state_dir = Path(tempfile.mkdtemp(prefix="safeflow-state-") if ephemeral
                              else state_dir)
        self.customs = Customs(self.state_dir, self.policy,
                               {s.name: s.jurisdiction for s in sites}, study=self.study,
                               destination=destination, purpose=purpose)
        self.accounts = SiteAccounts(self.state_dir, {s.name: (s.dataset, s.budget)
                                                      for s in sites if s.budget is not None})
        # keys, audit logs and ledgers of an ephemeral federation live as long as it does
        weakref.finalize(self, _close_state, self.customs, self.accounts,
                         self.state_dir if ephemeral else None)

    @classmethod
    def local(cls, sites: Sequence[Site], *, destination: str, purpose: str,
              **options: Any) -> Federation:
        """All roles in this process over the embedded local transport (envelopes and all)."""
        return cls(sites, destination=destination, purpose=purpose, transport="local",
                   **options)

    @classmethod
    def flower(cls, sites: Sequence[Any], *, destination: str, purpose: str, schema: Schema,
               superlink: str, root_certificates: str | Path, outbox: str | Path,
               profile: str = "production", **options: Any) -> Federation:
        """Sites deployed on Flower (a SuperLink and one SuperNode per site).

        ``sites`` are :class:`safeflow.transport.flower.StudySite` (name, jurisdiction,
        node key, signing key): no data here, the sites hold it. Every analysis function
        then submits a job to the SuperLink and returns the release customs certified next
        to it. See :mod:`safeflow.transport.flower`.
        """
        from safeflow.transport.flower.submit import FlowerConnection, FlowerFederation

        conn = FlowerConnection(superlink, root_certificates=root_certificates,
                                profile=profile)
        return FlowerFederation(sites, destination=destination, purpose=purpose,
                                schema=schema, connection=conn, outbox=outbox, **options)

    def simulate_faults(self, *, dropouts: Mapping[str, tuple[int, str]] | None = None,
                        tamper: Any = None) -> None:
        """Testing aid: sites fall silent from ``(round, stage)``; ``tamper`` edits replies."""
        self._faults = {"dropouts": dict(dropouts or {}), "tamper": tamper}

    def _context(self) -> dict[str, Any]:
        return {"sites": [s.name for s in self.sites],
                "max_rows_per_site": self.max_rows_per_site,
                "public_schema": self.public_schema}

    def budgets(self) -> dict[str, list[dict[str, Any]]]:
        """Each site's privacy budget: ``{site: rows}`` (dataset, total, spent, remaining).

        Examples
        --------
        >>> import pandas as pd, safeflow as sf
        >>> s = sf.Schema([sf.Column("x", bounds=(0, 1))])
        >>> df = pd.DataFrame({"x": [0.5]})
        >>> fed = sf.Federation.local([sf.Site("a", df, "NL", schema=s, budget=1),
        ...                            sf.Site("b", df, "DE", schema=s, budget="0.5")],
        ...                           destination="NL", purpose="scientific-research")
        >>> {site: str(rows[0]["remaining"]) for site, rows in fed.budgets().items()}
        {'a': '1', 'b': '1/2'}
        """
        return self.accounts.show()

    def run(self, analysis: Analysis, *, protocol: str = "masking",
            rng: np.random.Generator | None = None, query_id: str | None = None,
            **protocol_params: Any) -> Release:
        """Run one analysis to completion under ``protocol``; return its release.

        With ``analysis.params["dp"]`` the release is differentially private: every site
        debits its budget ledger for ``query_id`` (default: a fresh id per call) before
        anything is computed, and customs noises the aggregate (central mode).
        """
        protocol_classes(protocol)  # typed error for unknown names
        if "dp" in protocol_params:
            raise InvalidParameter(
                f"{analysis.name} does not support differential privacy (dp=); DP is "
                "available for describe, histogram, crosstab, kaplan_meier, logrank and "
                "glm(family='gaussian')")
        run_id = uuid.uuid4().hex[:16]
        info = SessionInfo(self.study, run_id, tuple(s.name for s in self.sites), self.threshold)
        server_cls, _ = protocol_classes(protocol)
        server = server_cls(info, rng=rng, **protocol_params)
        ctx = self._context()
        channel, runtimes = self._open_channel(info, protocol, rng, protocol_params)
        try:
            return self._drive(analysis, protocol, server, channel, runtimes, info, ctx,
                               query_id)
        finally:
            self._close_channel(channel)

    def run_batch(self, analyses: Sequence[Analysis], *, protocol: str = "masking",
                  rng: np.random.Generator | None = None,
                  **protocol_params: Any) -> list[Release | SafeflowError]:
        """Run one-shot analyses together: one protocol session, one secure sum.

        Every analysis must need a single round (``describe``, ``histogram``,
        ``crosstab``, ``glm`` with ``family="gaussian"``, ``kaplan_meier``, ``logrank``)
        and carry no ``dp`` (each DP release is debited separately). Their layouts are
        concatenated into one (:class:`~safeflow.analyses.batch.Batch`, statistics
        prefixed ``"<index>:"``), summed once under ``protocol``, split back, and each
        analysis's ``combine`` and customs (decision, disclosure control, differencing
        check, certificate) run exactly as :meth:`run` would: the values are identical to
        separate runs. Over Flower this saves the session set-up and a round per
        analysis (seconds each).

        Parameters
        ----------
        analyses : sequence of Analysis
            Built analyses, e.g. ``Describe({...})`` or
            ``analysis_of(sf.describe, fed, ["age"], by="arm")``
            (:func:`safeflow.analyses.batch.analysis_of`: the front door's own validation,
            nothing run). 1 to 64.
        protocol : str
            The protocol of the shared session.
        rng : numpy Generator, optional
            Deterministic randomness for tests.

        Returns
        -------
        list of Release or SafeflowError
            One entry per analysis, in order: its certified :class:`Release`, or the typed
            error that analysis alone would have raised (``ExportDenied`` when customs
            denies it, or e.g. a singular-fit error from its ``combine``). A failure of one
            analysis never loses the others; errors of the whole session (transport,
            protocol, too few survivors) are raised.

        Notes
        -----
        Each release has its own output facts (kind, SDC metrics, decision, certificate)
        but the run facts are those of the shared session: ``run_id``, ``rounds``,
        ``border_bytes``, ``bytes_per_round`` and ``messages_sha256`` are the same in every
        release of a batch, and its bytes are those of all the analyses together (the facts
        schema has no field for a batch, so do not add them up across a batch's releases).

        Examples
        --------
        >>> import pandas as pd, safeflow as sf
        >>> from safeflow.analyses.describe import Describe
        >>> from safeflow.analyses.crosstab import Crosstab
        >>> s = sf.Schema([sf.Column("x", classes=("public",), bounds=(0, 10)),
        ...                sf.Column("g", classes=("public",), kind="categorical",
        ...                          categories=("a", "b"))])
        >>> df = pd.DataFrame({"x": [1.0, 2, 3], "g": ["a", "b", "a"]})
        >>> fed = sf.Federation.local([sf.Site("a", df, "CN", schema=s),
        ...                            sf.Site("b", df, "NL", schema=s)],
        ...                           destination="NL", purpose="scientific-research")
        >>> rels = fed.run_batch([Describe({"columns": ["x"]}),
        ...                       Crosstab({"rows": "g", "cols": "g"})])
        >>> [r.analysis for r in rels], rels[0].rounds
        (['describe', 'crosstab'], 1)
        >>> rels[1].value.to_numpy().tolist()
        [[4, 0], [0, 2]]
        """
        protocol_classes(protocol)
        cls = type(self)
        if cls.run is not Federation.run and cls.run_batch is Federation.run_batch:
            raise InvalidParameter(
                f"{cls.__name__} adds checks to run() that run_batch() does not make; run "
                "these analyses one by one with fed.run (or override run_batch to make the "
                "same checks for every analysis)")
        if "dp" in protocol_params:
            raise InvalidParameter("a batch cannot be differentially private (dp=); run each "
                                   "DP analysis on its own")
        batch = Batch.of(analyses, self.public_schema)
        items = batch.items
        run_id = uuid.uuid4().hex[:16]
        info = SessionInfo(self.study, run_id, tuple(s.name for s in self.sites), self.threshold)
        server_cls, _ = protocol_classes(protocol)
        server = server_cls(info, rng=rng, **protocol_params)
        ctx = self._context()
        channel, runtimes = self._open_channel(info, protocol, rng, protocol_params)
        try:
            server.setup(channel)
            layout = batch.layout(self.public_schema, ctx)
            res = server.secure_sum(channel, 1, layout, batch.request())
            contributors = sorted(set(info.sites) & set(res.contributors))
            step = batch.combine(res.totals, self.public_schema, ctx)
            out: list[Release | SafeflowError] = []
            for i, (a, done) in enumerate(zip(items, step.value, strict=True)):
                if isinstance(done, SafeflowError):
                    out.append(done)
                    continue
                try:
                    out.append(self._certify_step(a, protocol, done, channel, runtimes, info,
                                                  contributors, 1,
                                                  release_id=f"{run_id}/{i}"))
                except ExportDenied as e:
                    out.append(e)
            return self._finish_batch(channel, out)
        finally:
            self._close_channel(channel)

    def _finish_batch(self, channel: Any, results: list[Release | SafeflowError]
                      ) -> list[Release | SafeflowError]:
        """Hook for transports that collect the sites' co-signatures of a batch at once."""
        return results

    def _open_channel(self, info: SessionInfo, protocol: str, rng: np.random.Generator | None,
                      params: Mapping[str, Any]) -> tuple[Any, dict[str, SiteRuntime]]:
        """The transport of one run: in-process site runtimes behind a LocalChannel.

        Other transports (``safeflow.transport.flower``) override this and
        :meth:`_close_channel`; the channel must offer ``exchange``, ``log``,
        ``received`` and ``border_bytes`` like :class:`LocalChannel`.
        """
        ctx = self._context()
        runtimes = {
            s.name: SiteRuntime(
                s.name, self._site_data[s.name], self.public_schema, protocol, info,
                context={**ctx, "site": s.name, "jurisdiction": s.jurisdiction,
                         "destination": self.destination},
                rng=None if rng is None else _byte_rng(rng),
                max_envelope_bytes=self.max_envelope_bytes,
                policy_gate=lambda msg, name=s.name: self.customs.gate(name, msg),
                on_sent=lambda entry, name=s.name: self.customs.log_message(name, entry),
                **params)
            for s in self.sites}
        channel = LocalChannel(self.study, info.run, runtimes,
                               {s.name: s.jurisdiction for s in self.sites}, self.destination,
                               max_envelope_bytes=self.max_envelope_bytes,
                               dropouts=self._faults.get("dropouts", {}),
                               tamper=self._faults.get("tamper"))
        return channel, runtimes

    def _close_channel(self, channel: Any) -> None:
        """End a run's transport (nothing to do in process)."""

    def _check_dp_sites(self, plan: DPPlan) -> None:
        """Each site checks its rows per patient against the schema before it pays."""
        for data in self._site_data.values():
            check_contributions(data, self.public_schema, plan.contributions)

    def _drive(self, analysis: Analysis, protocol: str, server: Any, channel: Any,
               runtimes: Mapping[str, SiteRuntime], info: SessionInfo,
               ctx: Mapping[str, Any], query_id: str | None) -> Release:
        """The rounds of one analysis over an open channel, then customs."""
        run_id = info.run
        if not analysis.state:
            analysis.state = analysis.initial_state(self.public_schema)
        plan = DPPlan.for_analysis(analysis, self.public_schema, ctx)
        receipts, qid = [], query_id or f"{self.study}/{run_id}/{analysis.name}"
        if plan is not None:  # every site checks its rows per patient, then pays
            self._check_dp_sites(plan)
            receipts = self.accounts.debit(qid, plan.dp, [s.name for s in self.sites])
        server.setup(channel)
        rounds, contributors = 0, set(info.sites)
        while True:
            rounds += 1
            layout = analysis.layout(self.public_schema, ctx)
            if plan is not None:
                layout = plan.layout(layout)
            res = server.secure_sum(channel, rounds, layout, analysis.request())
            contributors &= set(res.contributors)
            totals = res.totals if plan is None else plan.noise(res.totals)
            step = analysis.combine(totals, self.public_schema, ctx)
            if isinstance(step, Next):
                if plan is not None:
                    raise ProtocolError(f"{analysis.name} asked for a second round under DP; "
                                        "DP releases are single-round")
                analysis.state = step.state
                continue
            break
        release = self._certify_step(analysis, protocol, step, channel, runtimes, info,
                                     sorted(contributors), rounds, plan=plan,
                                     receipts=receipts)
        if plan is not None:
            self.accounts.mark_released(qid, receipts)
        return release

    def _certify_step(self, analysis: Analysis, protocol: str, step: Done, channel: Any,
                      runtimes: Mapping[str, SiteRuntime], info: SessionInfo,
                      contributors: list[str], rounds: int, *, plan: DPPlan | None = None,
                      receipts: Sequence[Any] = (), release_id: str | None = None
                      ) -> Release:
        """Facts of one finished analysis, then customs (decide, certify, release)."""
        facts = self._facts(analysis, protocol, step.facts, channel, contributors, rounds)
        if plan is not None:
            facts["output"]["dp"] = plan.facts()
            facts["budget"] = self.accounts.budget_facts(list(receipts))
        elif "budget" in step.facts:  # an analysis with its own DP accounting (FL)
            facts["budget"] = dict(step.facts["budget"])
        facts["run"]["run_id"] = info.run
        facts["run"]["messages_sha256"] = {
            s: messages_digest(channel.received[s]) for s in contributors}
        filters = sorted(f"{c} present" for c in dict.fromkeys(analysis.columns())
                         if self.public_schema.column(c).on_missing == "drop")
        return self._release(analysis.name, protocol, step.value, facts, runtimes, channel,
                             rounds, population_filters=filters,
                             group=analysis.params.get("by") or analysis.params.get("group"),
                             dp_text=None if plan is None else plan.accuracy_text(),
                             release_id=release_id)

    def _release(self, analysis: str, protocol: str, value: Any, facts: dict[str, Any],
                 runtimes: Mapping[str, SiteRuntime], channel: Any, rounds: int, *,
                 population_filters: Sequence[str] = (), group: str | None = None,
                 dp_text: str | None = None, release_id: str | None = None) -> Release:
        """Customs: decide; deny (typed, no numbers) or certify and hand out the release."""
        norm, decision = self.customs.decide(facts)
        if (not decision.exportable and self.policy.suppress and analysis in SUPPRESSIBLE
                and decision.outcome.value == "DENY_SDC"
                and set(decision.derived["sdc_failures"]) <= {"min_cell", "zeros"}):
            value, cells = suppress_release(analysis, value, self.policy.sdc_profile)
            facts["output"]["sdc"].update(cells)
            norm, decision = self.customs.decide(facts)
        if not decision.exportable:
            raise self.customs.deny(analysis, decision)
        self.customs.check_differencing(release_id or facts["run"]["run_id"], analysis, norm,
                                        filters=population_filters, group=group)
        files = release_files(value)
        self._before_certify(rounds)
        sent = {s: messages_digest(rt.sent) for s, rt in runtimes.items()}
        cert = self.customs.certify(norm, decision, files, site_messages=sent)
        summary = self.customs.summary_text(analysis, protocol, norm, decision, cert)
        if dp_text:
            summary = f"{summary.rstrip()}\n{dp_text}\n"
        return Release(value, norm, analysis=analysis, protocol=protocol, decision=decision,
                       certificate=cert, rounds=rounds, log=tuple(channel.log),
                       files=files, summary=summary, trusted=self.customs.trusted_keys())

    def _before_certify(self, rounds: int) -> None:
        """Hook for transports whose sites co-sign over the network (nothing in process)."""

    def _facts(self, analysis: Analysis, protocol: str, out: Mapping[str, Any],
               channel: Any, contributors: list[str], rounds: int) -> dict[str, Any]:
        """Facts derived from the run itself (POLICY.md), not from what a caller claims."""
        spec = load_spec(protocol)
        by_name = {s.name: s for s in self.sites}
        classes = sorted({k for c in analysis.columns()
                          for k in self.public_schema.column(c).classes})
        return {
            "output": {"kind": analysis.kind, "protocol": protocol,
                       "sdc": dict(out.get("sdc", {})),
                       "derived_from_genetic": "genetic" in classes,
                       **{k: v for k, v in out.items()
                          if k not in ("sdc", "rows_dropped", "budget")}},
            "origin": [{"site": n, "jurisdiction": by_name[n].jurisdiction,
                        "ciio": by_name[n].ciio, "ftz": by_name[n].ftz, "classes": classes}
                       for n in contributors],
            "destination": {"jurisdiction": self.destination},
            "purpose": self.purpose,
            "unit_of_privacy": self.public_schema.unit,
            "run": {"study": self.study, "protocol_spec_sha256": spec.sha256,
                    "rounds": rounds, "rows_dropped": out.get("rows_dropped", 0),
                    "border_bytes": {f"{a}->{b}": n for (a, b), n in
                                     sorted(channel.border_bytes.items())},
                    "bytes_per_round": _bytes_per_round(channel),
                    "contributors": contributors,
                    "threshold": self.threshold},
        }

    def __repr__(self) -> str:
        sites = ", ".join(f"{s.name} ({s.jurisdiction})" for s in self.sites)
        return f"<Federation {self.transport}: {sites} -> {self.destination} for {self.purpose}>"


def _close_state(customs: Customs, accounts: SiteAccounts, remove: Path | None) -> None:
    customs.close()
    accounts.close()
    if remove is not None:
        shutil.rmtree(remove, ignore_errors=True)


def _bytes_per_round(channel: Any) -> dict[str, int]:
    """Bytes moved in each round (round 0 is the session set-up), all parties together."""
    out: dict[str, int] = {}
    for entry in channel.log:
        out[str(entry.round)] = out.get(str(entry.round), 0) + entry.bytes_total
    return out


def _byte_rng(gen: np.random.Generator) -> Any:
    """Deterministic byte source for tests (``rng`` injected); production uses the OS."""
    def draw(n: int) -> bytes:
        return gen.bytes(n)
    return draw


__all__ = ["Federation", "Site"]
