"""The GIOP client of the frame getters: IORs, requests, replies in both byte orders and
in fragments, device errors, and connections a server closes or abandons (a scripted
GIOP peer on a local socket; the real servers are in tests/integration/test_frame_fetch.py)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lima2_conductor.backend import giop
from lima2_conductor.launcher import wait_for

KEY = b"\x14\x01\x0fNUP\x00\x00\x00\x17"


class Writer:
    """CDR in either byte order, alignment counted from the start of the buffer."""

    def __init__(self, little: bool = True) -> None:
        self.buf = bytearray()
        self.order = "<" if little else ">"

    def align(self, n: int) -> Writer:
        self.buf += bytes(-len(self.buf) % n)
        return self

    def pack(self, fmt: str, *values: int) -> Writer:
        self.align(struct.calcsize(fmt[0]))
        self.buf += struct.pack(self.order + fmt, *values)
        return self

    def raw(self, data: bytes) -> Writer:
        self.buf += data
        return self

    def string(self, text: str) -> Writer:
        data = text.encode() + b"\0"
        return self.pack("I", len(data)).raw(data)

    def octets(self, data: bytes) -> Writer:
        return self.pack("I", len(data)).raw(data)


def encapsulation(little: bool, fill: Callable[[Writer], object]) -> bytes:
    w = Writer(little).raw(b"\x01" if little else b"\x00")
    fill(w)
    return bytes(w.buf)


def ior(
    host: str,
    port: int,
    key: bytes,
    little: bool = True,
    other_profile_first: bool = True,
    versions: tuple[int, ...] = (2,),
) -> str:
    """An IOR with an IIOP profile per minor version in ``versions`` (the last at
    ``port``, the others at ``port + 1``)."""

    def iiop(minor: int, at: int) -> Callable[[Writer], None]:
        def fill(w: Writer) -> None:
            w.raw(bytes((1, minor))).string(host).pack("H", at).octets(key)
            if minor:
                w.pack("I", 0)  # no tagged components

        return fill

    w = Writer(little).raw(b"\x01" if little else b"\x00").string("IDL:Tango/Device_6:1.0")
    profiles = [
        (0, encapsulation(not little, iiop(minor, port if k == len(versions) - 1 else port + 1)))
        for k, minor in enumerate(versions)
    ]
    if other_profile_first:
        profiles.insert(0, (1, b"\x01\x00\x00\x00\x00\x00\x00\x00"))
    w.pack("I", len(profiles))
    for tag, body in profiles:
        w.pack("I", tag).octets(body)
    return "IOR:" + w.buf.hex()


def reply(
    request_id: int,
    body: Callable[[Writer], object],
    status: int = giop.NO_EXCEPTION,
    little: bool = True,
    contexts: int = 0,
) -> bytearray:
    w = Writer(little).raw(b"GIOP\x01\x02" + bytes((int(little), giop.REPLY)) + bytes(4))
    w.pack("II", request_id, status).pack("I", contexts)
    for i in range(contexts):
        w.pack("I", 7 + i).octets(b"\x01ctx")
    w.align(8)
    body(w)
    struct.pack_into(w.order + "I", w.buf, 8, len(w.buf) - 12)
    return w.buf


def encoded(fmt: str, data: bytes, struct_id: str = giop.DEV_ENCODED_ID) -> Callable[[Writer], object]:
    def body(w: Writer) -> None:
        little = w.order == "<"

        def tc(e: Writer) -> None:
            e.string(struct_id).string("DevEncoded").pack("I", 2)

        w.pack("I", giop.TK_STRUCT).octets(encapsulation(little, tc)).string(fmt).octets(data)

    return body


def dev_failed(*errors: tuple[str, int, str, str]) -> Callable[[Writer], object]:
    def body(w: Writer) -> None:
        w.string(giop.DEV_FAILED_ID).pack("I", len(errors))
        for reason, severity, desc, origin in errors:
            w.string(reason).pack("I", severity).string(desc).string(origin)

    return body


def fragmented(message: bytearray, request_id: int, *cuts: int) -> list[bytes]:
    """``message`` cut at ``cuts`` (offsets in it, multiples of 8): a first part and Fragments."""
    little = bool(message[6] & 1)
    order = "<" if little else ">"
    bounds = [*cuts, len(message)]
    first = bytearray(message[: bounds[0]])
    first[6] |= giop.MORE_FRAGMENTS
    struct.pack_into(order + "I", first, 8, bounds[0] - 12)
    out = [bytes(first)]
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        flags = int(little) | (giop.MORE_FRAGMENTS if k < len(bounds) - 2 else 0)
        head = b"GIOP\x01\x02" + bytes((flags, giop.FRAGMENT)) + struct.pack(order + "I", 4 + hi - lo)
        out.append(head + struct.pack(order + "I", request_id) + bytes(message[lo:hi]))
    return out


# -- IOR and request ------------------------------------------------------------------


@pytest.mark.parametrize("little", [True, False])
def test_the_iiop_profile_is_read_from_an_ior_in_either_byte_order(little: bool) -> None:
    assert giop.parse_ior(ior("192.0.2.7", 40123, KEY, little)) == giop.IiopProfile("192.0.2.7", 40123, KEY)


@pytest.mark.parametrize(
    "text", ["corbaloc::host:1/x", "IOR:zz", "IOR:" + ior("h", 1, KEY, other_profile_first=False)[4:40]]
)
def test_a_bad_ior_is_a_wire_error(text: str) -> None:
    with pytest.raises(giop.WireError):
        giop.parse_ior(text)


def test_only_an_iiop_1_2_profile_is_used() -> None:
    assert giop.parse_ior(ior("h", 4000, KEY, versions=(1, 2))).port == 4000
    with pytest.raises(giop.WireError, match="IIOP 1.0, IIOP 1.1"):
        giop.parse_ior(ior("h", 4000, KEY, versions=(0, 1)))


def test_a_close_connection_of_any_giop_1_version_is_understood() -> None:
    assert giop.header(b"GIOP\x01\x00\x01\x05\0\0\0\0")[2] == giop.CLOSE_CONNECTION
    with pytest.raises(giop.WireError, match="1.2 expected"):
        giop.header(b"GIOP\x01\x01\x01\x01\0\0\0\0")


def test_an_ior_without_an_iiop_profile_is_a_wire_error() -> None:
    w = Writer().raw(b"\x01").string("IDL:Tango/Device_6:1.0").pack("I", 1).pack("I", 1).octets(b"\x01\0\0\0")
    with pytest.raises(giop.WireError, match="IIOP"):
        giop.parse_ior("IOR:" + w.buf.hex())


@pytest.mark.parametrize(("arg_type", "value"), [(2, -3), (3, -5), (6, 65535), (7, 7), (23, 2**40), (24, 2**63)])
def test_a_request_carries_the_command_its_typed_argument_and_the_client_pid(arg_type: int, value: int) -> None:
    message = giop.encode_request(9, KEY, "getFrame", arg_type, value)
    little, flags, kind, size = giop.header(message)
    assert (little, flags, kind, size) == (True, 1, giop.REQUEST, len(message) - 12)
    r = giop.CdrReader(message, 12, True)
    assert r.ulong() == 9
    assert bytes(message[r.take(4) : r.offset]) == b"\x03\0\0\0"
    assert r.unpack("h") == 0
    start, n = r.octets()
    assert message[start : start + n] == KEY
    assert r.string() == "command_inout_4"
    assert r.ulong() == 0
    r.align(8)
    kind_tc, fmt = giop.INTEGER_ARGS[arg_type]
    assert (r.string(), r.ulong(), r.unpack(fmt)) == ("getFrame", kind_tc, value)
    assert (r.ulong(), r.ulong(), r.ulong()) == (giop.CACHE_DEV, giop.CPP, os.getpid())
    assert r.offset == len(message)


@pytest.mark.parametrize(("arg_type", "value"), [(8, 1), (3, 2**31), (7, -1)])  # DevString; out of range
def test_a_request_it_cannot_send_is_a_wire_error(arg_type: int, value: int) -> None:
    with pytest.raises(giop.WireError):
        giop.encode_request(1, KEY, "getFrame", arg_type, value)


# -- replies ----------------------------------------------------------------------------


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("contexts", [0, 2])
def test_the_devencoded_of_a_reply_is_its_format_and_its_bytes(little: bool, contexts: int) -> None:
    data = bytes(range(256)) * 5 + b"tail"
    message = reply(4, encoded("DATA_ARRAY", data), little=little, contexts=contexts)
    fmt, out = giop.decode_encoded_reply(message, 4)
    assert (fmt, bytes(out)) == ("DATA_ARRAY", data)
    assert isinstance(out, bytearray)


def test_a_devfailed_reply_is_the_devices_error_stack() -> None:
    errors = [("LIMA_Error", 1, "frame 99 not available", "getFrame"), ("API_CommandFailed", 1, "failed", "cmd")]
    with pytest.raises(giop.DeviceRefused) as info:
        giop.decode_encoded_reply(reply(1, dev_failed(*errors), giop.USER_EXCEPTION), 1)
    assert info.value.errors == errors


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (reply(1, lambda w: w.string("IDL:omg.org/CORBA/TRANSIENT:1.0").pack("II", 2, 1), 2), "TRANSIENT"),
        (reply(1, lambda w: w.string("IDL:Tango/MultiDevFailed:1.0"), giop.USER_EXCEPTION), "MultiDevFailed"),
        (reply(1, lambda w: None, 3), "status 3"),
        (reply(1, encoded("X", b"", "IDL:Tango/DevVarLongStringArray:1.0")), "not a DevEncoded"),
        (reply(1, lambda w: w.pack("I", 23).align(8).pack("q", 5)), "not a struct"),
        (reply(2, encoded("X", b"abc")), "another request"),
        (reply(1, encoded("X", b"abc"))[:-2], "ends early"),
    ],
)
def test_any_other_reply_is_a_wire_error(message: bytearray, match: str) -> None:
    with pytest.raises(giop.WireError, match=match):
        giop.decode_encoded_reply(message, 1)


# -- connections over a scripted peer ----------------------------------------------------


class Peer:
    """A GIOP server on a local socket that answers each request as scripted: the byte
    strings to send (or a function of the request id giving them), a final ``None`` to
    close the connection after them, or ``"close"`` to close it without answering. Each
    connection is served in its own thread; what goes wrong in them is kept in
    ``errors`` (checked by the fixture)."""

    def __init__(self, script: list[object]) -> None:
        self.script = script
        self.requests: list[tuple[int, int]] = []  # (connection number, request id)
        self.errors: list[BaseException] = []
        self.conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.conns.append(conn)
                number = len(self.conns)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            with conn:
                while True:
                    head = _recv(conn, 12)
                    if head is None:
                        return
                    body = _recv(conn, giop.header(head)[3])
                    if body is None:
                        raise AssertionError("request cut short")
                    request_id = struct.unpack_from("<I", body)[0]
                    with self._lock:
                        self.requests.append((number, request_id))
                        step = self.script.pop(0)
                    parts = [None] if step == "close" else step(request_id) if callable(step) else step
                    for part in parts:  # type: ignore[union-attr]
                        if part is None:
                            return
                        if isinstance(part, float):
                            time.sleep(part)  # the peer's pace, not the test's
                        else:
                            conn.sendall(part)
        except OSError:
            pass  # the client went away, or close_all
        except BaseException as exc:
            self.errors.append(exc)

    def close_all(self) -> None:
        """Close every connection, as a server that stops does."""
        with self._lock:
            for conn in self.conns:
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


def _recv(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def route() -> Iterator[Callable[[list[object]], tuple[giop.Route, Peer]]]:
    peers: list[Peer] = []

    def make(script: list[object]) -> tuple[giop.Route, Peer]:
        peer = Peer(script)
        peers.append(peer)
        return giop.Route(giop.IiopProfile("127.0.0.1", peer.port, KEY), 23), peer

    yield make
    for p in peers:
        p.close()
        assert not p.errors, p.errors


@pytest.fixture
def pool() -> Iterator[giop.ConnectionPool]:
    p = giop.ConnectionPool(5)
    yield p
    p.close()


def answer(data: bytes, cuts: tuple[int, ...] = (), little: bool = True) -> Callable[[int], list[bytes]]:
    def parts(request_id: int) -> list[bytes]:
        message = reply(request_id, encoded("DATA_ARRAY", data), little=little)
        return fragmented(message, request_id, *cuts) if cuts else [bytes(message)]

    return parts


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize(
    "cuts", [(8 * 6000,), (24,), (32, 8 * 100, 8 * 9000)]
)  # in the data, before the TypeCode, 4 parts
def test_a_fragmented_reply_is_put_back_together(
    route: Callable[[list[object]], tuple[giop.Route, Peer]],
    pool: giop.ConnectionPool,
    little: bool,
    cuts: tuple[int, ...],
) -> None:
    data = os.urandom(100_000)
    r, _peer = route([answer(data, cuts, little)])
    assert pool.command_encoded(r, "getFrame", 3) == ("DATA_ARRAY", data)


@pytest.mark.parametrize(
    ("cut", "spoil", "match"),
    [
        (8 * 40 + 4, lambda f: f, "multiple of 8"),
        (8 * 40, lambda f: f[:12] + b"\x63\0\0\0" + f[16:], "another request"),
        (8 * 40, lambda f: f[:7] + bytes([giop.REPLY]) + f[8:], "middle of a reply"),
    ],
)
def test_a_broken_fragment_is_a_wire_error(
    route: Callable[[list[object]], tuple[giop.Route, Peer]],
    pool: giop.ConnectionPool,
    cut: int,
    spoil: Callable[[bytes], bytes],
    match: str,
) -> None:
    def parts(request_id: int) -> list[bytes]:
        first, fragment = fragmented(reply(request_id, encoded("DATA_ARRAY", bytes(1000))), request_id, cut)
        return [first, spoil(fragment)]

    r, _peer = route([parts])
    with pytest.raises(giop.WireError, match=match):
        pool.command_encoded(r, "getFrame", 1)


def test_calls_reuse_the_connection(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    r, peer = route([answer(b"one"), answer(b"two")])
    assert [pool.command_encoded(r, "getFrame", i)[1] for i in (1, 2)] == [b"one", b"two"]
    assert [c for c, _ in peer.requests] == [1, 1]


def test_an_idle_connection_the_server_closed_is_replaced_once(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    close_connection = [b"GIOP\x01\x02\x01\x05\0\0\0\0"]
    r, peer = route([answer(b"one"), close_connection, answer(b"two")])
    assert pool.command_encoded(r, "getFrame", 1)[1] == b"one"
    assert pool.command_encoded(r, "getFrame", 2)[1] == b"two"
    assert [c for c, _ in peer.requests] == [1, 1, 2]


def test_after_a_server_stop_no_idle_connection_is_tried_twice(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    """A server that stops closes every connection: the retry goes to a new one, not to
    another idle connection closed just the same."""
    r, peer = route([answer(b"after")])
    for _ in range(2):
        pool._give(r.profile, giop.Connection("127.0.0.1", peer.port, time.monotonic() + 5))
    wait_for(lambda: len(peer.conns) == 2, 5, "both connections accepted", interval=0.005)
    peer.close_all()
    assert pool.command_encoded(r, "getFrame", 1)[1] == b"after"
    assert [c for c, _ in peer.requests] == [3]


def test_a_new_connection_closed_without_an_answer_is_not_tried_again(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    r, peer = route(["close", answer(b"never")])
    with pytest.raises(giop.ConnectionClosed):
        pool.command_encoded(r, "getFrame", 1)
    assert len(peer.requests) == 1


def test_a_reply_cut_in_the_middle_is_a_wire_error(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    r, _peer = route([lambda rid: [bytes(reply(rid, encoded("X", bytes(5000))))[:3000], None]])
    with pytest.raises(giop.WireError, match="middle"):
        pool.command_encoded(r, "getFrame", 1)


def test_a_message_error_is_a_wire_error(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    r, _peer = route([[b"GIOP\x01\x02\x01\x06\0\0\0\0"]])
    with pytest.raises(giop.WireError, match="did not understand"):
        pool.command_encoded(r, "getFrame", 1)


def test_a_device_error_keeps_the_connection(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    refused = [("LIMA_Error", 1, "not available", "getFrame")]
    r, peer = route([lambda rid: [bytes(reply(rid, dev_failed(*refused), giop.USER_EXCEPTION))], answer(b"ok")])
    with pytest.raises(giop.DeviceRefused):
        pool.command_encoded(r, "getFrame", 1)
    assert pool.command_encoded(r, "getFrame", 2)[1] == b"ok"
    assert [c for c, _ in peer.requests] == [1, 1]


def test_an_argument_that_cannot_be_sent_takes_no_connection(
    route: Callable[[list[object]], tuple[giop.Route, Peer]], pool: giop.ConnectionPool
) -> None:
    r, peer = route([answer(b"ok")])
    with pytest.raises(giop.ArgumentError):
        pool.command_encoded(giop.Route(r.profile, 3), "getFrame", 2**40)  # DevLong
    assert peer.conns == [] and peer.requests == []


def test_a_refused_connection_is_a_wire_error(pool: giop.ConnectionPool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    with pytest.raises(giop.WireError, match="no connection"):
        pool.command_encoded(giop.Route(giop.IiopProfile("127.0.0.1", port, KEY), 23), "getFrame", 1)


def test_a_server_that_does_not_answer_times_out(route: Callable[[list[object]], tuple[giop.Route, Peer]]) -> None:
    r, peer = route([[], answer(b"late")])  # the first request gets nothing back
    pool = giop.ConnectionPool(0.3)
    try:
        with pytest.raises(TimeoutError):
            pool.command_encoded(r, "getFrame", 1)
        assert pool.command_encoded(r, "getFrame", 2)[1] == b"late"  # on a new connection
        assert [c for c, _ in peer.requests] == [1, 2]
    finally:
        pool.close()


def test_the_timeout_bounds_the_whole_call_not_each_read(
    route: Callable[[list[object]], tuple[giop.Route, Peer]],
) -> None:
    """A reply that trickles in (every byte well within the timeout, the whole far
    beyond it) times out all the same."""

    def trickle(request_id: int) -> list[object]:
        message = bytes(reply(request_id, encoded("X", bytes(40))))
        return [item for k in range(len(message)) for item in (0.05, message[k : k + 1])]

    r, _peer = route([trickle])
    pool = giop.ConnectionPool(0.5)
    try:
        with pytest.raises(TimeoutError):
            pool.command_encoded(r, "getFrame", 1)
    finally:
        pool.close()
