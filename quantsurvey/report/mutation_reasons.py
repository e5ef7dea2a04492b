"""Hand-written reasons of surviving mutants, carried from a module's earlier record to a new one.

A survivor's reason ('equivalent: …', 'killed since: …', 'adopted: …') is written by hand into
results/mutation/<module>.json after reading the mutant. Summarising the same cosmic-ray session
again (or continuing it) must not lose them. A survivor is the same mutant when its operator,
its occurrence and its diff are the same: the diff holds the changed line, three lines of context
and the hunk's line numbers, so a mutant whose line moved or whose code changed is not matched
and waits for a new reason."""

from __future__ import annotations

from collections.abc import Iterable

CARRIED_IN_A_NEW_SESSION = ("equivalent",)  # a fresh run re-tests; 'killed since' must show it


def _key(survivor: dict) -> tuple[str, int, str]:
    return survivor["operator"], survivor["occurrence"], survivor["diff"]


def carry_reasons(previous: Iterable[dict], survivors: list[dict],
                  kinds: tuple[str, ...] | None = None) -> int:
    """Give each survivor without a reason the reason of the same mutant in `previous`; with
    `kinds`, only reasons starting with one of them. Returns how many were carried."""
    known = {_key(s): s["reason"] for s in previous if s.get("reason")}
    carried = 0
    for survivor in survivors:
        reason = known.get(_key(survivor))
        if survivor.get("reason") or reason is None:
            continue
        if kinds is not None and not reason.startswith(kinds):
            continue
        survivor["reason"] = reason
        carried += 1
    return carried
