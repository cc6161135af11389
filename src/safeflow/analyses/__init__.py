"""Analyses: one module per estimand, pure numpy on sufficient statistics.

Examples
--------
>>> analysis_from_request({"analysis": "crosstab", "params": {"rows": "a", "cols": "b"},
...                        "state": {}}).name
'crosstab'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safeflow.analyses import (  # noqa: F401 - importing registers them
    cox,
    crosstab,
    describe,
    glm,
    histogram,
    survival,
)
from safeflow.analyses._base import ANALYSES, Analysis, Done, Next, register
from safeflow.errors import ProtocolError


def analysis_from_request(request: Mapping[str, Any]) -> Analysis:
    """Rebuild an analysis from a round request (at a site); typed error when malformed."""
    if (not isinstance(request, Mapping) or request.get("analysis") not in ANALYSES
            or not isinstance(request.get("params"), Mapping)
            or not isinstance(request.get("state"), Mapping)):
        raise ProtocolError("malformed analysis request: unknown analysis or bad parameters")
    return ANALYSES[request["analysis"]](request["params"], request["state"])


__all__ = ["ANALYSES", "Analysis", "Done", "Next", "analysis_from_request", "register"]
