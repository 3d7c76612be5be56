"""A fake smarthost for the mail tests, on aiosmtpd (PyPI `aiosmtpd`).

    python3 smarthost.py PORT OUT_DIR [--address A] [--user U --password P] [--reject ADDR ...]
                         [--tls-cert PEM --tls-key PEM]

Requires AUTH when --user is given (without TLS: the tests run on loopback) and answers 535
to wrong credentials; answers 550 5.1.1 at RCPT for every --reject address; writes each
message it takes to OUT_DIR/N.eml (envelope in X-Envelope-* lines first, and X-TLS: yes when
the session had STARTTLS, offered only with --tls-cert).
"""

import argparse
import asyncio
import itertools
import os
import signal
import ssl
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

args = argparse.ArgumentParser()
args.add_argument("port", type=int)
args.add_argument("out")
args.add_argument("--user")
args.add_argument("--password")
args.add_argument("--reject", action="append", default=[])
args.add_argument("--address", default="127.0.0.1")
args.add_argument("--tls-cert", help="offer STARTTLS with this certificate (PEM)")
args.add_argument("--tls-key")
opts = args.parse_args()
# AUTH without TLS is what the tests want (loopback); aiosmtpd warns on every session.
warnings.filterwarnings("ignore")
os.makedirs(opts.out, exist_ok=True)
counter = itertools.count(1)


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in (r.lower() for r in opts.reject):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        path = os.path.join(opts.out, "%d.eml" % n)
        head = "X-Envelope-From: <%s>\r\nX-Envelope-To: %s\r\nX-Auth-User: %s\r\nX-TLS: %s\r\n" % (
            envelope.mail_from,
            ",".join("<%s>" % r for r in envelope.rcpt_tos),
            getattr(session, "serval_user", ""),
            "yes" if session.ssl else "no",
        )
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued as fake%d" % n


def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    ok = (
        auth_data.login.decode() == opts.user
        and auth_data.password.decode() == opts.password
    )
    if ok:
        session.serval_user = opts.user
        return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


kwargs = {}
if opts.user:
    kwargs = dict(
        authenticator=authenticator, auth_required=True, auth_require_tls=False
    )
if opts.tls_cert:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(opts.tls_cert, opts.tls_key)
    kwargs["tls_context"] = context
controller = Controller(Handler(), hostname=opts.address, port=opts.port, **kwargs)
controller.start()
print("listening", flush=True)
stop = asyncio.Event()
loop = asyncio.new_event_loop()
for sig in (signal.SIGTERM, signal.SIGINT):
    loop.add_signal_handler(sig, stop.set)
loop.run_until_complete(stop.wait())
controller.stop()
