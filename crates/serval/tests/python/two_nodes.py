"""python-caldav against two Serval nodes sharing one PostgreSQL database: both write the
same calendar at once; each sees every event once, sync-collection lists each once, an
If-Match update made stale by the other node gets 412.

Run by tests/store_postgres.rs with NODE_A, NODE_B, CALDAV_USER, CALDAV_PASSWORD.
"""
import os
import threading
from datetime import datetime, timedelta, timezone

import caldav
import requests

USER, PASSWORD = os.environ["CALDAV_USER"], os.environ["CALDAV_PASSWORD"]
a = caldav.DAVClient(url=os.environ["NODE_A"], username=USER, password=PASSWORD).principal()
b = caldav.DAVClient(url=os.environ["NODE_B"], username=USER, password=PASSWORD).principal()
cal_a = a.make_calendar(name="Shared", cal_id="shared")
cal_b = [c for c in b.calendars() if str(c.url).rstrip("/").endswith("/shared")][0]

EACH = 15
failures = []


def writer(cal, tag):
    try:
        for i in range(EACH):
            start = datetime(2026, 12, 10, 8, tzinfo=timezone.utc) + timedelta(hours=i)
            cal.save_event(dtstart=start, dtend=start + timedelta(minutes=30),
                           summary=f"{tag}{i}", uid=f"{tag}-{i}@two-nodes")
    except Exception as e:  # noqa: BLE001 - reported below
        failures.append(f"{tag}: {e!r}")


threads = [threading.Thread(target=writer, args=(c, t)) for c, t in ((cal_a, "a"), (cal_b, "b"))]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not failures, failures

for name, cal in (("A", cal_a), ("B", cal_b)):
    uids = sorted(str(e.icalendar_component["UID"]) for e in cal.events())
    assert len(uids) == 2 * EACH and len(set(uids)) == 2 * EACH, (name, uids)
    synced = list(cal.objects_by_sync_token(load_objects=False))
    assert len(synced) == 2 * EACH, (name, len(synced))

# Both nodes read one event's ETag; A updates it first, so B's If-Match is stale: 412.
href = str(cal_a.event_by_uid("a-0@two-nodes").url).split("/calendars/", 1)[1]
url_a = os.environ["NODE_A"].rstrip("/") + "/calendars/" + href
url_b = os.environ["NODE_B"].rstrip("/") + "/calendars/" + href
seen_a = requests.get(url_a, auth=(USER, PASSWORD))
seen_b = requests.get(url_b, auth=(USER, PASSWORD))
assert seen_a.headers["ETag"] == seen_b.headers["ETag"], (seen_a.headers, seen_b.headers)
changed = seen_a.text.replace("SUMMARY:a0", "SUMMARY:changed on A")
put_a = requests.put(url_a, data=changed.encode(), auth=(USER, PASSWORD),
                     headers={"Content-Type": "text/calendar", "If-Match": seen_a.headers["ETag"]})
assert put_a.status_code in (200, 204), put_a.status_code
put_b = requests.put(url_b, data=seen_b.text.replace("SUMMARY:a0", "SUMMARY:changed on B").encode(),
                     auth=(USER, PASSWORD),
                     headers={"Content-Type": "text/calendar", "If-Match": seen_b.headers["ETag"]})
assert put_b.status_code == 412, put_b.status_code
assert "changed on A" in requests.get(url_b, auth=(USER, PASSWORD)).text
print("OK")
