"""Small builders for hand-written facts (every test still writes its numbers out)."""

from __future__ import annotations

from typing import Any


def cn_row_level(
    persons: int,
    sensitive: int = 0,
    *,
    ytd: int = 0,
    sensitive_ytd: int = 0,
    classes: tuple[str, ...] = ("pi",),
    **origin: Any,
) -> dict[str, Any]:
    """Row-level PI exported from a Beijing hospital to Amsterdam."""
    return {
        "output": {"kind": "row_level", "protocol": "plain"},
        "origin": [
            {
                "site": "beijing",
                "jurisdiction": "CN",
                "classes": list(classes),
                "persons": persons,
                "sensitive_persons": sensitive,
                "persons_ytd": ytd,
                "sensitive_persons_ytd": sensitive_ytd,
                **origin,
            }
        ],
        "destination": {"jurisdiction": "NL", "recipient_type": "research"},
        "purpose": "scientific-research",
    }


def table(
    jurisdiction: str = "NL", destination: str = "CN", *, kind: str = "freq_table", **sdc: Any
) -> dict[str, Any]:
    """An aggregate table from one origin with the given ``output.sdc`` facts."""
    return {
        "output": {"kind": kind, "protocol": "masking", "sdc": sdc},
        "origin": [{"site": "site", "jurisdiction": jurisdiction, "classes": ["health"]}],
        "destination": {"jurisdiction": destination},
    }
