"""Tango's ``command_inout_4`` over GIOP 1.2, for the commands that return a DevEncoded.

The conductor relays frames without looking at them. Through pytango, a DevEncoded is
copied twice on its way into Python, the first time byte by byte (cppTango's
``DeviceData::operator>>(DevEncoded&)``): for a 0.5 MB frame, a fifth of the
conductor's CPU per ``GetFrame`` (the design notes, "Frames"). This client
sends the request itself and reads the reply into one buffer, which then becomes the
frame's bytes without another copy.

It speaks one operation of the Tango IDL (``Device_4::command_inout_4``, served by every
device since Tango 7) with an integer argument, and accepts one answer: a
``Tango::DevEncoded``. A ``DevFailed`` from the device becomes :class:`DeviceRefused`;
anything else it does not expect (a system exception, a forward, an unknown message) is a
:class:`WireError`, and the caller asks pytango instead. CDR and GIOP are as in CORBA 3.0,
chapters 15.3 (CDR) and 15.4 (GIOP messages).
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

MAGIC = b"GIOP"
REQUEST, REPLY, CLOSE_CONNECTION, MESSAGE_ERROR, FRAGMENT = 0, 1, 5, 6, 7
LITTLE_ENDIAN, MORE_FRAGMENTS = 0x01, 0x02
NO_EXCEPTION, USER_EXCEPTION, SYSTEM_EXCEPTION = 0, 1, 2
TAG_INTERNET_IOP = 0
TK_STRUCT = 15
DEV_ENCODED_ID = "IDL:Tango/DevEncoded:1.0"
DEV_FAILED_ID = "IDL:Tango/DevFailed:1.0"
CACHE_DEV = 2  # Tango::DevSource, pytango's default
CPP = 0  # Tango::LockerLanguage: the client identifies itself by its PID
MAX_MESSAGE = 1 << 30

INTEGER_ARGS: dict[int, tuple[int, str]] = {
    2: (2, "h"),  # DevShort -> tk_short
    3: (3, "i"),  # DevLong -> tk_long
    6: (4, "H"),  # DevUShort -> tk_ushort
    7: (5, "I"),  # DevULong -> tk_ulong
    23: (23, "q"),  # DevLong64 -> tk_longlong
    24: (24, "Q"),  # DevULong64 -> tk_ulonglong
}
"""Tango argument types (``CmdArgType`` values) this client can send: their TypeCode kind
and struct format."""


class WireError(Exception):
    """The exchange did not go as this client expects: ask pytango instead."""


class ArgumentError(WireError):
    """The argument cannot be sent as the command's Tango type (nothing was sent)."""


class ConnectionClosed(WireError):
    """The server closed the connection before answering (GIOP says the request was not
    processed: it may be sent again on a new connection)."""


class DeviceRefused(Exception):
    """The device answered with a ``DevFailed``: ``errors`` holds its (reason, severity,
    desc, origin) entries, outermost last as in Tango."""

    def __init__(self, errors: list[tuple[str, int, str, str]]) -> None:
        super().__init__(errors[0][2] if errors else "DevFailed")
        self.errors = errors


@dataclass(frozen=True)
class IiopProfile:
    """Where an object lives: a TCP endpoint and its object key."""

    host: str
    port: int
    object_key: bytes


@dataclass(frozen=True)
class Route:
    """How a command of one device is called: where, and the Tango type of its argument."""

    profile: IiopProfile
    arg_type: int


