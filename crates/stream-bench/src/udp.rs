//! The UDP side of the load client: a few receiver threads, each polling (epoll through `mio`)
//! the RTP sockets of many sessions and draining every ready socket with `recvmmsg`, so a
//! thousand sessions of two tracks cost a few threads and about one system call per burst.
//!
//! Sessions hand their RTP socket to a thread with [`ReceiverHandle::add`] before PLAY; at the
//! end of a step [`UdpReceivers::finish`] stops counting and returns every track's statistics.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use crate::stats::{micros_histogram, MicrosHistogram, TrackStats};

/// Datagrams per `recvmmsg` call: a video frame of a 2 Mbit/s stream is a burst of ~10 packets,
/// so 32 drains a socket in one call; larger only grows the per-thread buffer.
const RECV_BATCH: usize = 32;
/// Room per datagram; RTP over loopback from the servers here stays under 1,500 bytes.
const DATAGRAM_BYTES: usize = 2048;
/// Kernel receive buffer per RTP socket, so a receiver thread that is descheduled for a few
/// milliseconds on a busy 2-core machine does not turn into "loss".
const SOCKET_RECV_BUFFER: libc::c_int = 512 * 1024;
const WAKER: Token = Token(usize::MAX);
/// Pause between passes over the ready sockets (arrival times are the kernel's receive
/// timestamps, so the pause never shows in lateness or time to first packet). On loopback the kernel delivers a datagram in
/// the *sender's* system call, and waking a receiver blocked in `epoll_wait` is then charged to
/// the server under test (a third of its CPU at 1,000 UDP sessions). A receiver that reads on a
/// short timer, like a player draining its sockets once per video frame, is not asleep on the
/// sockets when packets arrive, so the server is measured for sending, as it would be on a real
/// network where that wake-up happens on the client's machine. 5 ms adds at most 5 ms to the
/// 5 ms only bounds the socket buffer a pass must drain.
const RECEIVE_INTERVAL: Duration = Duration::from_millis(5);

/// Which track of which session a socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackKey {
    pub session: usize,
    pub track: usize,
}

enum Command {
    Add {
        socket: UdpSocket,
        key: TrackKey,
        clock_rate: u32,
    },
    Finish {
        reply: mpsc::Sender<ReceiverReport>,
    },
    Exit,
}

/// What one thread measured.
pub struct ReceiverReport {
    pub tracks: Vec<(TrackKey, TrackStats)>,
    pub lateness: MicrosHistogram,
}

/// A cloneable handle to one receiver thread.
#[derive(Clone)]
pub struct ReceiverHandle {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl ReceiverHandle {
    /// Starts counting packets arriving on `socket` as track `key`.
    pub fn add(&self, socket: UdpSocket, key: TrackKey, clock_rate: u32) -> io::Result<()> {
        self.commands
            .send(Command::Add {
                socket,
                key,
                clock_rate,
            })
            .map_err(|_| io::Error::other("UDP receiver thread has stopped"))?;
        self.waker.wake()
    }
}

/// The receiver threads of one step.
pub struct UdpReceivers {
    handles: Vec<ReceiverHandle>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpReceivers {
    /// Starts `n_threads` receivers whose arrival times count from `epoch`; every delivered
    /// RTP byte is also added to `delivered_bytes`.
    pub fn start(
        n_threads: usize,
        epoch: Instant,
        delivered_bytes: Arc<AtomicU64>,
    ) -> io::Result<UdpReceivers> {
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for index in 0..n_threads.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = mpsc::channel();
            let bytes = delivered_bytes.clone();
            let thread = std::thread::Builder::new()
                .name(format!("bench-udp-{index}"))
                .spawn(move || receive_loop(poll, rx, epoch, bytes))?;
            handles.push(ReceiverHandle {
                commands: tx,
                waker,
            });
            threads.push(thread);
        }
        Ok(UdpReceivers { handles, threads })
    }

    /// The thread that session `index` should use.
    pub fn handle_for(&self, index: usize) -> ReceiverHandle {
        // `handles` is never empty: `start` makes at least one.
        self.handles[index % self.handles.len()].clone()
    }

