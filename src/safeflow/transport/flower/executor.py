"""The site's own ClientApp executor: a site answers Flower only with the code it installed.

Why not check the app inside the ClientApp? In Flower 1.41 a ClientApp cannot tell which
app it belongs to in a way the site can trust:

* the ``Context`` a ClientApp receives holds ``run_id``, ``node_id``, ``node_config``,
  ``state``, ``run_config`` and ``series_id``; the FAB hash is not among them (the
  ``flwr-clientapp`` process pulls ``run`` and ``fab`` from the SuperNode but keeps them
  local to ``flwr.supernode.runtime.run_clientapp``);
* more fundamentally, under the default ``--isolation subprocess`` the ClientApp *is* the
  code of the submitted FAB: whoever submits a run chooses the code that would do the
  check, and that code runs as the site's user, next to its data and keys. A check there
  proves nothing;
* Flower's own FAB signatures (``flower-supernode --trusted-entities``) need verifications
  that only Flower's hosted platform issues; an open-source SuperLink sends none.

So ``safeflow site serve`` starts ``flower-supernode --isolation process`` (the SuperNode
then launches neither ``flower-superexec`` nor any ``flwr-clientapp``) and runs this
executor in their place. For every ClientApp task it acquires from the SuperNode's Runtime
API (127.0.0.1, guarded by a per-site SuperExec secret), it pulls the message and the FAB
bytes, computes ``sha256(FAB)`` itself, and

* refuses the message with a typed :class:`~safeflow.transport.flower.pki.UnpinnedApp`
  when ``[supernode] pinned_app_hashes`` is set and does not contain that hash (the
  production profile refuses to start without pins);
* otherwise relays the envelopes to the site agent with safeflow's *installed* relay,
  exactly as the bundled ClientApp would. No code from the FAB is ever imported, installed
  or executed at the site; a FAB is only hashed.

``safeflow site app-hash`` prints :func:`app_hash`, the hash of the FAB that this safeflow
submits (``flwr run`` builds FABs reproducibly: fixed zip timestamps, sorted paths), which
the site operator pins after checking it matches the coordinator's safeflow version.

Flower internals this module uses (flwr 1.41; re-check them when upgrading Flower):
``RuntimeHttpClient`` and its ``AcquireTask``/``SendTaskHeartbeat`` calls,
``flwr.supernode.runtime.run_clientapp.pull_task_input``/``push_message``/
``push_task_output``, the HTTP interceptors ``RuntimeTokenHttpInterceptor``,
``RuntimeVersionHttpInterceptor`` and ``SuperExecAuthHttpInterceptor``, and
``flwr.cli.build.build_fab_from_disk``. They are imported only here.

Run it by hand (``site serve`` does)::

    python -m safeflow.transport.flower.executor site.toml --runtime 127.0.0.1:9094 \\
        --secret-file state/supernode/superexec.secret

Examples
--------
>>> fab_sha256(b"")
'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
>>> check_app(fab_sha256(b"x"), pinned=(), site="beijing")  # nothing pinned: test profile
>>> pins = (fab_sha256(b"y"),)
>>> check_app(fab_sha256(b"x"), pinned=pins, site="beijing")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
safeflow.transport.flower.pki.UnpinnedApp: site 'beijing' refuses this run: ...
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safeflow.errors import SafeflowError, TransportError
from safeflow.transport.flower import wire
from safeflow.transport.flower.config import SiteConfig, load_site_config
from safeflow.transport.flower.pki import UnpinnedApp

TASK_TYPE = "flwr-clientapp"
ACQUIRE = "/flwr.proto.Runtime/AcquireTask"
HEARTBEAT_SECONDS = 10.0  # Flower expires a claimed task after 30 s without a heartbeat


def fab_sha256(content: bytes) -> str:
    """The SHA-256 (hex) of a Flower App Bundle, as Flower names it."""
    return hashlib.sha256(bytes(content)).hexdigest()


def app_hash() -> str:
    """The FAB hash of the Flower App this safeflow submits (what a site pins).

    Builds the app of :func:`~safeflow.transport.flower.apps.write_flower_app` exactly as
    ``flwr run`` does (imports Flower).
    """
    from flwr.cli.build import build_fab_from_disk

    from safeflow.transport.flower.apps import write_flower_app

    with tempfile.TemporaryDirectory(prefix="safeflow-app-") as d, \
            warnings.catch_warnings():
        # flwr 1.41's FAB builder still uses pathspec's deprecated 'gitwildmatch'
        warnings.filterwarnings("ignore", message=".*GitWildMatchPattern",
                                category=DeprecationWarning)
        return fab_sha256(build_fab_from_disk(write_flower_app(Path(d) / "app")))


def check_app(digest: str, *, pinned: Sequence[str], site: str) -> None:
    """Refuse (typed) a FAB whose hash is not pinned; nothing pinned accepts any FAB."""
    if pinned and digest not in pinned:
        raise UnpinnedApp(
            f"site {site!r} refuses this run: its Flower app (FAB sha256 {digest[:16]}...) "
            "is not one of the app hashes pinned in the site's site.toml "
            "([supernode] pinned_app_hashes). Submit with the safeflow version the sites "
            "installed, or ask the site operator to pin this app after checking it "
            "(`safeflow site app-hash`)")


class _Heartbeat(threading.Thread):
    """Keeps a claimed task alive while the agent computes (Flower expires it otherwise)."""

    def __init__(self, client: Any) -> None:
        super().__init__(daemon=True)
        self.client, self.done = client, threading.Event()

    def run(self) -> None:
        from flwr.proto.runtime_pb2 import SendTaskHeartbeatRequest  # type: ignore[attr-defined]

        while not self.done.wait(HEARTBEAT_SECONDS):
            try:
                self.client.SendTaskHeartbeat(SendTaskHeartbeatRequest())
            except Exception:  # the task ends anyway; never take the executor down
                return


class SiteExecutor:
    """Acquires the SuperNode's ClientApp tasks and answers them with the installed relay.

    Parameters
    ----------
    config : SiteConfig
        The site's configuration (agent socket, envelope limit, ``[supernode]`` pins).
    runtime_address : str
        ``127.0.0.1:PORT`` of the SuperNode's Runtime API.
    secret : bytes, optional
        The SuperExec secret the SuperNode was started with
        (``--superexec-auth-secret-file``); required to acquire tasks when set there.
    poll : float
        Seconds between task polls when idle.
    """

    def __init__(self, config: SiteConfig, runtime_address: str, *,
                 secret: bytes | None = None, poll: float = 0.1) -> None:
        sn = config.supernode
        self.pinned = sn.pinned_app_hashes if sn is not None else ()
        if sn is not None and sn.profile == "production" and not self.pinned:
            raise UnpinnedApp(_NO_PINS)
        self.config, self.address, self.secret, self.poll = config, runtime_address, secret, poll
        self.answered = 0

    def _client(self, *interceptors: Any) -> Any:
        from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
        from flwr.supercore.retry.http_retry import make_simple_http_retry_invoker
        from flwr.supercore.runtime import RuntimeHttpClient

        return RuntimeHttpClient.from_server_address(
            server_address=self.address, insecure=True, root_certificates=None,
            interceptors=[RuntimeVersionHttpInterceptor(component_name=TASK_TYPE),
                          *interceptors], retry_invoker=make_simple_http_retry_invoker())

    def run(self, stop: threading.Event) -> None:
        """Acquire and answer tasks until ``stop`` is set."""
        from flwr.proto.runtime_pb2 import AcquireTaskRequest  # type: ignore[attr-defined]
        from flwr.supercore.interceptors import SuperExecAuthHttpInterceptor

        auth = ([SuperExecAuthHttpInterceptor(master_secret=self.secret,
                                              protected_methods={ACQUIRE})]
                if self.secret else [])
        client = self._client(*auth)
        try:
            while not stop.is_set():
                try:
                    res = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TASK_TYPE]))
                except Exception as e:  # the SuperNode restarts or is stopping: poll again
                    print(f"safeflow executor: Runtime API unavailable ({type(e).__name__})",
                          file=sys.stderr, flush=True)
                    stop.wait(1.0)
                    continue
                if res.HasField("task") and res.token:
                    self.handle(res.token)
                else:
                    stop.wait(self.poll)
        finally:
            client.close()

    def handle(self, token: str) -> None:
        """Answer one acquired task: check the FAB, relay to the agent, push the reply."""
        from flwr.app import Error, Message
        from flwr.common.constant import SubStatus
        from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor
        from flwr.supernode.runtime.run_clientapp import (
            pull_task_input,
            push_message,
            push_task_output,
        )

        client = self._client(RuntimeTokenHttpInterceptor(token))
        beat = _Heartbeat(client)
        beat.start()
        context, status, details = None, SubStatus.FAILED, "safeflow executor failed"
        try:
            message, context, run, fab = pull_task_input(client)
            digest = fab_sha256(fab.content)
            code = wire.ERROR_CODE
            try:
                check_app(digest, pinned=self.pinned, site=self.config.name)
                reply = Message(wire.to_record(self.relay(message)), reply_to=message)
                status, details = SubStatus.COMPLETED, ""
            except wire.AgentUnavailable as e:
                code, err = wire.UNAVAILABLE_CODE, e
            except SafeflowError as e:
                err = e
            except Exception as e:  # never a traceback across the border
                print(f"safeflow executor: {type(e).__name__}: {e}", file=sys.stderr,
                      flush=True)
                err = TransportError(f"the site relay failed ({type(e).__name__})")
            if status != SubStatus.COMPLETED:
                details = f"{type(err).__name__}: {err}"[:500]
                reply = Message(Error(code=code, reason=wire.error_to_json(err)),
                                reply_to=message)
            push_message(client, reply, context)
            self.answered += 1
            print(f"safeflow executor {self.config.name}: run {run.run_id} app "
                  f"{digest[:12]} -> {'ok' if status == SubStatus.COMPLETED else details}",
                  flush=True)
        except Exception as e:  # the task could not even be read or answered
            details = f"{type(e).__name__}: {e}"[:500]
            print(f"safeflow executor: task failed: {details}", file=sys.stderr, flush=True)
        finally:
            beat.done.set()
            push_task_output(client=client, context=context, sub_status=status,
                             details=details)
            client.close()

    def relay(self, message: Any) -> list[bytes]:
        """The envelopes of one ``query.safeflow`` message to the agent; its replies."""
        if message.metadata.message_type != wire.MESSAGE_TYPE:
            raise TransportError(f"site {self.config.name!r} answers only safeflow messages "
                                 f"({wire.MESSAGE_TYPE}); got {message.metadata.message_type!r}")
        envelopes = wire.from_record(message.content)
        return wire.agent_exchange(str(self.config.socket), envelopes,
                                   max_bytes=self.config.max_envelope_bytes)


_NO_PINS = ("the production profile answers only pinned Flower apps, and this site pins "
            "none: add pinned_app_hashes = [\"<sha256>\"] to [supernode] in site.toml "
            "(`safeflow site app-hash` prints the hash of the installed safeflow's app), or "
            "use profile = \"test\" on a test deployment")


def main(argv: list[str] | None = None) -> int:
    """``python -m safeflow.transport.flower.executor SITE_TOML --runtime HOST:PORT``."""
    p = argparse.ArgumentParser(prog="python -m safeflow.transport.flower.executor",
                                description="safeflow's site executor for a SuperNode "
                                            "started with --isolation process")
    p.add_argument("site_toml")
    p.add_argument("--runtime", required=True, help="the SuperNode's Runtime API host:port")
    p.add_argument("--secret-file", default=None, help="the SuperExec secret file")
    args = p.parse_args(argv)
    try:
        cfg = load_site_config(args.site_toml)
        secret = Path(args.secret_file).read_bytes() if args.secret_file else None
        executor = SiteExecutor(cfg, args.runtime, secret=secret)
    except (SafeflowError, OSError) as e:
        print(f"safeflow executor: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"safeflow executor {cfg.name} ready on {args.runtime} "
          f"({len(executor.pinned)} pinned app hash(es))", flush=True)
    executor.run(stop)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["SiteExecutor", "app_hash", "check_app", "fab_sha256", "main"]
