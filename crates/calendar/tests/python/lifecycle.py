"""python-caldav driving Serval through a calendar's whole life.

Run by tests/python_caldav.rs with CALDAV_URL, CALDAV_USER, CALDAV_PASSWORD set.
Every step asserts what the client reports; the first failure exits non-zero.
"""
import os
import sys
from datetime import datetime, timezone

import caldav
from caldav.lib import error

URL = os.environ["CALDAV_URL"]
USER = os.environ["CALDAV_USER"]
PASSWORD = os.environ["CALDAV_PASSWORD"]


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def vcal(body):
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//serval-test//EN\r\n" + body + "END:VCALENDAR\r\n"


SIMPLE = vcal("BEGIN:VEVENT\r\nUID:simple@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
              "DTEND:20260105T110000Z\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\n")
ALL_DAY = vcal("BEGIN:VEVENT\r\nUID:allday@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260110\r\n"
               "DTEND;VALUE=DATE:20260111\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\n")
# Weekly on Mondays from Jan 12, 4 times; the Jan 19 instance moved to Wednesday Jan 21.
WEEKLY = vcal("BEGIN:VEVENT\r\nUID:weekly@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260112T090000Z\r\n"
              "DTEND:20260112T093000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n"
              "BEGIN:VEVENT\r\nUID:weekly@test\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260119T090000Z\r\n"
              "DTSTART:20260121T090000Z\r\nDTEND:20260121T093000Z\r\nSUMMARY:Standup (moved)\r\nEND:VEVENT\r\n")
BERLIN = vcal("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
              "TZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
              "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n"
              "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
              "BEGIN:VEVENT\r\nUID:berlin@test\r\nDTSTAMP:20260101T000000Z\r\n"
              "DTSTART;TZID=Europe/Berlin:20260326T090000\r\nDTEND;TZID=Europe/Berlin:20260326T100000\r\n"
              "RRULE:FREQ=WEEKLY;COUNT=2\r\nSUMMARY:Berlin weekly\r\nEND:VEVENT\r\n")


def step(name):
    print("step:", name, flush=True)


client = caldav.DAVClient(url=URL, username=USER, password=PASSWORD)

step("discovery")
principal = client.principal()
home_calendars = principal.calendars()
assert len(home_calendars) >= 1, "a new home has a default calendar"
addresses = [str(a) for a in principal.calendar_user_address_set()]
assert any(a.startswith("mailto:") for a in addresses), addresses

step("create calendar")
cal = principal.make_calendar(name="Work", cal_id="work")
assert any(str(c.url).rstrip("/").endswith("/work") for c in principal.calendars())
assert cal.get_display_name() == "Work"

step("save events")
for text in (SIMPLE, ALL_DAY, WEEKLY, BERLIN):
    cal.save_event(text)
assert len(cal.events()) == 4

step("time-range search (January)")
found = cal.search(start=utc(2026, 1, 1), end=utc(2026, 2, 1), event=True)
uids = sorted(str(e.icalendar_component["UID"]) for e in found)
assert uids == ["allday@test", "simple@test", "weekly@test"], uids

step("moved instance leaves its old slot")
old_slot = cal.search(start=utc(2026, 1, 19), end=utc(2026, 1, 20), event=True)
assert old_slot == [], [str(e.url) for e in old_slot]
new_slot = cal.search(start=utc(2026, 1, 21), end=utc(2026, 1, 22), event=True)
assert [str(e.icalendar_component["UID"]) for e in new_slot] == ["weekly@test"]

step("server-side expansion")
expanded = cal.search(start=utc(2026, 1, 12), end=utc(2026, 2, 10), event=True, expand=True, server_expand=True)
starts = sorted(e.icalendar_component["DTSTART"].dt.astimezone(timezone.utc) for e in expanded
                if str(e.icalendar_component["UID"]) == "weekly@test")
assert starts == [utc(2026, 1, 12, 9), utc(2026, 1, 21, 9), utc(2026, 1, 26, 9), utc(2026, 2, 2, 9)], starts

step("TZID Europe/Berlin across the DST change")
berlin = cal.search(start=utc(2026, 3, 20), end=utc(2026, 4, 10), event=True, expand=True, server_expand=True)
bstarts = sorted(e.icalendar_component["DTSTART"].dt.astimezone(timezone.utc) for e in berlin)
# 09:00 CET = 08:00 UTC on Mar 26; 09:00 CEST = 07:00 UTC on Apr 2.
assert bstarts == [utc(2026, 3, 26, 8), utc(2026, 4, 2, 7)], bstarts

step("multiget")
urls = [e.url for e in cal.events()]
got = cal.multiget(urls)
assert len(list(got)) == 4

step("etag update and 412")
event = cal.event_by_uid("simple@test")
event.load()
etag = event.props.get("{DAV:}getetag") if hasattr(event, "props") else None
response = client.put(str(event.url), SIMPLE.replace("Dentist", "Dentist (moved)"), {"Content-Type": "text/calendar", "If-Match": '"stale"'})
assert response.status == 412, response.status
response = client.put(str(event.url), SIMPLE, {"Content-Type": "text/calendar", "If-None-Match": "*"})
assert response.status == 412, response.status
head = client.request(str(event.url), "GET")
current = head.headers.get("ETag")
response = client.put(str(event.url), SIMPLE.replace("Dentist", "Dentist (moved)"), {"Content-Type": "text/calendar", "If-Match": current})
assert response.status == 204, response.status
assert "Dentist (moved)" in cal.event_by_uid("simple@test").data

step("sync-collection")
sync = cal.objects_by_sync_token(load_objects=False)
token = sync.sync_token
assert len(list(sync)) == 4
cal.save_event(vcal("BEGIN:VEVENT\r\nUID:late@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260301T100000Z\r\nSUMMARY:Late\r\nEND:VEVENT\r\n"))
changed = cal.objects_by_sync_token(sync_token=token, load_objects=False)
assert len(list(changed)) == 1, list(changed)
token = changed.sync_token

step("delete")
cal.event_by_uid("late@test").delete()
try:
    cal.event_by_uid("late@test")
    raise AssertionError("deleted event still found")
except error.NotFoundError:
    pass
deleted = cal.objects_by_sync_token(sync_token=token, load_objects=False)
assert len(list(deleted)) == 1

step("free-busy")
fb = cal.freebusy_request(utc(2026, 1, 5), utc(2026, 1, 6))
text = fb.data
assert "FREEBUSY" in text and "20260105T100000Z/20260105T110000Z" in text, text

print("OK")
