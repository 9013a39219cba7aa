"""Let ICE offer 127.0.0.1: aioice leaves loopback out of its host candidates.

Needed for tests and for a browser on the same machine without other
interfaces. Patches aioice's address enumeration once; harmless to repeat.
"""
from __future__ import annotations

import aioice.ice

_original = aioice.ice.get_host_addresses


def _with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if use_ipv4 and "127.0.0.1" not in addresses:
        addresses = ["127.0.0.1"] + addresses
    return addresses


def include_loopback_candidates() -> None:
    aioice.ice.get_host_addresses = _with_loopback
