//! RFC 6638 implicit scheduling, the pure part: iCalendar content lines ([`lines`]) and
//! the iTIP messages built from and applied to stored meetings ([`itip`]). The HTTP
//! driver (`http::scheduling`) decides who is local, delivers, queues and answers.

pub mod itip;
pub mod lines;
pub mod queue;
