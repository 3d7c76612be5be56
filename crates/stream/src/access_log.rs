//! The access log in the old server's W3C format (`StreamingServer.log`), one line per session
//! when it ends, so log analysers written for QuickTime/Darwin Streaming Server read it as is.
//! Fields are separated by spaces; an empty field is `-`, and text fields are percent-encoded
//! so they never contain a space.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::error::StreamError;

/// The `#Fields:` line, in the order of the old server's access log module.
pub const FIELDS: &str = "c-ip date time c-dns cs-uri-stem c-starttime x-duration c-rate c-status c-playerid \
c-playerversion c-playerlanguage cs(User-Agent) c-os c-osversion c-cpu filelength filesize avgbandwidth protocol \
transport audiocodec videocodec sc-bytes cs-bytes c-bytes s-pkts-sent c-pkts-received c-pkts-lost-client \
c-buffercount c-totalbuffertime c-quality s-ip s-dns s-totalclients s-cpu-util cs-uri-query c-username sc(Realm)";

/// What one finished session contributes to the log.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub client_ip: IpAddr,
    pub ended_at: SystemTime,
    pub uri_stem: String,
    pub start_position: Duration,
    pub duration: Duration,
    pub user_agent: Option<String>,
    pub file_length: Duration,
    pub file_size: u64,
    pub transport: &'static str,
    pub audio_codec: Option<String>,
    pub video_codec: Option<String>,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    pub packets_lost: i64,
    pub server_ip: IpAddr,
    pub total_clients: usize,
    /// The directory user who set the session up (`c-username`), if the folder required one.
    pub username: Option<String>,
}

impl AccessRecord {
    /// The log line, without its newline.
    pub fn line(&self) -> String {
        let ended = OffsetDateTime::from(self.ended_at);
        let secs = self.duration.as_secs_f64();
        let avg_bandwidth = if secs > 0.0 {
            (self.bytes_sent as f64 * 8.0 / secs) as u64
        } else {
            0
        };
        // c-quality: percent of packets that arrived, as the client reported.
        let quality = if self.packets_sent > 0 {
            let lost = u64::try_from(self.packets_lost.max(0))
                .unwrap_or(0)
                .min(self.packets_sent);
            100 - lost * 100 / self.packets_sent
        } else {
            100
        };
        let fields: Vec<String> = vec![
            self.client_ip.to_string(),
            format!(
                "{:04}-{:02}-{:02}",
                ended.year(),
                u8::from(ended.month()),
                ended.day()
            ),
            format!(
                "{:02}:{:02}:{:02}",
                ended.hour(),
                ended.minute(),
                ended.second()
            ),
            "-".into(),
            text_field(Some(&self.uri_stem)),
            self.start_position.as_secs().to_string(),
            self.duration.as_secs().to_string(),
            "1".into(),
            "200".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            text_field(self.user_agent.as_deref()),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("{:.2}", self.file_length.as_secs_f64()),
            self.file_size.to_string(),
            avg_bandwidth.to_string(),
            "RTP".into(),
            self.transport.into(),
            text_field(self.audio_codec.as_deref()),
            text_field(self.video_codec.as_deref()),
            self.bytes_sent.to_string(),
            "-".into(),
            "-".into(),
            self.packets_sent.to_string(),
            "-".into(),
            self.packets_lost.max(0).to_string(),
            "-".into(),
            "-".into(),
            quality.to_string(),
            self.server_ip.to_string(),
            "-".into(),
            self.total_clients.to_string(),
            "-".into(),
            "-".into(),
            text_field(self.username.as_deref()),
            "-".into(),
        ];
        fields.join(" ")
    }
}

