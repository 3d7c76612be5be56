//! What the driver hands to sockets: a short head written per send (a session's RTP header,
//! behind the `$` prefix of interleaving on TCP) in front of a body shared by every session
//! playing the movie. The kernel gathers the two (`iovec`s), so a payload is never copied per
//! client: 1,000 viewers of one movie send from one copy of each packet's payload.

use std::net::SocketAddr;

use bytes::Bytes;

/// Room for the longest head: the 4-byte interleaved prefix and the 12-byte RTP header.
pub const MAX_HEAD_LEN: usize = 16;

/// A few bytes written in front of a body, stored inline (no allocation per packet).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    bytes: [u8; MAX_HEAD_LEN],
    len: u8,
}

impl Head {
    /// Appends `data`; false (and nothing appended) when it does not fit.
    pub fn push(&mut self, data: &[u8]) -> bool {
        let start = usize::from(self.len);
        let Some(end) = start.checked_add(data.len()).filter(|e| *e <= MAX_HEAD_LEN) else {
            return false;
        };
        let Some(target) = self.bytes.get_mut(start..end) else {
            return false;
        };
        target.copy_from_slice(data);
        // `end` <= MAX_HEAD_LEN (16), so it fits a u8.
        self.len = u8::try_from(end).unwrap_or(0);
        true
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Head({:02x?})", self.as_slice())
    }
}

/// One unit queued for a TCP connection's writer: a response (body only) or an interleaved
/// packet (`$` prefix and RTP header in the head, the shared payload as body).
#[derive(Debug, Clone)]
pub struct Frame {
    pub head: Head,
    pub body: Bytes,
}

impl Frame {
    /// A frame that is all body (an RTSP response, an error answer).
    pub fn whole(body: Bytes) -> Frame {
        Frame {
            head: Head::default(),
            body,
        }
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

/// One UDP datagram: head (the RTP header; empty for RTCP) then body, to `to`.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub to: SocketAddr,
    pub head: Head,
    pub body: Bytes,
}

impl Datagram {
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_holds_sixteen_bytes_and_refuses_more() {
        let mut head = Head::default();
        assert!(head.push(b"$\x00\x05\xdc"));
        assert!(head.push(&[7; 12]));
        assert_eq!(head.len(), 16);
        assert!(!head.push(b"x"));
        assert_eq!(&head.as_slice()[..4], b"$\x00\x05\xdc");
        assert_eq!(&head.as_slice()[4..], &[7; 12]);
    }
}
