"""Reaching the scheduler: which address, a client of it, a clear error when it cannot be
reached or goes away; and whether code would travel in the clear.

shipit warns before it ships over plain TCP to another machine. Dask's own TLS settings
(``tls://`` addresses, ``distributed.comm.tls.*`` in Dask's configuration) are what shipit
connects with; it adds none of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dask.config
from distributed import Client, Security
from distributed.comm import CommClosedError, parse_address, parse_host_port
from distributed.comm import connect as comm_connect
from distributed.comm.registry import backends

from .config import DEFAULT_TIMEOUT
from .errors import (
    BadAddress,
    ConnectionFailed,
    ConnectionLost,
    ConnectionRefused,
    NoSchedulerError,
)
from .text import first_line

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


def scheduler_address(given: str | None = None) -> str:
    """The address to use: the one given, else DASK_SCHEDULER_ADDRESS (Dask's own setting)."""
    address = (
        given
        or os.environ.get("DASK_SCHEDULER_ADDRESS")
        or dask.config.get("scheduler-address", None)
    )
    if not address:
        raise NoSchedulerError()
    return str(address)


@contextlib.contextmanager
def connect(client: Client | str | None, timeout: float = DEFAULT_TIMEOUT) -> Iterator[Client]:
    """Yield a connected client: the one given, or a new one that is closed afterwards.

    A connection that breaks inside the block raises :class:`ConnectionLost`.
    """
    if isinstance(client, Client):
        with _reporting_lost_connection(client):
            yield client
        return
    new = open_client(scheduler_address(client), timeout)
    lost = False
    try:
        with _reporting_lost_connection(new):
            yield new
    except ConnectionLost:
        lost = True
        raise
    finally:
        if lost:
            _close_quietly(new)
        else:
            new.close()


def _close_quietly(client: Client) -> None:
    """Close a client whose scheduler is gone. Dask's client logs its own reconnect
    attempts, with tracebacks, as it closes; the loss is reported once, by the error."""
    client_log = logging.getLogger("distributed.client")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.suppress(Exception):
            client.close(timeout=2)
    finally:
        client_log.setLevel(level)


@contextlib.contextmanager
def _reporting_lost_connection(client: Client) -> Iterator[None]:
    try:
        yield
    except (CommClosedError, ConnectionError) as e:
        address = getattr(client.scheduler, "address", None) or "?"
        # "in <TCP (closed) ConnectionPool.shipit_push local=… remote=…>: Stream is closed"
        reason = first_line(e).rpartition(">: ")[2] or type(e).__name__
        raise ConnectionLost(address, reason) from None


def open_client(address: str, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """A new client of the scheduler at ``address``, or :class:`ConnectionFailed` in ``timeout``."""
    _check_address(address)  # a malformed address fails here, not deep inside a Client
    try:
        scheme, _ = parse_address(address)
        if scheme == "tls" and Security().get_connection_args("client")["ssl_context"] is None:
            raise ConnectionFailed(address, "no TLS settings for a client", timeout, tip=_TLS_TIP)
        if scheme == "tcp":
            _refused_at_once(address, timeout)
        # Probe first: a Client that fails to start leaves a half-open object whose
        # destructor prints a traceback; a probe fails cleanly.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _probe(address, timeout)).result()
        return Client(address, timeout=timeout, set_as_default=False)
    except ConnectionFailed:
        raise
    except (OSError, TimeoutError, ValueError) as e:
        raise ConnectionFailed(address, first_line(e), timeout) from None
    except Exception as e:  # something answered, but not in Dask's protocol
        reason = f"it does not speak Dask's protocol ({type(e).__name__})"
        raise ConnectionFailed(address, reason, timeout) from None


def _refused_at_once(address: str, timeout: float) -> None:
    """Raise :class:`ConnectionRefused` where nothing listens: Dask's own connect retries a
    refused connection until its timeout, which tells the user nothing for seconds."""
    host, port = parse_host_port(parse_address(address)[1])
    try:
        socket.create_connection((str(host), int(port)), timeout=timeout).close()
    except ConnectionRefusedError:
        raise ConnectionRefused(address, timeout) from None
    except OSError:
        pass  # unreachable, or no name: Dask's connect says which, within the timeout


def _check_address(address: str) -> None:
    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            known = ", ".join(f"{name}://" for name in sorted(backends))
            raise ValueError(f"unknown address scheme {scheme!r} (known: {known})")
        if scheme in ("tcp", "tls", "ws", "wss"):
            host, port = parse_host_port(location)
            if not host or not 0 < int(port) < 65536:
                raise ValueError("it needs a host and a port from 1 to 65535")
    except (TypeError, ValueError) as e:
        raise BadAddress(address, first_line(e)) from None


_TLS_TIP = (
    "set distributed.comm.tls.ca-file, .client.cert and .client.key in Dask's configuration, "
    "e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE=ca.pem"
)


async def _probe(address: str, timeout: float) -> None:
    args = Security().get_connection_args("client")
    # The whole exchange is bounded: a server that is not Dask may never finish a handshake.
    comm = await asyncio.wait_for(comm_connect(address, timeout=timeout, **args), timeout)
    comm.abort()