class CdrReader:
    """Reads CDR from ``buf``; alignment is counted from ``base`` (the GIOP header or the
    start of an encapsulation)."""

    def __init__(self, buf: bytes | bytearray | memoryview, offset: int, little: bool, base: int = 0) -> None:
        self.buf, self.offset, self.base = buf, offset, base
        self.order = "<" if little else ">"

    def align(self, n: int) -> None:
        self.offset += -(self.offset - self.base) % n

    def take(self, n: int) -> int:
        start = self.offset
        if n < 0 or start + n > len(self.buf):
            raise WireError(f"message ends early (needs {n} bytes at {start} of {len(self.buf)})")
        self.offset += n
        return start

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        self.align(size)
        return struct.unpack_from(self.order + fmt, self.buf, self.take(size))[0]

    def ulong(self) -> int:
        return self.unpack("I")

    def octet(self) -> int:
        return self.buf[self.take(1)]

    def string(self) -> str:
        n = self.ulong()
        start = self.take(n)
        if n == 0 or self.buf[start + n - 1] != 0:
            raise WireError("string without its terminating NUL")
        return bytes(self.buf[start : start + n - 1]).decode("latin-1")

    def octets(self) -> tuple[int, int]:
        """A ``sequence<octet>``: its (start, length) in the buffer."""
        n = self.ulong()
        return self.take(n), n

    def encapsulation(self) -> CdrReader:
        start, n = self.octets()
        if n < 1:
            raise WireError("empty encapsulation")
        body = bytes(self.buf[start : start + n])  # small: a copy keeps no view on the message
        return CdrReader(body, 1, body[0] == 1, base=0)


class CdrWriter:
    """Writes little-endian CDR; alignment is counted from the start of the buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def align(self, n: int) -> None:
        self.buf += bytes(-len(self.buf) % n)

    def pack(self, fmt: str, value: int) -> None:
        self.align(struct.calcsize(fmt))
        self.buf += struct.pack("<" + fmt, value)

    def ulong(self, value: int) -> None:
        self.pack("I", value)

    def string(self, text: str) -> None:
        data = text.encode("latin-1") + b"\0"
        self.ulong(len(data))
        self.buf += data

    def octets(self, data: bytes) -> None:
        self.ulong(len(data))
        self.buf += data


def parse_ior(ior: str) -> IiopProfile:
    """The first IIOP 1.2 (or later 1.x) profile of a stringified IOR (``IOR:`` and hex
    CDR): a GIOP 1.2 request may only go to such a profile."""
    if not ior.upper().startswith("IOR:"):
        raise WireError(f"not a stringified IOR: {ior[:20]!r}")
    try:
        raw = bytes.fromhex(ior[4:])
    except ValueError as exc:
        raise WireError(f"IOR is not hex: {exc}") from None
    if not raw:
        raise WireError("empty IOR")
    r = CdrReader(raw, 1, raw[0] == 1)
    r.string()  # type id
    seen = []
    for _ in range(r.ulong()):
        tag = r.ulong()
        profile = r.encapsulation()
        if tag != TAG_INTERNET_IOP:
            continue
        major, minor = profile.octet(), profile.octet()
        seen.append(f"IIOP {major}.{minor}")
        if major != 1 or minor < 2:
            continue
        host = profile.string()
        port = profile.unpack("H")
        start, n = profile.octets()
        return IiopProfile(host, port, bytes(profile.buf[start : start + n]))
    raise WireError(f"IOR without an IIOP 1.2 profile ({', '.join(seen) or 'no IIOP profile'})")


def encode_request(request_id: int, object_key: bytes, command: str, arg_type: int, arg: int) -> bytes:
    """A GIOP 1.2 Request for ``command_inout_4(command, arg, CACHE_DEV, CPP pid)``."""
    if arg_type not in INTEGER_ARGS:
        raise ArgumentError(f"argument type {arg_type} is not an integer type this client sends")
    kind, fmt = INTEGER_ARGS[arg_type]
    w = CdrWriter()
    w.buf += MAGIC + bytes((1, 2, LITTLE_ENDIAN, REQUEST)) + bytes(4)
    w.ulong(request_id)
    w.buf += bytes((3, 0, 0, 0))  # response expected (SYNC_WITH_TARGET), reserved
    w.pack("h", 0)  # TargetAddress: KeyAddr
    w.octets(object_key)
    w.string("command_inout_4")
    w.ulong(0)  # no service context
    w.align(8)  # the body
    try:
        w.string(command)
        w.ulong(kind)  # any: its TypeCode (a simple kind), then the value
        w.pack(fmt, arg)
    except (struct.error, UnicodeEncodeError) as exc:
        raise ArgumentError(f"{command}({arg}): {exc}") from None
    w.ulong(CACHE_DEV)
    w.ulong(CPP)
    w.ulong(os.getpid())
    struct.pack_into("<I", w.buf, 8, len(w.buf) - 12)
    return bytes(w.buf)


def header(data: bytes | bytearray) -> tuple[bool, int, int, int]:
    """(little endian, flags, message type, body size) of a 12-byte GIOP header: 1.2, or
    any 1.x for the messages that close a connection."""
    if data[:4] != MAGIC:
        raise WireError(f"not a GIOP message: {bytes(data[:4])!r}")
    kind = data[7]
    if (data[4], data[5]) != (1, 2) and not (data[4] == 1 and kind in (CLOSE_CONNECTION, MESSAGE_ERROR)):
        raise WireError(f"GIOP {data[4]}.{data[5]} message (1.2 expected)")
    little = bool(data[6] & LITTLE_ENDIAN)
    size = struct.unpack_from("<I" if little else ">I", data, 8)[0]
    if size > MAX_MESSAGE:
        raise WireError(f"message of {size} bytes")
    return little, data[6], kind, size


def decode_encoded_reply(message: bytearray, request_id: int) -> tuple[str, bytearray]:
    """The DevEncoded of a whole Reply (header, body and the payloads of its fragments,
    back to back). The frame's bytes are ``message`` itself, cut down in place."""
    little, _flags, kind, _size = header(message)
    if kind != REPLY:
        raise WireError(f"GIOP message type {kind} (Reply expected)")
    r = CdrReader(message, 12, little)
    if r.ulong() != request_id:
        raise WireError("reply to another request")
    status = r.ulong()
    for _ in range(r.ulong()):  # service contexts
        r.ulong()
        r.octets()
    r.align(8)
    if status == USER_EXCEPTION:
        raise _user_exception(r)
    if status == SYSTEM_EXCEPTION:
        name, minor, completed = r.string(), r.ulong(), r.ulong()
        raise WireError(f"system exception {name} (minor {minor:#x}, completed {completed})")
    if status != NO_EXCEPTION:
        raise WireError(f"reply status {status}")
    if r.ulong() != TK_STRUCT:
        raise WireError("the answer is not a struct")
    struct_id = r.encapsulation().string()
    if struct_id != DEV_ENCODED_ID:
        raise WireError(f"the answer is a {struct_id}, not a DevEncoded")
    encoded_format = r.string()
    start, n = r.octets()
    del message[start + n :]  # cut in place: no copy of the frame
    del message[:start]
    return encoded_format, message


