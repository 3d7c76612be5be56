//! Sending a tick's datagrams in as few system calls and kernel passes as possible.
//!
//! Two Linux techniques, together:
//! - `sendmmsg(2)`: many messages, to many clients, in one call.
//! - UDP GSO (`UDP_SEGMENT`, Linux 4.18+): consecutive datagrams to one client of equal size
//!   (the fragments of one video frame; only the last may be shorter) go as one message the
//!   kernel cuts into datagrams after routing, so the UDP/IP send path runs once per frame
//!   instead of once per packet.
//!
//! Each datagram is two `iovec`s, the session's RTP header and the payload shared by every
//! session, so nothing is copied before the kernel. tokio's `UdpSocket` has neither batch nor
//! segmented sends, and `quinn-udp` sends one destination per call, so the calls are made here
//! through `libc`, inside tokio's readiness protocol (`try_io`), waiting for writability when
//! the socket buffer is full. Other systems send one datagram per call.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::wire::Datagram;

/// Messages per system call; the kernel caps a call at `UIO_MAXIOV` (1024).
const MAX_MESSAGES: usize = 64;
/// Datagrams in one segmented message: the kernel's `UDP_MAX_SEGMENTS` is 64 (128 since 6.x).
const MAX_SEGMENTS: usize = 64;
/// Bytes in one segmented message: a UDP payload is at most 65,507 bytes over IPv4.
const MAX_SEGMENTED_BYTES: usize = 65_000;

/// Cleared, once for the process, when the kernel refuses a segmented message (a kernel
/// before 4.18, or a route whose device cannot take it); sends go on unsegmented.
static SEGMENTATION_WORKS: AtomicBool = AtomicBool::new(cfg!(target_os = "linux"));

/// Sends every datagram, in order. A datagram the kernel refuses (an unreachable client) is
/// skipped, never retried: RTP over UDP tolerates loss and RTCP reports it. Returns the
/// number of datagrams sent.
pub async fn send_all(socket: &UdpSocket, datagrams: &[Datagram]) -> usize {
    let mut next = 0usize;
    let mut sent = 0usize;
    while let Some(rest) = datagrams.get(next..).filter(|rest| !rest.is_empty()) {
        let segment = SEGMENTATION_WORKS.load(Ordering::Relaxed);
        let groups = plan_messages(rest, segment, MAX_MESSAGES);
        match socket.try_io(Interest::WRITABLE, || send_messages(socket, rest, &groups)) {
            Ok(0) => next += groups.first().copied().unwrap_or(1),
            Ok(messages) => {
                let covered: usize = groups.iter().take(messages).sum();
                next += covered;
                sent += covered;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    break;
                }
            }
            Err(error)
                if segment
                    && groups.first().is_some_and(|n| *n > 1)
                    && refuses_segmentation(&error) =>
            {
                // The kernel or the route cannot segment: stop segmenting and resend the same
                // datagrams one by one.
                SEGMENTATION_WORKS.store(false, Ordering::Relaxed);
                tracing::info!(target: "serval_stream::net", %error,
                               "UDP segmentation offload refused; sending datagrams one by one");
            }
            // The first message of the batch failed: drop its datagrams and go on.
            Err(_) => next += groups.first().copied().unwrap_or(1),
        }
    }
    sent
}

/// The errors a kernel without UDP GSO, or a device that cannot take it, answers a
/// segmented message with (others, like a firewall's EPERM, concern the destination).
fn refuses_segmentation(error: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(
            error.raw_os_error(),
            Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = error;
        false
    }
}

