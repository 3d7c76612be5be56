//! The queue on disk: one file per message, durable before the client hears 250.
//!
//! `.queue/X/ID.msg` holds (dot names: user names, which name the Maildirs beside it, never
//! start with a dot) the envelope as one JSON line, then the message. `X` is the ID's last
//! hex digit: 16 directories, as Postfix's hashed queues, so file creation in one directory
//! does not serialize every writer and a queue of 10,000 deferred messages is 16 small
//! directories instead of one with 20,000 entries. It is written to
//! `ID.msg.tmp` beside it, fsync'd, renamed and the directory fsync'd, so after `kill -9` a
//! message is either wholly there or was never acknowledged. (The temporary file is in the
//! same directory: a rename across directories also takes the file system's rename lock,
//! which showed in the kernel profile of `serval bench mail`.) Delivery progress lives in
//! `queue/ID.state` (attempts, next try, each recipient's outcome), replaced atomically the
//! same way, so a recipient delivered before a crash is not delivered again after it.
//! A message leaves the queue by unlinking both files.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RecipientStatus {
    #[default]
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RecipientState {
    pub status: RecipientStatus,
    /// The last reply or error for this recipient ("550 5.1.1 <x>: no such user").
    pub reply: Option<String>,
    /// Enhanced status code for the DSN ("5.1.1", "4.4.1").
    pub dsn_status: Option<String>,
    /// Where the last attempt went ("relay.example.com:587", "local").
    pub hop: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeliveryState {
    pub attempts: u32,
    /// Unix seconds of the next attempt (0: now).
    pub next_try: u64,
    pub last_attempt: u64,
    pub last_error: Option<String>,
    pub recipients: Vec<RecipientState>,
}

/// Directories of the queue under `data_dir/mail`.
#[derive(Debug, Clone)]
pub struct Spool {
    pub queue: PathBuf,
    pub tmp: PathBuf,
    /// Maildirs: `mailboxes/USER/{new,cur,tmp}`.
    pub mailboxes: PathBuf,
}

impl Spool {
    pub fn open(mail_dir: &Path) -> io::Result<Spool> {
        let spool = Spool {
            queue: mail_dir.join(".queue"),
            tmp: mail_dir.join(".tmp"),
            mailboxes: mail_dir.to_path_buf(),
        };
        fs::create_dir_all(&spool.queue)?;
        fs::create_dir_all(&spool.tmp)?;
        for digit in HASH_DIGITS.chars() {
            fs::create_dir_all(spool.queue.join(digit.to_string()))?;
        }
        spool.move_flat_files()?;
        Ok(spool)
    }

    /// Files of the flat layout of earlier versions (`.queue/ID.msg`) go to their
    /// directory; a rename within the file system, so nothing is lost halfway.
    fn move_flat_files(&self) -> io::Result<()> {
        let mut moved = false;
        for entry in fs::read_dir(&self.queue)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.split('.').next().unwrap_or("");
            if entry.file_type()?.is_file() && is_queue_id(id) {
                fs::rename(entry.path(), self.dir_of(id).join(&name))?;
                moved = true;
            }
        }
        if moved {
            for digit in HASH_DIGITS.chars() {
                sync_dir(&self.queue.join(digit.to_string()))?;
            }
            sync_dir(&self.queue)?;
        }
        Ok(())
    }

    fn dir_of(&self, id: &str) -> PathBuf {
        self.queue
            .join(id.get(id.len().saturating_sub(1)..).unwrap_or("0"))
    }

    fn message_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join(format!("{id}.msg"))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join(format!("{id}.state"))
    }

    /// Writes a new message durably.
    pub fn write(&self, id: &str, envelope: &Envelope, message: &[u8]) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(envelope)?;
        bytes.push(b'\n');
        bytes.extend_from_slice(message);
        self.write_durably(&self.message_path(id), &bytes)
    }

    pub fn write_state(&self, id: &str, state: &DeliveryState) -> io::Result<()> {
        self.write_durably(&self.state_path(id), &serde_json::to_vec(state)?)
    }

    fn write_durably(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(&self.queue))
    }

    /// Reads a queued message: its envelope and the message bytes.
    pub fn read(&self, id: &str) -> io::Result<(Envelope, Vec<u8>)> {
        let mut bytes = Vec::new();
        File::open(self.message_path(id))?.read_to_end(&mut bytes)?;
        parse_message_file(&bytes)
    }

    pub fn read_state(&self, id: &str) -> io::Result<Option<DeliveryState>> {
        match fs::read(self.state_path(id)) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a message that is done (delivered, bounced or deleted).
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.state_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::remove_file(self.message_path(id))?;
        sync_dir(&self.dir_of(id))
    }

    /// The queue as read from disk (no server running), oldest first.
    pub fn snapshot(&self) -> Vec<super::QueuedMessage> {
        let mut out = Vec::new();
        for id in self.list().unwrap_or_default() {
            let Ok((envelope, message)) = self.read(&id) else {
                continue;
            };
            let state = self.read_state(&id).ok().flatten().unwrap_or_default();
            let recipients: Vec<String> = envelope
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect();
            let pending = recipients
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    state
                        .recipients
                        .get(*i)
                        .is_none_or(|s| s.status == RecipientStatus::Pending)
                })
                .map(|(_, r)| r.clone())
                .collect();
            out.push(super::QueuedMessage {
                size: message.len() as u64,
                id,
                sender: envelope.sender,
                recipients,
                pending,
                received_at: envelope.received_at,
                attempts: state.attempts,
                next_try: state.next_try,
                last_error: state.last_error,
                in_flight: false,
            });
        }
        out.sort_by_key(|m| (m.received_at, m.id.clone()));
        out
    }

    /// IDs of every queued message, oldest name first. Leftovers in `tmp/` were never
    /// acknowledged and are removed.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for digit in HASH_DIGITS.chars() {
            for entry in fs::read_dir(self.queue.join(digit.to_string()))? {
                let name = entry?.file_name();
                let name = name.to_string_lossy();
                if let Some(id) = name.strip_suffix(".msg") {
                    if is_queue_id(id) {
                        ids.push(id.to_string());
                    }
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes half-written files (`*.tmp` in the queue, and anything in `tmp/`, where
    /// older versions wrote them): none was acknowledged.
    pub fn clean_tmp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            fs::remove_file(entry.path())?;
            removed += 1;
        }
        for digit in HASH_DIGITS.chars() {
            for entry in fs::read_dir(self.queue.join(digit.to_string()))? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// The queue's hashed directories, one per last hex digit of an ID.
const HASH_DIGITS: &str = "0123456789ABCDEF";

pub fn parse_message_file(bytes: &[u8]) -> io::Result<(Envelope, Vec<u8>)> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no envelope line"))?;
    let envelope: Envelope = serde_json::from_slice(&bytes[..nl])?;
    Ok((envelope, bytes[nl + 1..].to_vec()))
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new queue ID: time-ordered (microseconds) plus randomness, 16 upper-case hex digits.
pub fn new_queue_id(now_micros: u64) -> String {
    let random: u32 = rand::random::<u32>() & 0xF_FFFF;
    format!("{:011X}{:05X}", now_micros & 0xFFF_FFFF_FFFF, random)
}

/// Whether `id` has the queue ID form (so a CLI argument can never name another file).
pub fn is_queue_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Origin, Ret};

    #[test]
    fn write_read_state_remove() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let env = Envelope {
            sender: "".into(),
            recipients: vec![],
            ret: Ret::Full,
            envid: None,
            smtputf8: false,
            origin: Origin::default(),
            received_at: 5,
        };
        let id = new_queue_id(1_765_000_000_000_000);
        assert!(is_queue_id(&id), "{id}");
        assert!(!is_queue_id("../../etc/passwd"));
        spool
            .write(&id, &env, b"Subject: x\r\n\r\n{json}\n")
            .unwrap();
        assert_eq!(spool.list().unwrap(), vec![id.clone()]);
        let (e, m) = spool.read(&id).unwrap();
        assert_eq!(e, env);
        assert_eq!(m, b"Subject: x\r\n\r\n{json}\n");
        assert_eq!(spool.read_state(&id).unwrap(), None);
        let state = DeliveryState {
            attempts: 2,
            ..Default::default()
        };
        spool.write_state(&id, &state).unwrap();
        assert_eq!(spool.read_state(&id).unwrap(), Some(state));
        spool.remove(&id).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(&spool.tmp).unwrap().count(), 0);
    }

    #[test]
    fn the_flat_layout_moves_into_hashed_directories_and_half_writes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join(".queue");
        fs::create_dir_all(&queue).unwrap();
        let id = "0123456789ABCDEF";
        fs::write(queue.join(format!("{id}.msg")), b"{\"sender\":\"\",\"recipients\":[],\"ret\":\"Full\",\"envid\":null,\"smtputf8\":false,\"origin\":{},\"received_at\":1}\nx").ok();
        fs::write(queue.join(format!("{id}.state")), b"{}").unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert!(queue.join("F").join(format!("{id}.msg")).exists());
        assert!(queue.join("F").join(format!("{id}.state")).exists());
        assert_eq!(spool.list().unwrap(), vec![id.to_string()]);
        fs::write(queue.join("3").join("0000000000000003.msg.tmp"), b"half").unwrap();
        assert_eq!(spool.clean_tmp().unwrap(), 1);
        assert_eq!(spool.list().unwrap(), vec![id.to_string()]);
    }
}