def _user_exception(r: CdrReader) -> Exception:
    name = r.string()
    if name != DEV_FAILED_ID:
        return WireError(f"user exception {name}")
    errors = []
    for _ in range(r.ulong()):
        reason, severity, desc, origin = r.string(), r.ulong(), r.string(), r.string()
        errors.append((reason, severity, desc, origin))
    return DeviceRefused(errors)


class Connection:
    """One GIOP connection to a Tango server process, used by one thread at a time. Every
    exchange has a deadline: the whole call, however the reply trickles in."""

    def __init__(self, host: str, port: int, deadline: float) -> None:
        try:
            self.sock = socket.create_connection((host, port), timeout=_remaining(deadline))
        except OSError as exc:  # refused, unreachable, or no answer in time: not the device's fault
            raise WireError(f"no connection to {host}:{port}: {exc or type(exc).__name__}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.idle_since = time.monotonic()
        self._deadline = deadline

    def close(self) -> None:
        self.sock.close()

    def exchange(self, request: bytes, request_id: int, deadline: float) -> bytearray:
        """Send ``request``; the whole reply (header, body, fragments' payloads)."""
        self._deadline = deadline
        try:
            self.sock.settimeout(_remaining(deadline))
            self.sock.sendall(request)
            head = self._read(12, first=True)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ConnectionClosed(f"the server closed the connection ({exc})") from None
        return self._receive(head, request_id)

    def _receive(self, head: bytearray, request_id: int) -> bytearray:
        little, flags, kind, size = header(head)
        if kind == CLOSE_CONNECTION:
            raise ConnectionClosed("the server closed the connection")
        if kind == MESSAGE_ERROR:
            raise WireError("the server did not understand the request")
        if kind != REPLY:
            raise WireError(f"GIOP message type {kind} (Reply expected)")
        message = bytearray(12 + size)
        message[:12] = head
        self._read_into(memoryview(message)[12:])
        while flags & MORE_FRAGMENTS:
            if len(message) % 8:  # GIOP 1.2: fragments but the last are whole multiples of 8
                raise WireError("a fragment that is not a multiple of 8 bytes")
            fragment = self._read(12)
            f_little, flags, kind, size = header(fragment)
            if kind != FRAGMENT or f_little != little or size < 4:
                raise WireError(f"GIOP message type {kind} in the middle of a reply")
            if len(message) + size > MAX_MESSAGE:
                raise WireError(f"reply of more than {MAX_MESSAGE} bytes")
            payload = self._read(size)
            if struct.unpack_from("<I" if little else ">I", payload)[0] != request_id:
                raise WireError("fragment of another request")
            message += memoryview(payload)[4:]
        return message

    def _read(self, n: int, first: bool = False) -> bytearray:
        buf = bytearray(n)
        self._read_into(memoryview(buf), first)
        return buf

    def _read_into(self, view: memoryview, first: bool = False) -> None:
        got = 0
        while got < len(view):
            self.sock.settimeout(_remaining(self._deadline))
            k = self.sock.recv_into(view[got:])
            if k == 0:
                if first and got == 0:
                    raise ConnectionClosed("the server closed the connection")
                raise WireError("the connection closed in the middle of a reply")
            got += k


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no answer in time")
    return left


class ConnectionPool:
    """Connections to Tango server processes, by endpoint: a thread takes one for a call
    and gives it back. A call that finds its idle connection closed by the server (a
    server that stops closes all of them) drops the endpoint's idle connections and is
    made once more on a new one: meant for commands that only read (frame getters)."""

    MAX_IDLE = 4
    IDLE_S = 60.0  # omniORB servers close connections idle for 180 s by default

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._ids = itertools.count(1)
        self._closed = False

    def command_encoded(self, route: Route, command: str, arg: int) -> tuple[str, bytearray]:
        """``command(arg)`` on the device of ``route``: (format, bytes). Raises
        :class:`DeviceRefused`, :class:`WireError` (:class:`ArgumentError` before anything
        is sent) or ``TimeoutError``."""
        profile = route.profile
        request_id = next(self._ids) & 0xFFFFFFFF
        request = encode_request(request_id, profile.object_key, command, route.arg_type, arg)
        deadline = time.monotonic() + self.timeout_s
        conn, reused = self._take(profile, deadline)
        while True:
            try:
                message = conn.exchange(request, request_id, deadline)
            except ConnectionClosed:
                conn.close()
                if not reused:  # a new connection: the server is really closing it
                    raise
                self._drop_idle(profile)
                conn, reused = Connection(profile.host, profile.port, deadline), False
                continue
            except BaseException:
                conn.close()  # its state is unknown (a reply may still come): never reused
                raise
            self._give(profile, conn)  # the reply is read whole: the connection is clean
            return decode_encoded_reply(message, request_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _take(self, profile: IiopProfile, deadline: float) -> tuple[Connection, bool]:
        """An idle connection to the profile's endpoint (reused: True), or a new one."""
        now = time.monotonic()
        stale = []
        conn = None
        with self._lock:
            for key, conns in self._idle.items():  # every endpoint: servers come and go
                stale += [c for c in conns if now - c.idle_since >= self.IDLE_S]
                conns[:] = [c for c in conns if now - c.idle_since < self.IDLE_S]
                if key == (profile.host, profile.port) and conns:
                    conn = conns.pop()
        for old in stale:
            old.close()
        if conn is not None:
            return conn, True
        return Connection(profile.host, profile.port, deadline), False

    def _drop_idle(self, profile: IiopProfile) -> None:
        with self._lock:
            conns = self._idle.pop((profile.host, profile.port), [])
        for conn in conns:
            conn.close()

    def _give(self, profile: IiopProfile, conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            conns = self._idle.setdefault((profile.host, profile.port), [])
            if not self._closed and len(conns) < self.MAX_IDLE:
                conns.append(conn)
                return
        conn.close()