    /// Stops counting, closes the sockets and returns every track's statistics.
    pub fn finish(self) -> ReceiverReport {
        let mut report = ReceiverReport {
            tracks: Vec::new(),
            lateness: micros_histogram(),
        };
        for handle in &self.handles {
            let (tx, rx) = mpsc::channel();
            if handle.commands.send(Command::Finish { reply: tx }).is_err()
                || handle.waker.wake().is_err()
            {
                continue;
            }
            if let Ok(part) = rx.recv_timeout(Duration::from_secs(10)) {
                report.tracks.extend(part.tracks);
                let _ = report.lateness.add(&part.lateness);
            }
        }
        for handle in &self.handles {
            let _ = handle.commands.send(Command::Exit);
            let _ = handle.waker.wake();
        }
        for thread in self.threads {
            let _ = thread.join();
        }
        report
    }
}

/// Binds an (even RTP, odd RTCP) pair of loopback sockets, as RFC 3550 §11 asks of ports.
pub fn bind_client_pair(ip: std::net::IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    const ATTEMPTS: usize = 200;
    for _ in 0..ATTEMPTS {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
            set_recv_buffer(&rtp);
            enable_receive_timestamps(&rtp);
            return Ok((rtp, rtcp));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free even/odd UDP port pair after {ATTEMPTS} attempts"),
    ))
}

/// Asks the kernel to stamp each datagram with its arrival time (`SO_TIMESTAMPNS`), so arrival
/// is measured when the packet reached the socket, not when a receiver thread got to it.
fn enable_receive_timestamps(socket: &UdpSocket) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            std::ptr::from_ref(&on).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
}

fn set_recv_buffer(socket: &UdpSocket) {
    let size = SOCKET_RECV_BUFFER;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&size).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
}

struct Slot {
    socket: mio::net::UdpSocket,
    key: TrackKey,
    stats: TrackStats,
}

fn receive_loop(
    mut poll: Poll,
    commands: mpsc::Receiver<Command>,
    epoch: Instant,
    delivered: Arc<AtomicU64>,
) {
    let mut events = Events::with_capacity(1024);
    let mut slots: Vec<Slot> = Vec::new();
    let mut lateness = micros_histogram();
    let mut batch = RecvBatch::new();
    loop {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(200))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %e, "UDP receiver poll failed");
            return;
        }
        for event in &events {
            if event.token() == WAKER {
                continue;
            }
            let Some(slot) = slots.get_mut(event.token().0) else {
                continue;
            };
            loop {
                let received = batch.receive(&slot.socket);
                if received == 0 {
                    break;
                }
                let now = Instant::now();
                let now_wall = std::time::SystemTime::now();
                let mut bytes = 0u64;
                for (packet, stamp) in batch.packets(received) {
                    // The kernel's wall-clock stamp, carried over to the monotonic clock; the
                    // read time when a datagram came without one.
                    let arrival = stamp
                        .and_then(|at| now_wall.duration_since(at).ok())
                        .and_then(|age| now.checked_sub(age))
                        .unwrap_or(now);
                    let arrival_us =
                        u64::try_from(arrival.saturating_duration_since(epoch).as_micros())
                            .unwrap_or(u64::MAX);
                    slot.stats
                        .on_packet(packet, arrival, arrival_us, &mut lateness);
                    bytes += u64::try_from(packet.len()).unwrap_or(0);
                }
                delivered.fetch_add(bytes, Ordering::Relaxed);
                if received < RECV_BATCH {
                    break;
                }
            }
        }
        std::thread::sleep(RECEIVE_INTERVAL);
        // Commands after packets, so packets already queued when Finish arrives still count.
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Add {
                    socket,
                    key,
                    clock_rate,
                } => {
                    if socket.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let mut socket = mio::net::UdpSocket::from_std(socket);
                    let token = Token(slots.len());
                    if poll
                        .registry()
                        .register(&mut socket, token, Interest::READABLE)
                        .is_ok()
                    {
                        slots.push(Slot {
                            socket,
                            key,
                            stats: TrackStats::new(clock_rate),
                        });
                    }
                }
                Command::Finish { reply } => {
                    let tracks = slots.drain(..).map(|s| (s.key, s.stats)).collect();
                    let report = ReceiverReport {
                        tracks,
                        lateness: std::mem::replace(&mut lateness, micros_histogram()),
                    };
                    let _ = reply.send(report);
                }
                Command::Exit => return,
            }
        }
    }
}

/// Room for one `SCM_TIMESTAMPNS` control message (CMSG_SPACE of a timespec is 32 bytes),
/// aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct TimestampControl([u8; 64]);