/// A text field with spaces, controls, `%` and non-ASCII bytes percent-encoded, so the line
/// stays space-separated; `/` and `:` stay readable as in the old server's log.
fn text_field(value: Option<&str>) -> String {
    match value {
        None | Some("") => "-".into(),
        Some(text) => {
            let mut out = String::with_capacity(text.len());
            for byte in text.bytes() {
                if byte.is_ascii_graphic() && byte != b'%' {
                    out.push(char::from(byte));
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            out
        }
    }
}

/// Size at which the log rolls over, as the old server's `request_logfile_size` (10240000).
pub const ROLL_AT_BYTES: u64 = 10_240_000;
/// Rolled files kept: `stream-access.log.1` (newest) to `.5`.
const ROLLED_FILES_KEPT: u32 = 5;

/// The open log file.
pub struct AccessLog {
    path: PathBuf,
    roll_at_bytes: u64,
    file: Mutex<OpenLog>,
}

struct OpenLog {
    file: File,
    bytes: u64,
}

impl AccessLog {
    /// Opens (appending) `path`, writing the W3C header when the file is new or empty.
    pub fn open(path: &Path, now: SystemTime) -> Result<AccessLog, StreamError> {
        AccessLog::open_rolling_at(path, now, ROLL_AT_BYTES)
    }

    /// As [`AccessLog::open`], rolling the file over once it reaches `roll_at_bytes`.
    pub fn open_rolling_at(
        path: &Path,
        now: SystemTime,
        roll_at_bytes: u64,
    ) -> Result<AccessLog, StreamError> {
        let error = |source| StreamError::AccessLog {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let open = open_with_header(path, now, true).map_err(error)?;
        Ok(AccessLog {
            path: path.to_owned(),
            roll_at_bytes,
            file: Mutex::new(open),
        })
    }

    /// Appends one record; a failed write is logged, never fatal to streaming.
    pub fn write(&self, record: &AccessRecord) {
        let mut line = record.line();
        line.push('\n');
        let mut open = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if open.bytes >= self.roll_at_bytes {
            match self.roll(record.ended_at) {
                Ok(fresh) => *open = fresh,
                Err(error) => {
                    tracing::warn!(target: "serval_stream::access", path = %self.path.display(), %error, "cannot roll access log")
                }
            }
        }
        match open.file.write_all(line.as_bytes()) {
            Ok(()) => open.bytes += u64::try_from(line.len()).unwrap_or(0),
            Err(error) => {
                tracing::warn!(target: "serval_stream::access", path = %self.path.display(), %error, "cannot write access log")
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shifts `log.N` to `log.N+1` (dropping the oldest), moves the log to `log.1`, and starts
    /// a new file with its header.
    fn roll(&self, now: SystemTime) -> std::io::Result<OpenLog> {
        let numbered = |n: u32| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..ROLLED_FILES_KEPT).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        open_with_header(&self.path, now, false)
    }
}

fn open_with_header(path: &Path, now: SystemTime, startup: bool) -> std::io::Result<OpenLog> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let started = OffsetDateTime::from(now);
    let date = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        started.year(),
        u8::from(started.month()),
        started.day(),
        started.hour(),
        started.minute(),
        started.second()
    );
    let mut header = String::new();
    if bytes == 0 {
        header.push_str(&format!(
            "#Software: Serval {}\n#Version: 1.0\n#Date: {date}\n#Remark: all time values are in GMT.\n#Fields: {FIELDS}\n",
            env!("CARGO_PKG_VERSION")
        ));
    }
    if startup {
        header.push_str(&format!("#Remark: Streaming beginning STARTUP {date}\n"));
    }
    file.write_all(header.as_bytes())?;
    Ok(OpenLog {
        file,
        bytes: bytes + u64::try_from(header.len()).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            client_ip: "192.0.2.7".parse().unwrap(),
            ended_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            uri_stem: "/sub/my movie.mp4".into(),
            start_position: Duration::from_secs(4),
            duration: Duration::from_secs(10),
            user_agent: Some("Lavf/59.27.100".into()),
            file_length: Duration::from_secs(5),
            file_size: 1_000_000,
            transport: "UDP",
            audio_codec: Some("aac".into()),
            video_codec: Some("h264".into()),
            bytes_sent: 1_250_000,
            packets_sent: 1000,
            packets_lost: 10,
            server_ip: "192.0.2.1".parse().unwrap(),
            total_clients: 3,
            username: None,
        }
    }

    #[test]
    fn line_has_one_value_per_field() {
        let line = record().line();
        assert_eq!(line.split(' ').count(), FIELDS.split(' ').count());
        assert!(line.starts_with("192.0.2.7 2023-11-14 22:13:20 - /sub/my%20movie.mp4 4 10 1 200 - - - Lavf/59.27.100"), "{line}");
        assert!(line.contains(" 5.00 1000000 1000000 RTP UDP aac h264 1250000 - - 1000 - 10 - - 99 192.0.2.1 - 3 "), "{line}");
    }

    #[test]
    fn new_file_gets_the_w3c_header_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/stream-access.log");
        let log = AccessLog::open(&path, SystemTime::UNIX_EPOCH).unwrap();
        log.write(&record());
        drop(log);
        let log = AccessLog::open(&path, SystemTime::UNIX_EPOCH).unwrap();
        log.write(&record());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("#Fields: c-ip date time").count(), 1);
        assert_eq!(text.matches("#Software: Serval").count(), 1);
        assert_eq!(text.matches("STARTUP").count(), 2);
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2);
    }

    #[test]
    fn full_log_rolls_over_and_keeps_five() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream-access.log");
        let log = AccessLog::open_rolling_at(&path, SystemTime::UNIX_EPOCH, 1000).unwrap();
        for _ in 0..40 {
            log.write(&record());
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(
            current.starts_with("#Software: Serval"),
            "a rolled file starts with the header"
        );
        assert!(current.len() < 1400);
        assert!(dir.path().join("stream-access.log.1").exists());
        assert!(dir.path().join("stream-access.log.5").exists());
        assert!(!dir.path().join("stream-access.log.6").exists());
    }
}
