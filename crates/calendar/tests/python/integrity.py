"""python-caldav against Serval's data integrity: broken bodies are refused with a reason and
leave the calendar as it was; events in several zones come back intact and their instances
land at the right UTC instants across DST; an email-style user's calendars work.

Run by tests/python_caldav.rs with CALDAV_URL, CALDAV_USER (dana@example.test),
CALDAV_PASSWORD set. The first failed assertion exits non-zero.
"""
import os
from datetime import datetime, timezone

import caldav
import requests
from caldav.lib import error

URL = os.environ["CALDAV_URL"]
USER = os.environ["CALDAV_USER"]
PASSWORD = os.environ["CALDAV_PASSWORD"]


def step(name):
    print("step:", name, flush=True)


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def vcal(body):
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//serval-test//EN\r\n" + body + "END:VCALENDAR\r\n"


def event(uid, start="DTSTART:20260105T100000Z", end="DTEND:20260105T110000Z", extra=""):
    return vcal(f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{start}\r\n{end}\r\n"
                f"{extra}SUMMARY:{uid}\r\nEND:VEVENT\r\n")


EU_RULES = ("BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
            "DTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
            "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n")
LORD_HOWE_RULES = ("BEGIN:STANDARD\r\nDTSTART:20080406T020000\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1030\r\n"
                   "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
                   "DTSTART:20081005T020000\r\nTZOFFSETFROM:+1030\r\nTZOFFSETTO:+1100\r\n"
                   "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nEND:DAYLIGHT\r\n")
NEW_YORK_RULES = ("BEGIN:DAYLIGHT\r\nDTSTART:20070311T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\n"
                  "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\n"
                  "DTSTART:20071104T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\n"
                  "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n")


def zoned(uid, tzid, rules, local):
    quoted = f'"{tzid}"' if " " in tzid else tzid
    return vcal(f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n{rules}END:VTIMEZONE\r\n"
                f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
                f"DTSTART;TZID={quoted}:{local}\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n"
                f"SUMMARY:{uid}\r\nEND:VEVENT\r\n")


client = caldav.DAVClient(url=URL, username=USER, password=PASSWORD)

step("an email-style user finds its principal and makes a calendar")
principal = client.principal()
assert "@" in str(principal.url), principal.url
cal = principal.make_calendar(name="Integrity", cal_id="integrity")
cal.save_event(event("kept@test"))
sync = cal.objects_by_sync_token(load_objects=False)
token = sync.sync_token
assert len(list(sync)) == 1

step("broken bodies are refused, each with its reason")
good = event("broken@test")
cut = good[: good.index("END:VEVENT")]
broken = {
    "truncated": (cut, "unclosed component VEVENT"),
    "misnested": (good.replace("END:VEVENT\r\nEND:VCALENDAR", "END:VCALENDAR\r\nEND:VEVENT"),
                  "END:VCALENDAR while VEVENT"),
    "no colon": (good.replace("SUMMARY:broken@test", "SUMMARY broken"), "has no ':'"),
    "lost fold space": (good.replace("SUMMARY:broken@test", "SUMMARY:a long\r\nline"), "must start with a space"),
    "DTEND before DTSTART": (event("broken@test", end="DTEND:20260105T090000Z"), "before DTSTART"),
    "unknown TZID": (event("broken@test", start="DTSTART;TZID=Nowhere/Special:20260105T100000",
                           end="DTEND;TZID=Nowhere/Special:20260105T110000"), "Nowhere/Special"),
}
# Over plain `requests`: save_event() would parse (and refuse) some of these itself, and
# python-caldav reports any 403 as an AuthorizationError without the body.
for case, (body, reason) in broken.items():
    response = requests.put(str(cal.url.join("broken.ics")), data=body.encode(), auth=(USER, PASSWORD),
                            headers={"Content-Type": "text/calendar"})
    message = response.text.replace("&apos;", "'")
    assert response.status_code == 403, (case, response.status_code, message)
    assert "valid-calendar-data" in message and reason in message, (case, message)

step("nothing changed: same sync token, one member")
after = cal.objects_by_sync_token(sync_token=token, load_objects=False)
assert len(list(after)) == 0, f"changes reported after refusals: {list(after)}"
assert after.sync_token == token, (token, after.sync_token)
assert len(cal.events()) == 1

step("zones round trip and follow DST")
cases = [
    ("berlin", "Europe/Berlin", EU_RULES, "20260320T100000",
     [utc(2026, 3, 20, 9), utc(2026, 3, 27, 9), utc(2026, 4, 3, 8)]),
    ("new-york", "America/New_York", NEW_YORK_RULES, "20261023T090000",
     [utc(2026, 10, 23, 13), utc(2026, 10, 30, 13), utc(2026, 11, 6, 14)]),
    ("lord-howe", "Australia/Lord_Howe", LORD_HOWE_RULES, "20260325T120000",
     [utc(2026, 3, 25, 1), utc(2026, 4, 1, 1), utc(2026, 4, 8, 1, 30)]),
    ("custom", "Serval HQ Time", EU_RULES, "20261013T100000",
     [utc(2026, 10, 13, 8), utc(2026, 10, 20, 8), utc(2026, 10, 27, 9)]),
]
for uid, tzid, rules, local, expected in cases:
    text = zoned(uid, tzid, rules, local)
    saved = cal.save_event(text)
    loaded = cal.event_by_url(saved.url)
    loaded.load()
    # python-caldav re-serialises what it saves (property order); what must survive is the
    # zone: the VTIMEZONE with its TZID, and the event's local start in it.
    zones = [c for c in loaded.icalendar_instance.walk("VTIMEZONE")]
    assert [str(z["TZID"]) for z in zones] == [tzid], (uid, loaded.data)
    dtstart = loaded.icalendar_component["DTSTART"]
    assert dtstart.params.get("TZID") == tzid, (uid, loaded.data)
    assert dtstart.to_ical().decode() == local, (uid, dtstart.to_ical())
    found = cal.search(event=True, start=utc(2026, 1, 1), end=utc(2027, 1, 1), expand=True)
    starts = sorted(
        e.icalendar_component["DTSTART"].dt.astimezone(timezone.utc)
        for e in found
        if str(e.icalendar_component["UID"]) == uid
    )
    assert starts == expected, (uid, starts, expected)
    last = expected[-1]
    hit = [e for e in cal.search(event=True, start=last, end=last.replace(minute=last.minute + 1))
           if str(e.icalendar_component["UID"]) == uid]
    assert hit, f"{uid} found at {last}"

print("OK")
