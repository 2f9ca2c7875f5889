"""The MQTT link's read-ahead socket gives paho exactly the bytes the socket would have."""

from __future__ import annotations

import socket

import pytest

from gateway.mqtt import ReadAhead


def test_small_reads_come_from_one_read_and_pending_counts_what_is_left() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.setblocking(False)
        sock = ReadAhead(right)
        left.sendall(b"\x30\x0bhello world" + b"\x40\x02\x00\x01")
        assert sock.recv(1) == b"\x30"
        assert sock.pending() == 16  # the rest was read ahead: paho must not wait in select
        assert sock.recv(1) == b"\x0b"
        assert sock.recv(11) == b"hello world"
        assert sock.recv(100) == b"\x40\x02\x00\x01"  # never more than what is buffered
        assert sock.pending() == 0
        with pytest.raises(BlockingIOError):  # nothing buffered, nothing on the wire
            sock.recv(1)
        left.sendall(b"\x01\x02")
        assert sock.recv(5) == b"\x01\x02"
        left.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""  # the peer closed: paho sees end of stream as before


def test_sends_and_the_descriptor_are_the_socket_s() -> None:
    left, right = socket.socketpair()
    with left, right:
        sock = ReadAhead(right)
        assert sock.fileno() == right.fileno()
        assert sock.send(b"ping") == 4
        assert left.recv(4) == b"ping"
        assert sock.getsockname() == right.getsockname()  # anything else is passed through
