"""Whether code would travel in the clear: shipit warns before it ships over plain TCP to
another machine. Dask's own TLS settings (``tls://`` addresses, ``distributed.comm.tls.*``
in Dask's configuration) are what shipit connects with; it adds none of its own.
"""

from __future__ import annotations

import ipaddress
import logging

from distributed.comm import parse_address, parse_host_port

logger = logging.getLogger(__name__)

_PLAIN_SCHEMES = frozenset({"tcp", "ws"})
_warned: set[str] = set()


def is_loopback(address: str) -> bool:
    """Whether a Dask address stays on this machine: ``inproc://``, ``localhost``, 127.0.0.0/8,
    ``::1``. A host name is taken to be another machine.

    >>> is_loopback("tcp://127.0.0.1:8786"), is_loopback("tls://10.0.0.5:8786")
    (True, False)
    """
    try:
        scheme, location = parse_address(address)
        if scheme == "inproc":
            return True
        host = str(parse_host_port(location)[0])
    except (TypeError, ValueError):
        return False
    host = host.lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def in_the_clear(address: str) -> bool:
    """True when ``address`` is reached without encryption and is not this machine's
    loopback: code shipped there can be read, and replaced, on the way.

    >>> in_the_clear("tcp://10.0.0.5:8786"), in_the_clear("tls://10.0.0.5:8786")
    (True, False)
    >>> in_the_clear("tcp://127.0.0.1:8786"), in_the_clear("tcp://localhost:8786")
    (False, False)
    """
    try:
        scheme = parse_address(address)[0]
    except (TypeError, ValueError):
        return False
    return scheme in _PLAIN_SCHEMES and not is_loopback(address)


def warn_if_in_the_clear(address: str) -> None:
    """Log a warning, once per address and process, when code would ship in the clear."""
    if address not in _warned and in_the_clear(address):
        _warned.add(address)
        logger.warning(
            "shipping code over plain %s to %s: anyone on the network between can read it, "
            "and anyone who can reach the scheduler can run code on the cluster; "
            "use a tls:// scheduler (Dask's distributed.comm.tls settings)",
            address.partition("://")[0] + "://", address,
        )  # fmt: skip
