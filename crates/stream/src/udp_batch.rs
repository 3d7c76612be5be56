//! Sending a tick's datagrams with one `sendmmsg(2)` call instead of one `sendto` each.
//!
//! tokio's `UdpSocket` has no batch send, and `quinn-udp` batches by GSO (equal-size segments
//! to one destination), which our mixed-size RTP packets are not; so the call is made here,
//! through `libc`, inside tokio's readiness protocol (`try_io`), and falls back to waiting
//! for writability when the socket buffer is full.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call; the kernel caps a call at `UIO_MAXIOV` (1024) and a tick of one
/// session rarely holds more than a few dozen.
const MAX_BATCH: usize = 64;

/// Sends every datagram, in order. A datagram the kernel refuses (an unreachable client) is
/// skipped, never retried: RTP over UDP tolerates loss and RTCP reports it. Returns the
/// number sent.
pub async fn send_all(socket: &UdpSocket, datagrams: &[(SocketAddr, Bytes)]) -> usize {
    let mut next = 0usize;
    let mut sent = 0usize;
    while let Some(rest) = datagrams.get(next..).filter(|rest| !rest.is_empty()) {
        let chunk = rest.get(..MAX_BATCH).unwrap_or(rest);
        match socket.try_io(Interest::WRITABLE, || send_mmsg(socket, chunk)) {
            Ok(0) => next += 1,
            Ok(count) => {
                next += count;
                sent += count;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    break;
                }
            }
            // The first datagram of the chunk failed: drop it and go on with the rest.
            Err(_) => next += 1,
        }
    }
    sent
}

/// One `sendmmsg` call over `chunk` (at most `MAX_BATCH`); the count the kernel took.
fn send_mmsg(socket: &UdpSocket, chunk: &[(SocketAddr, Bytes)]) -> io::Result<usize> {
    let addresses: Vec<socket2::SockAddr> = chunk
        .iter()
        .map(|(to, _)| socket2::SockAddr::from(*to))
        .collect();
    let mut iovecs: Vec<libc::iovec> = chunk
        .iter()
        .map(|(_, bytes)| libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(chunk.len());
    for (address, iovec) in addresses.iter().zip(iovecs.iter_mut()) {
        // SAFETY: an all-zero `mmsghdr` is a valid value (null pointers, zero lengths); the
        // fields set below point into `addresses` and `iovecs`, which outlive the call.
        let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        header.msg_hdr.msg_name = address.as_ptr().cast_mut().cast();
        header.msg_hdr.msg_namelen = address.len();
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
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

#[cfg(test)]
mod tests {
    use super::*;

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
            datagrams.push((to, Bytes::from(vec![i; 100 + usize::from(i)])));
        }
        assert_eq!(send_all(&sender, &datagrams).await, 150);
        let mut buf = [0u8; 512];
        let (n, _) = second.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, buf[0]), (100, 0));
        let (n, _) = second.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, buf[0]), (103, 3));
        let (n, _) = first.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, buf[0]), (101, 1));
    }
}
