"""python-caldav as organizer and attendees against Serval's RFC 6638 scheduling.

Run by tests/python_caldav.rs with CALDAV_URL and CALDAV_PASSWORD set; users ann, bob and
carol and the room boardroom exist. Invite, accept, decline, update, cancel, a recurring
meeting with one instance moved, free-busy, and a room booked twice. Every step asserts
what the client reports; the first failure exits non-zero.
"""
import os
from datetime import datetime, timezone

import caldav

URL = os.environ["CALDAV_URL"]
PASSWORD = os.environ["CALDAV_PASSWORD"]


def step(name):
    print("step:", name, flush=True)


def client(user):
    return caldav.DAVClient(url=URL, username=user, password=PASSWORD)


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def vcal(body):
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//serval-test//EN\r\n" + body + "END:VCALENDAR\r\n"


def event(uid, start, end, summary, extra=""):
    return vcal(f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\n"
                f"DTEND:{end}\r\nSUMMARY:{summary}\r\n{extra}END:VEVENT\r\n")


def partstats(obj, address):
    """PARTSTAT of `address` per component (RECURRENCE-ID or 'master')."""
    out = {}
    for comp in obj.icalendar_instance.walk("vevent"):
        rid = comp.get("recurrence-id")
        key = rid.dt.strftime("%Y%m%dT%H%M%SZ") if rid else "master"
        for att in comp.get("attendee", []) if isinstance(comp.get("attendee"), list) else [comp.get("attendee")]:
            if att is not None and str(att).lower() == address:
                out[key] = att.params.get("PARTSTAT")
    return out


ann, bob, carol = client("ann"), client("bob"), client("carol")
step("scheduling is advertised")
assert ann.check_scheduling_support(), "calendar-auto-schedule in DAV header"
ann_p, bob_p, carol_p = ann.principal(), bob.principal(), carol.principal()
assert "mailto:ann@example.com" in [str(a) for a in ann_p.calendar_user_address_set()]
ann_cal = ann_p.calendars()[0]
for p in (bob_p, carol_p):
    p.calendars()  # a first look creates each home's default calendar

step("invite bob and carol")
ann_cal.save_with_invites(
    event("meet1@test", "20260310T090000Z", "20260310T100000Z", "Budget review"),
    ["mailto:bob@example.com", "mailto:carol@example.com"],
)
invites = [i for i in bob_p.schedule_inbox().get_items() if i.is_invite_request()]
assert len(invites) == 1, invites
assert "Budget review" in invites[0].data

step("bob accepts")
invites[0].accept_invite()
organizer_copy = ann_cal.event_by_uid("meet1@test")
assert partstats(organizer_copy, "mailto:bob@example.com") == {"master": "ACCEPTED"}, organizer_copy.data
bob_copy = bob_p.calendars()[0].event_by_uid("meet1@test")
assert partstats(bob_copy, "mailto:bob@example.com") == {"master": "ACCEPTED"}, bob_copy.data

step("carol declines")
[invite] = [i for i in carol_p.schedule_inbox().get_items() if i.is_invite_request()]
invite.decline_invite()
organizer_copy = ann_cal.event_by_uid("meet1@test")
assert partstats(organizer_copy, "mailto:carol@example.com") == {"master": "DECLINED"}, organizer_copy.data
assert any(i.is_invite_reply() for i in ann_p.schedule_inbox().get_items()), "replies reach ann's inbox"

step("ann updates the meeting")
organizer_copy.icalendar_component["summary"] = "Budget review (room 2)"
organizer_copy.save()
bob_copy = bob_p.calendars()[0].event_by_uid("meet1@test")
assert "Budget review (room 2)" in bob_copy.data, bob_copy.data

step("free-busy for bob and an unknown address")
fb = ann_p.freebusy_request(utc(2026, 3, 10), utc(2026, 3, 11),
                            ["mailto:bob@example.com", "mailto:nobody@elsewhere.org"])
