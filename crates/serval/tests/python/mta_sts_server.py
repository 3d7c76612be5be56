"""A domain's MTA-STS policy host for the mail tests: HTTPS on ADDRESS:PORT with CERT/KEY.

    python3 mta_sts_server.py ADDRESS PORT CERT KEY POLICY_DIR

GET /.well-known/mta-sts.txt with Host mta-sts.DOMAIN answers POLICY_DIR/mta-sts.DOMAIN.txt
(text/plain), 404 when there is no such file; every request is printed as one line.
"""

import http.server
import os
import ssl
import sys

address, port, cert, key, policies = sys.argv[1:6]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = os.path.join(policies, host + ".txt")
        print("GET", host, self.path, flush=True)
        if self.path != "/.well-known/mta-sts.txt" or not os.path.isfile(path):
            self.send_error(404)
            return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer((address, int(port)), Handler)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