/// Splits the front of `datagrams` into at most `max_messages` messages: the number of
/// datagrams each carries. With `segment`, a message takes a run of datagrams to one
/// destination whose sizes equal the first's, the last of the run possibly shorter.
fn plan_messages(datagrams: &[Datagram], segment: bool, max_messages: usize) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut index = 0usize;
    while groups.len() < max_messages {
        let Some(first) = datagrams.get(index) else {
            break;
        };
        let size = first.len();
        let mut count = 1usize;
        let mut bytes = size;
        if segment && size > 0 {
            while let Some(next) = datagrams.get(index + count) {
                let fits = next.to == first.to
                    && next.len() <= size
                    && next.len() > 0
                    && count < MAX_SEGMENTS
                    && bytes + next.len() <= MAX_SEGMENTED_BYTES;
                if !fits {
                    break;
                }
                count += 1;
                bytes += next.len();
                if next.len() < size {
                    // Only the last segment may be shorter.
                    break;
                }
            }
        }
        groups.push(count);
        index += count;
    }
    groups
}

/// One `sendmmsg` call: message `i` carries the next `groups[i]` datagrams of `datagrams`
/// (segmented when more than one). Returns how many messages the kernel took.
#[cfg(target_os = "linux")]
fn send_messages(
    socket: &UdpSocket,
    datagrams: &[Datagram],
    groups: &[usize],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    /// Control buffer for one `UDP_SEGMENT` message, aligned for `cmsghdr`.
    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    struct SegmentControl([u8; 32]);

    let total: usize = groups.iter().sum();
    let Some(covered) = datagrams.get(..total) else {
        return Ok(0);
    };
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(covered.len() * 2);
    for datagram in covered {
        for part in [datagram.head.as_slice(), &datagram.body[..]] {
            if !part.is_empty() {
                iovecs.push(libc::iovec {
                    iov_base: part.as_ptr().cast_mut().cast(),
                    iov_len: part.len(),
                });
            }
        }
    }
    let mut addresses: Vec<socket2::SockAddr> = Vec::with_capacity(groups.len());
    let mut controls: Vec<SegmentControl> = vec![SegmentControl([0; 32]); groups.len()];
    let mut spans: Vec<(usize, usize, Option<u16>)> = Vec::with_capacity(groups.len());
    let (mut datagram_index, mut iovec_index) = (0usize, 0usize);
    for count in groups {
        let members = covered
            .get(datagram_index..datagram_index + count)
            .unwrap_or(&[]);
        let Some(first) = members.first() else {
            break;
        };
        addresses.push(socket2::SockAddr::from(first.to));
        let parts: usize = members
            .iter()
            .map(|d| usize::from(!d.head.is_empty()) + usize::from(!d.body.is_empty()))
            .sum();
        let segment_size = (*count > 1)
            .then(|| u16::try_from(first.len()).ok())
            .flatten();
        spans.push((iovec_index, parts, segment_size));
        datagram_index += count;
        iovec_index += parts;
    }
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(spans.len());
    for ((address, control), (start, parts, segment_size)) in
        addresses.iter().zip(controls.iter_mut()).zip(spans.iter())
    {
        let Some(message_iovecs) = iovecs.get_mut(*start..start + parts) else {
            break;
        };
        // SAFETY: an all-zero `mmsghdr` is a valid value (null pointers, zero lengths); the
        // fields set below point into `addresses`, `iovecs` and `controls`, which are not
        // resized from here on and outlive the call.
        let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        header.msg_hdr.msg_name = address.as_ptr().cast_mut().cast();
        header.msg_hdr.msg_namelen = address.len();
        header.msg_hdr.msg_iov = message_iovecs.as_mut_ptr();
        header.msg_hdr.msg_iovlen = message_iovecs.len();
        if let Some(size) = segment_size {
            header.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE only computes a size.
            let space = unsafe { libc::CMSG_SPACE(2) };
            header.msg_hdr.msg_controllen = usize::try_from(space).unwrap_or(0);
            // SAFETY: `msg_control` points at 32 aligned bytes, more than CMSG_SPACE(2) (24),
            // so the first header and its two data bytes lie inside the buffer.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&header.msg_hdr);
                if !cmsg.is_null() {
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                    (*cmsg).cmsg_len = usize::try_from(libc::CMSG_LEN(2)).unwrap_or(0);
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), *size);
                }
            }
        }
        headers.push(header);
    }
    let count = u32::try_from(headers.len()).unwrap_or(0);
    // SAFETY: `headers` holds `count` initialised entries whose pointers are valid for the
    // duration of the call; the kernel only reads them (and writes `msg_len`).
    let result = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            count,
            libc::MSG_DONTWAIT,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(result).unwrap_or(0))
}