bob_fb = fb["mailto:bob@example.com"].data
assert "20260310T090000Z/20260310T100000Z" in bob_fb, bob_fb
assert "Budget" not in bob_fb, "free-busy never shows titles"
assert "mailto:nobody@elsewhere.org" in fb["errors"], fb

step("ann cancels")
organizer_copy.delete()
try:
    bob_p.calendars()[0].event_by_uid("meet1@test")
    raise AssertionError("bob's copy should be gone")
except caldav.lib.error.NotFoundError:
    pass
cancels = [i for i in bob_p.schedule_inbox().get_items() if "METHOD:CANCEL" in i.data]
assert cancels, "bob's inbox holds the CANCEL"

step("recurring meeting with one instance moved")
weekly = vcal(
    "BEGIN:VEVENT\r\nUID:weekly1@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260316T090000Z\r\n"
    "DTEND:20260316T093000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\n"
    "ORGANIZER:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:weekly1@test\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260323T090000Z\r\n"
    "DTSTART:20260325T090000Z\r\nDTEND:20260325T093000Z\r\nSUMMARY:Standup (moved)\r\n"
    "ORGANIZER:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com\r\nEND:VEVENT\r\n")
ann_cal.save_event(weekly)
bob_copy = bob_p.calendars()[0].event_by_uid("weekly1@test")
assert len(bob_copy.icalendar_instance.walk("vevent")) == 2, bob_copy.data
found = bob_p.calendars()[0].search(start=utc(2026, 3, 23), end=utc(2026, 3, 27), event=True, expand=True)
starts = sorted(str(e.icalendar_component.get("dtstart").dt) for e in found)
assert starts == ["2026-03-25 09:00:00+00:00"], starts
[invite] = [i for i in bob_p.schedule_inbox().get_items()
            if i.is_invite_request() and "weekly1@test" in i.data]
invite.accept_invite()
# python caldav answers on the first component (the master); the organizer's copy must
# show exactly the answers bob's copy holds, per instance.
bob_copy = bob_p.calendars()[0].event_by_uid("weekly1@test")
bob_view = partstats(bob_copy, "mailto:bob@example.com")
assert bob_view["master"] == "ACCEPTED", bob_copy.data
organizer_copy = ann_cal.event_by_uid("weekly1@test")
assert partstats(organizer_copy, "mailto:bob@example.com") == bob_view, organizer_copy.data

step("bob declines only the moved instance")
moved = [c for c in bob_copy.icalendar_instance.walk("vevent") if c.get("recurrence-id")][0]
for att in moved["attendee"]:
    if str(att).lower() == "mailto:bob@example.com":
        att.params["PARTSTAT"] = "DECLINED"
bob_copy.save(increase_seqno=False)
organizer_copy = ann_cal.event_by_uid("weekly1@test")
assert partstats(organizer_copy, "mailto:bob@example.com") == {
    "master": "ACCEPTED", "20260323T090000Z": "DECLINED"}, organizer_copy.data

step("room booking with a conflict")
ann_cal.save_with_invites(event("room1@test", "20260311T100000Z", "20260311T110000Z", "Board meeting"),
                          ["mailto:boardroom@example.com"])
assert partstats(ann_cal.event_by_uid("room1@test"), "mailto:boardroom@example.com") == {"master": "ACCEPTED"}
bob_cal = bob_p.calendars()[0]
bob_cal.save_with_invites(event("room2@test", "20260311T103000Z", "20260311T113000Z", "Clash"),
                          ["mailto:boardroom@example.com"])
assert partstats(bob_cal.event_by_uid("room2@test"), "mailto:boardroom@example.com") == {"master": "DECLINED"}
fb = ann_p.freebusy_request(utc(2026, 3, 11), utc(2026, 3, 12), ["mailto:boardroom@example.com"])
room_fb = fb["mailto:boardroom@example.com"].data
assert "20260311T100000Z/20260311T110000Z" in room_fb and "113000Z" not in room_fb, room_fb

print("OK")
