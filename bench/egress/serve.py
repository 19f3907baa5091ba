"""A minimal HTTP/1.1 server on 127.0.0.1 for the egress benchmark: answers
every GET with the file given on the command line via sendfile(2), so the
server side costs as little as possible and the proxy is what is measured.
Prints its port, then serves until killed.

    serve.py FILE
"""
import os
import socket
import sys
import threading


def handle(conn, path, size):
    with conn:
        conn.recv(65536)  # the request head; every request gets the file
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        with open(path, "rb") as f:
            conn.sendfile(f)


def main():
    path = sys.argv[1]
    size = os.path.getsize(path)
    srv = socket.create_server(("127.0.0.1", 0))
    print(srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, path, size), daemon=True).start()


if __name__ == "__main__":
    main()
