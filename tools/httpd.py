#!/usr/bin/env python3
"""A real server for the namespace tests and demo: HTTP/1.0 on several ports in one process.
GET /name answers the server's name; GET /bytes/N answers N bytes (a repeatable pattern).
HTTP/1.1 with keep-alive."""
import http.server
import socketserver
import sys
import threading


def handler(name):
    class H(http.server.BaseHTTPRequestHandler):
        # Keep-alive: one TCP connection can carry many requests (the reconfiguration test
        # holds one open across changes).
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/name":
                body = (name + "\n").encode()
            elif self.path.startswith("/bytes/"):
                n = int(self.path[len("/bytes/"):])
                body = bytes((i * 7 + 3) % 251 for i in range(n))
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return H


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    name, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
    servers = [Server(("0.0.0.0", p), handler(name)) for p in ports]
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