/// Elsewhere: one `send_to` per datagram (groups are single datagrams without segmentation).
#[cfg(not(target_os = "linux"))]
fn send_messages(
    socket: &UdpSocket,
    datagrams: &[Datagram],
    groups: &[usize],
) -> io::Result<usize> {
    let mut sent = 0usize;
    let mut whole = Vec::new();
    for datagram in datagrams.iter().take(groups.len()) {
        whole.clear();
        whole.extend_from_slice(datagram.head.as_slice());
        whole.extend_from_slice(&datagram.body);
        match socket.try_send_to(&whole, datagram.to) {
            Ok(_) => sent += 1,
            Err(error) if sent == 0 => return Err(error),
            Err(_) => break,
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Head;
    use bytes::Bytes;
    use std::net::SocketAddr;

    fn datagram(to: SocketAddr, header: &[u8], body: Vec<u8>) -> Datagram {
        let mut head = Head::default();
        head.push(header);
        Datagram {
            to,
            head,
            body: Bytes::from(body),
        }
    }

    #[tokio::test]
    async fn a_batch_reaches_several_destinations_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut datagrams = Vec::new();
        for i in 0..150u8 {
            let to = if i % 3 == 0 {
                second.local_addr().unwrap()
            } else {
                first.local_addr().unwrap()
            };
            datagrams.push(datagram(to, &[i, i], vec![i; 100 + usize::from(i)]));
        }
        assert_eq!(send_all(&sender, &datagrams).await, 150);
        let mut buf = [0u8; 512];
        let (n, _) = second.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, buf[0], buf[2]), (102, 0, 0));
        let (n, _) = second.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, buf[0], buf[2]), (105, 3, 3));
        let (n, _) = first.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, buf[0], buf[2]), (103, 1, 1));
    }

    /// Equal-size fragments of a frame go as one segmented message and arrive as separate
    /// datagrams, each with its own head, the shorter last one included.
    #[tokio::test]
    async fn equal_fragments_arrive_as_separate_datagrams() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = receiver.local_addr().unwrap();
        let mut datagrams: Vec<Datagram> = (0..5u8)
            .map(|i| datagram(to, &[0x80, i], vec![i; 1400]))
            .collect();
        datagrams.push(datagram(to, &[0x80, 5], vec![5; 300]));
        datagrams.push(datagram(to, &[0x80, 6], vec![6; 1400]));
        if cfg!(target_os = "linux") {
            assert_eq!(plan_messages(&datagrams, true, MAX_MESSAGES), [6, 1]);
        }
        assert_eq!(send_all(&sender, &datagrams).await, 7);
        let mut buf = [0u8; 2048];
        for i in 0..7u8 {
            let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
            let expected = if i == 5 { 302 } else { 1402 };
            assert_eq!((n, buf[1], buf[2], buf[n - 1]), (expected, i, i, i));
        }
    }

    #[test]
    fn runs_break_at_other_destinations_and_size_changes() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5002".parse().unwrap();
        let sizes_and_targets = [
            (100, a),
            (100, a),
            (100, b),
            (200, b),
            (100, b),
            (100, b),
            (0, b),
        ];
        let datagrams: Vec<Datagram> = sizes_and_targets
            .iter()
            .map(|(size, to)| datagram(*to, &[], vec![0; *size]))
            .collect();
        assert_eq!(plan_messages(&datagrams, true, 64), [2, 1, 2, 1, 1]);
        assert_eq!(plan_messages(&datagrams, false, 64), [1; 7]);
        assert_eq!(plan_messages(&datagrams, true, 2), [2, 1]);
        let many: Vec<Datagram> = (0..100).map(|_| datagram(a, &[], vec![0; 1000])).collect();
        assert_eq!(plan_messages(&many, true, 64), [64, 36]);
    }
}
