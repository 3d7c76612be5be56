//! A small RTSP load client: N concurrent sessions of one URL over UDP or TCP, reporting time
//! from PLAY to the first RTP packet, delivered bitrate, and the server's CPU and RSS (read from
//! /proc of the server's pid). Traffic goes to the URL given, which must be on this machine.
//!
//! `cargo run --release -p serval-stream --example load -- <rtsp-url> <sessions> <udp|tcp> <seconds> <server-pid>`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

struct Outcome {
    play_to_first_packet: Option<Duration>,
    packets: u64,
    bytes: u64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: load <rtsp-url> <sessions> <udp|tcp> <seconds> <server-pid>";
    let url = args.get(1).expect(usage).clone();
    let sessions: usize = args.get(2).expect(usage).parse().expect(usage);
    let tcp = args.get(3).expect(usage) == "tcp";
    let seconds: u64 = args.get(4).expect(usage).parse().expect(usage);
    let pid: u32 = args.get(5).expect(usage).parse().expect(usage);
    let host = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .expect("host")
        .to_owned();
    let addr: SocketAddr = host.parse().expect("numeric host:port");
    assert!(
        addr.ip().is_loopback(),
        "load tests only target this machine"
    );

    let rss_idle = rss_kib(pid);
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..sessions {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            run_session(addr, &url, tcp, Duration::from_secs(seconds), index).await
        }));
        // A gentle ramp, as players arrive.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Sample RSS while everyone plays.
    tokio::time::sleep(Duration::from_secs(seconds / 2 + 1)).await;
    let rss_loaded = rss_kib(pid);
    let mut outcomes = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(error)) => eprintln!("session failed: {error}"),
            Err(error) => eprintln!("task failed: {error}"),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu_secs = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
    let mut firsts: Vec<Duration> = outcomes
        .iter()
        .filter_map(|o| o.play_to_first_packet)
        .collect();
    firsts.sort();
    let pick = |q: f64| {
        firsts
            .get(((firsts.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let packets: u64 = outcomes.iter().map(|o| o.packets).sum();
    let gbits = bytes as f64 * 8.0 / 1e9;
    println!(
        "transport={} sessions={} ok={} wall={wall:.1}s",
        if tcp { "tcp" } else { "udp" },
        sessions,
        outcomes.len()
    );
    println!(
        "PLAY->first packet: p50={:.1}ms p99={:.1}ms max={:.1}ms",
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        firsts.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "delivered: {:.1} Mbit/s, {packets} packets, {bytes} bytes",
        bytes as f64 * 8.0 / wall / 1e6
    );
    println!(
        "server CPU: {cpu_secs:.2} s over {wall:.1} s = {:.1}% of one core; {:.2} CPU-s per delivered Gbit",
        cpu_secs / wall * 100.0,
        if gbits > 0.0 { cpu_secs / gbits } else { 0.0 }
    );
    println!(
        "server RSS: idle {} KiB, loaded {} KiB, {:.1} KiB per session",
        rss_idle,
        rss_loaded,
        (rss_loaded.saturating_sub(rss_idle)) as f64 / sessions.max(1) as f64
    );
}

async fn run_session(
    addr: SocketAddr,
    url: &str,
    tcp: bool,
    play_for: Duration,
    index: usize,
) -> Result<Outcome, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    let describe = request(
        &mut stream,
        &mut buffer,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    )
    .await?;
    let n_tracks = describe.matches("m=").count().max(1);
    let mut udp_sockets = Vec::new();
    let mut session_id = String::new();
    for track in 0..n_tracks {
        let transport = if tcp {
            format!(
                "RTP/AVP/TCP;unicast;interleaved={}-{}",
                track * 2,
                track * 2 + 1
            )
        } else {
            let rtp = UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let port = rtp.local_addr().map_err(|e| e.to_string())?.port();
            udp_sockets.push(rtp);
            format!("RTP/AVP;unicast;client_port={port}-{}", port + 1)
        };
        let session_header = if session_id.is_empty() {
            String::new()
        } else {
            format!("Session: {session_id}\r\n")
        };
        let setup = request(
            &mut stream,
            &mut buffer,
            &format!("SETUP {url}/trackID={} RTSP/1.0\r\nCSeq: {}\r\n{session_header}Transport: {transport}\r\n\r\n", track + 1, track + 2),
        )
        .await?;
        if session_id.is_empty() {
            session_id = setup
                .lines()
                .find_map(|l| l.strip_prefix("Session: "))
                .and_then(|v| v.split(';').next())
                .ok_or_else(|| format!("session {index}: no Session in {setup}"))?
                .to_owned();
        }
    }
    let play_sent = Instant::now();
    request(
        &mut stream,
        &mut buffer,
        &format!(
            "PLAY {url}/ RTSP/1.0\r\nCSeq: 90\r\nSession: {session_id}\r\nRange: npt=0-\r\n\r\n"
        ),
    )
    .await?;
    let deadline = play_sent + play_for;
    let mut outcome = Outcome {
        play_to_first_packet: None,
        packets: 0,
        bytes: 0,
    };
    if tcp {
        let mut chunk = vec![0u8; 65536];
        while Instant::now() < deadline {
            let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk)).await;
            let Ok(Ok(n)) = read else { break };
            if n == 0 {
                break;
            }
            outcome
                .play_to_first_packet
                .get_or_insert(play_sent.elapsed());
            buffer.extend_from_slice(&chunk[..n]);
            // Count whole `$` frames.
            while buffer.len() >= 4 && buffer[0] == b'$' {
                let len = 4 + usize::from(u16::from_be_bytes([buffer[2], buffer[3]]));
                if buffer.len() < len {
                    break;
                }
                outcome.packets += 1;
                outcome.bytes += (len - 4) as u64;
                buffer.drain(..len);
            }
        }
    } else {
        let mut receivers = Vec::new();
        for socket in udp_sockets {
            receivers.push(tokio::spawn(async move {
                let mut datagram = vec![0u8; 2048];
                let mut first = None;
                let (mut packets, mut bytes) = (0u64, 0u64);
                while let Ok(Ok(n)) =
                    tokio::time::timeout_at(deadline.into(), socket.recv(&mut datagram)).await
                {
                    first.get_or_insert(Instant::now());
                    packets += 1;
                    bytes += n as u64;
                }
                (first, packets, bytes)
            }));
        }
        for receiver in receivers {
            if let Ok((first, packets, bytes)) = receiver.await {
                if let Some(first) = first {
                    let since = first.duration_since(play_sent);
                    outcome.play_to_first_packet = Some(
                        outcome
                            .play_to_first_packet
                            .map_or(since, |d: Duration| d.min(since)),
                    );
                }
                outcome.packets += packets;
                outcome.bytes += bytes;
            }
        }
    }
    let _ = stream
        .write_all(
            format!("TEARDOWN {url}/ RTSP/1.0\r\nCSeq: 99\r\nSession: {session_id}\r\n\r\n")
                .as_bytes(),
        )
        .await;
    Ok(outcome)
}

/// Sends a request and returns the response head and body, skipping interleaved frames.
async fn request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    text: &str,
) -> Result<String, String> {
    stream
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut chunk = vec![0u8; 16384];
    loop {
        while buffer.len() >= 4 && buffer[0] == b'$' {
            let len = 4 + usize::from(u16::from_be_bytes([buffer[2], buffer[3]]));
            if buffer.len() < len {
                break;
            }
            buffer.drain(..len);
        }
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
                buffer.drain(..end + 4 + length);
                if !head.starts_with("RTSP/1.0 200") {
                    return Err(head);
                }
                return Ok(format!("{head}\r\n\r\n{body}"));
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .map_err(|_| "response timeout".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