/// Buffers and headers for one `recvmmsg` call, allocated once per thread and reused.
struct RecvBatch {
    buffers: Vec<[u8; DATAGRAM_BYTES]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    controls: Vec<TimestampControl>,
    lengths: [usize; RECV_BATCH],
    stamps: [Option<std::time::SystemTime>; RECV_BATCH],
}

impl RecvBatch {
    fn new() -> RecvBatch {
        let mut buffers = vec![[0u8; DATAGRAM_BYTES]; RECV_BATCH];
        let iovecs = buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: DATAGRAM_BYTES,
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is a valid "no name, no control" header.
        let headers = (0..RECV_BATCH)
            .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
            .collect();
        RecvBatch {
            buffers,
            iovecs,
            headers,
            controls: vec![TimestampControl([0; 64]); RECV_BATCH],
            lengths: [0; RECV_BATCH],
            stamps: [None; RECV_BATCH],
        }
    }

    /// Receives up to `RECV_BATCH` datagrams without blocking; 0 when none is waiting.
    fn receive(&mut self, socket: &mio::net::UdpSocket) -> usize {
        // Re-point every header at its iovec and every iovec at its buffer: cheap, and it keeps
        // the pointers right even though the struct may have moved since `new`.
        for (((buffer, iov), header), control) in self
            .buffers
            .iter_mut()
            .zip(self.iovecs.iter_mut())
            .zip(self.headers.iter_mut())
            .zip(self.controls.iter_mut())
        {
            iov.iov_base = buffer.as_mut_ptr().cast();
            iov.iov_len = DATAGRAM_BYTES;
            header.msg_hdr.msg_iov = std::ptr::from_mut(iov);
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = control.0.len();
            header.msg_len = 0;
        }
        let vlen = libc::c_uint::try_from(self.headers.len()).unwrap_or(1);
        // SAFETY: every header points at one live iovec over a live buffer of the stated size;
        // the kernel writes at most that much and sets msg_len.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            return 0; // -1: EAGAIN (drained) or an error we cannot act on; both end the drain.
        };
        for ((length, stamp), header) in self
            .lengths
            .iter_mut()
            .zip(self.stamps.iter_mut())
            .zip(&self.headers)
            .take(n)
        {
            *length = usize::try_from(header.msg_len)
                .unwrap_or(0)
                .min(DATAGRAM_BYTES);
            *stamp = receive_timestamp(&header.msg_hdr);
        }
        n
    }

    /// The datagrams received, with the kernel's arrival stamp of each.
    fn packets(
        &self,
        received: usize,
    ) -> impl Iterator<Item = (&[u8], Option<std::time::SystemTime>)> {
        self.buffers
            .iter()
            .zip(&self.lengths)
            .zip(&self.stamps)
            .take(received)
            .filter_map(|((buffer, &len), stamp)| Some((buffer.get(..len)?, *stamp)))
    }
}

/// The `SCM_TIMESTAMPNS` arrival time the kernel attached to a received message, if any.
fn receive_timestamp(message: &libc::msghdr) -> Option<std::time::SystemTime> {
    // SAFETY: `message` was filled by recvmmsg: its control pointer and (kernel-updated) length
    // describe our control buffer, and the CMSG_* macros stay within that length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(message);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let spec: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let secs = u64::try_from(spec.tv_sec).ok()?;
                let nanos = u32::try_from(spec.tv_nsec).ok()?;
                return std::time::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
            }
            cmsg = libc::CMSG_NXTHDR(message, cmsg);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_count_packets_from_a_socket() {
        let bytes = Arc::new(AtomicU64::new(0));
        let receivers = UdpReceivers::start(1, Instant::now(), bytes.clone()).unwrap();
        let (rtp, _rtcp) = bind_client_pair("127.0.0.1".parse().unwrap()).unwrap();
        let target = rtp.local_addr().unwrap();
        assert_eq!(target.port() % 2, 0);
        let key = TrackKey {
            session: 3,
            track: 1,
        };
        receivers.handle_for(3).add(rtp, key, 90_000).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for seq in [1u16, 2, 4] {
            let mut p = vec![0x80, 96];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&[0u8; 8 + 88]);
            sender.send_to(&p, target).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        let report = receivers.finish();
        assert_eq!(report.tracks.len(), 1);
        let (got_key, stats) = &report.tracks[0];
        assert_eq!(*got_key, key);
        assert_eq!((stats.packets, stats.lost()), (3, 1));
        assert_eq!(bytes.load(Ordering::Relaxed), 300);
        assert_eq!(report.lateness.len(), 3);
    }
}
