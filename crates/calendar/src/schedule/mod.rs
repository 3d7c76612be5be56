//! RFC 6638 implicit scheduling, the pure part: iCalendar content lines ([`lines`]) and
//! the iTIP messages built from and applied to stored meetings ([`itip`]), with single
//! instances cancelled per attendee in [`instances`]. The HTTP driver
//! (`http::scheduling`) decides who is local, delivers, queues and answers.

pub mod instances;
pub mod itip;
pub mod lines;
pub mod queue;
