"""Connections opened ahead of the writes land in the EC2 client's own pool."""

from __future__ import annotations

import socket
import threading
from typing import List

import boto3

from mirror_vip.aws import client_config, open_connections


def test_connections_are_opened_once_and_pooled() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: List[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    ec2 = boto3.client(
        "ec2",
        region_name="eu-west-1",
        endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=client_config(30),
    )
    try:
        assert open_connections(ec2, 5) == 5
        assert open_connections(ec2, 5) == 5  # the same five, already connected: none new
        deadline = threading.Event()
        for _ in range(100):  # bounded wait for the accept thread to see all five
            if len(accepted) >= 5:
                break
            deadline.wait(0.01)
        assert len(accepted) == 5
    finally:
        server.close()
        for conn in accepted:
            conn.close()


def test_anything_unexpected_is_a_no_op() -> None:
    assert open_connections(object(), 3) == 0
