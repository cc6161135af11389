"""safeflow over Flower's Deployment Engine (SuperLink, SuperNodes, TLS, node authentication).

Who runs what:

* **SuperLink machine** (destination jurisdiction): ``flower-superlink`` with TLS and
  ``--enable-supernode-auth``; for each submitted job Flower starts the safeflow
  **ServerApp** (:mod:`~safeflow.transport.flower.coordinator`): protocol server half,
  analysis layout/combine, customs (decide, disclosure control, certify). Customs' key,
  audit log and release ledger live in ``coordinator.toml``'s state directory; certified
  releases are left in its outbox.
* **each site**: ``safeflow site serve --config site.toml``
  (:mod:`~safeflow.transport.flower.service`) starts and supervises three processes: the
  site agent (:mod:`~safeflow.transport.flower.agent`), which holds the data, the site's
  key and audit log and one ``SiteRuntime`` per run; ``flower-supernode`` (TLS, node key,
  ``--isolation process``); and the site executor
  (:mod:`~safeflow.transport.flower.executor`), which answers the SuperNode's ClientApp
  tasks with safeflow's installed relay after checking the submitted app's hash against
  ``pinned_app_hashes``. No code from a submitted app bundle runs at a site. (A SuperNode
  started by hand with ``--node-config 'safeflow-site="site.toml"'`` runs the bundle's
  relay ClientApp instead, without the pin.)
* **analyst**: :class:`~safeflow.transport.flower.submit.FlowerFederation` /
  :func:`~safeflow.transport.flower.submit.run_on_flower` submit jobs with ``flwr run``
  and read the certified release back.

Commands (:mod:`~safeflow.transport.flower.cli`): ``safeflow site serve``, ``safeflow site
app-hash``, ``safeflow pki init`` and ``safeflow coordinator serve``.

Every message is a safeflow envelope carried as opaque bytes in a Flower record; analyses
and protocols never import Flower, and this package imports it only when a Flower app is
built or a message is sent.

Examples
--------
>>> from safeflow.transport.flower import StudySite, wire
>>> wire.MESSAGE_TYPE, StudySite("beijing", "CN").node_name
('query.safeflow', 'beijing')
"""

from safeflow.transport.flower.config import StudySite

__all__ = ["StudySite"]
