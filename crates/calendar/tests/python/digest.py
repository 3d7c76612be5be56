"""Digest logins from python clients against Serval.

Run by tests/digest_http.rs with CALDAV_URL, CALDAV_USER, CALDAV_PASSWORD set. First `requests`
with HTTPDigestAuth does PROPFINDs; then python `caldav`, told nothing about the scheme, reads
the server's challenges and runs a small lifecycle (make a calendar, save an event, read it
back). Every request either client puts on the wire is recorded at its transport adapter, so
the script asserts that Digest was really used and Basic never sent: it cannot pass on Basic.
"""
import os
import sys

import caldav
import requests
from requests.auth import HTTPDigestAuth

URL = os.environ["CALDAV_URL"]
USER = os.environ["CALDAV_USER"]
PASSWORD = os.environ["CALDAV_PASSWORD"]
HOME = f"{URL}calendars/users/{USER}/"
PROPFIND = ('<d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop>'
            '</d:propfind>')
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//serval-test//EN\r\nBEGIN:VEVENT\r\n"
         "UID:digest@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
         "DTEND:20260105T110000Z\r\nSUMMARY:Saved over Digest\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def record_authorizations(session):
    """The Authorization header (or None) of every request `session` sends, in order."""
    seen = []
    for adapter in session.adapters.values():
        def recording(request, *args, _send=adapter.send, **kwargs):
            seen.append(request.headers.get("Authorization"))
            return _send(request, *args, **kwargs)
        adapter.send = recording
    return seen


def check_digest_only(seen, who):
    sent = [a for a in seen if a is not None]
    assert sent, f"{who}: no request carried credentials: {seen}"
    schemes = {a.split(" ", 1)[0] for a in sent}
    assert schemes == {"Digest"}, f"{who} sent schemes {schemes}"
    algorithms = sorted({part.strip() for a in sent for part in a.split(",")
                         if part.strip().startswith("algorithm=")})
    print(f"{who}: {len(seen)} requests, {len(sent)} with Digest ({', '.join(algorithms)})")


# requests: the 401 is answered with Digest, later requests reuse the nonce (nc=2, ...).
session = requests.Session()
seen = record_authorizations(session)
session.auth = HTTPDigestAuth(USER, PASSWORD)
r = session.request("PROPFIND", HOME, headers={"Depth": "0"}, data=PROPFIND)
assert r.status_code == 207, (r.status_code, r.text)
assert f"/principals/users/{USER}/" in r.text, r.text
assert seen[0] is None and len(seen) == 2, seen
r = session.request("PROPFIND", HOME, headers={"Depth": "0"}, data=PROPFIND)
assert r.status_code == 207, (r.status_code, r.text)
assert len(seen) == 3 and "nc=00000002" in seen[2], f"nonce not reused: {seen}"
check_digest_only(seen, "requests")

wrong = requests.request("PROPFIND", HOME, headers={"Depth": "0"}, data=PROPFIND,
                         auth=HTTPDigestAuth(USER, PASSWORD + "x"))
assert wrong.status_code == 401, wrong.status_code

# python caldav picks the scheme from the challenges (it prefers Digest).
client = caldav.DAVClient(url=URL, username=USER, password=PASSWORD)
seen = record_authorizations(client.session)
principal = client.principal()
cal = principal.make_calendar(name="Digest", cal_id="digest")
cal.save_event(EVENT)
event = cal.event_by_uid("digest@test")
assert "Saved over Digest" in event.data, event.data
assert "Digest" in type(client.auth).__name__, f"caldav chose {type(client.auth).__name__}"
check_digest_only(seen, "caldav")
print("OK")
sys.stdout.flush()
