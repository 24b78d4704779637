"""The peers table of ``--peers``: what each counter of :mod:`convcalc.interop.peers` reports, how its
number is built from convcalc's separate counts, and where the tool is wrong rather than different."""

from __future__ import annotations

from convcalc.interop.peers import PEERS
from convcalc.render.table import aligned


def render_peers(totals: dict[str, int], macs: int, wrong: dict[str, list[str]], batch: int = 1) -> str:
    """The peers table: tool, its total, the ratio to convcalc's MACs (display only), how it is built,
    and a WRONG line under a tool for each way it is wrong on these layers; ``totals`` and ``wrong``
    as :func:`~convcalc.interop.peers.peer_totals` and :func:`~convcalc.interop.peers.wrong_notes` give them."""
    rows: list[tuple[str, str, str, str]] = []
    for name, peer in PEERS.items():
        rows.append((name, f"{totals[name]:,}", f"{totals[name] / macs:.4f}x" if macs else "-", peer.explain))
        rows.extend(("", "", "", f"WRONG: {text}") for text in wrong.get(name, []))
    batch_note = f" (the others: batch {batch})" if batch != 1 else ""
    return "\n".join([
        f"what other counters report for the module 'convcalc export' writes (MACs: {macs:,})",
        *aligned(("tool", "total", "/ MACs", "how it is built from convcalc's counts"), rows, right=(1, 2)),
        f"ptflops builds its own batch of one{batch_note}. Hook-based tools (torchinfo, ptflops, thop,"
        " torchscan) see modules only: on a hand-written model that calls F.relu they can differ.",
    ])  # fmt: skip
