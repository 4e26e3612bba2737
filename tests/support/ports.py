"""Free TCP ports on the loopback interface."""

import socket


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free when this function returned.

    The socket is closed before returning, so another process may in principle take the port;
    callers that start a server on it should treat "address in use" as a retryable failure.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
