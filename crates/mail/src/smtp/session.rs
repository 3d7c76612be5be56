//! One SMTP server session as a sans-IO state machine: the client's bytes go in with
//! [`Session::input`], [`Session::poll`] says what the driver must do next (write the
//! pending replies, check a password, queue a message, start TLS, close), and the driver
//! reports results back. Time, sockets, the directory and the disk stay outside, so every
//! rule here is unit-tested over plain bytes.
//!
//! Command lines are parsed with smtp-proto; framing, limits and policy are this module's.

use std::borrow::Cow;

use base64::Engine as _;
use smtp_proto::{Error as ParseError, Request};

use super::data::{DataOutcome, DataProblem, DataReader};
use crate::envelope::{is_mailbox, Envelope, Notify, Origin, Recipient, Ret};

/// Longest command line (with CRLF). RFC 5321 says 512, but MAIL/RCPT with DSN
/// parameters go past it; Postfix's line_length_limit is 2048.
pub const MAX_COMMAND_LINE: usize = 2048;
/// Errors after which the client is cut off (Postfix's smtpd_hard_error_limit).
pub const MAX_ERRORS: u32 = 20;

/// Which listener the session came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The port 25 role: mail for local domains from anyone, relay for `mynetworks`.
    Smtp,
    /// The port 587 role: AUTH required unless the client is in `mynetworks`.
    Submission,
}

impl Listener {
    pub fn name(self) -> &'static str {
        match self {
            Listener::Smtp => "smtp",
            Listener::Submission => "submission",
        }
    }
}

/// What the session needs to know about its client and limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub listener: Listener,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// STARTTLS can be offered (a `[tls]` certificate exists).
    pub tls_available: bool,
    /// The client's address is in `mynetworks`.
    pub trusted_network: bool,
    /// The client is on loopback (AUTH without TLS is allowed there).
    pub loopback: bool,
    pub peer_ip: String,
}

/// How a recipient address relates to this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientClass {
    /// Delivered to this user's Maildir.
    Local { user: String },
    /// A local domain, but no such user.
    UnknownLocal,
    /// Another domain: needs relay permission.
    Remote,
    /// The directory could not be asked (the client should try again later).
    Unavailable,
}

/// The directory as the session sees it.
pub trait Recipients {
    fn classify(&self, address: &str) -> RecipientClass;
}

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Write [`Session::take_output`] and read more input.
    NeedInput,
    /// Check these credentials, then call [`Session::auth_done`].
    Authenticate { user: String, password: String },
    /// Write the message to the queue durably, then call [`Session::enqueued`].
    Enqueue {
        envelope: Box<Envelope>,
        message: Vec<u8>,
    },
    /// Write the pending output (the 220), then do the TLS handshake and call
    /// [`Session::tls_started`].
    StartTls,
    /// Write the pending output, then close.
    Close,
}

/// Why authentication failed, as the driver found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    BadCredentials,
    RateLimited,
    Unavailable,
}

#[derive(Debug)]
enum Mode {
    Command,
    Data(DataReader),
    /// AUTH PLAIN sent without an initial response: the next line is it.
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword {
        user: String,
    },
    /// Waiting for the driver (auth check, queue write).
    Waiting,
    Closed,
}

struct Transaction {
    sender: String,
    ret: Ret,
    envid: Option<String>,
    smtputf8: bool,
    recipients: Vec<Recipient>,
}

/// Per-command counts for the access log (Postfix's "disconnect ... ehlo=1 mail=1 ...").
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub commands: Vec<(&'static str, u32, u32)>,
}

impl Counts {
    fn note(&mut self, name: &'static str, ok: bool) {
        match self.commands.iter_mut().find(|(n, _, _)| *n == name) {
            Some(entry) => {
                entry.2 += 1;
                if ok {
                    entry.1 += 1;
                }
            }
            None => self.commands.push((name, u32::from(ok), 1)),
        }
    }

    /// "ehlo=1 mail=1 rcpt=0/1 data=1 quit=1 commands=4/5".
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let (mut ok, mut all) = (0, 0);
        for (name, good, total) in &self.commands {
            ok += good;
            all += total;
            if good == total {
                out.push_str(&format!("{}={} ", name.to_ascii_lowercase(), total));
            } else {
                out.push_str(&format!(
                    "{}={}/{} ",
                    name.to_ascii_lowercase(),
                    good,
                    total
                ));
            }
        }
        if ok == all {
            out.push_str(&format!("commands={all}"));
        } else {
            out.push_str(&format!("commands={ok}/{all}"));
        }
        out
    }
}

pub struct Session {
    config: SessionConfig,
    input: Vec<u8>,
    output: Vec<u8>,
    mode: Mode,
    helo: Option<String>,
    tls: bool,
    auth_user: Option<String>,
    transaction: Option<Transaction>,
    errors: u32,
    /// A command line longer than the limit is being skipped up to its LF.
    skipping_long_line: bool,
    /// The user name of an AUTH the driver is checking.
    pending_auth_user: Option<String>,
    pub counts: Counts,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            input: Vec::new(),
            output: Vec::new(),
            mode: Mode::Command,
            helo: None,
            tls: false,
            auth_user: None,
            transaction: None,
            errors: 0,
            skipping_long_line: false,
            pending_auth_user: None,
            counts: Counts::default(),
        }
    }

    /// The 220 banner (queued as output).
    pub fn greet(&mut self) {
        let banner = format!("{} ESMTP Serval", self.config.hostname);
        self.reply(220, "", &banner);
    }

    /// Refuses the connection (too many sessions): 421 then close.
    pub fn refuse(&mut self, why: &str) {
        self.reply(421, "4.3.2", why);
        self.mode = Mode::Closed;
    }

    pub fn input(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// Whether a message is being read (a disconnect now loses only that message).
    pub fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_))
    }

    /// Processes buffered input up to the next thing the driver must do.
    pub fn poll(&mut self, recipients: &dyn Recipients) -> Step {
        loop {
            match &mut self.mode {
                Mode::Closed => return Step::Close,
                Mode::Waiting => return Step::NeedInput,
                Mode::Data(reader) => match reader.feed(&self.input) {
                    DataOutcome::More => {
                        self.input.clear();
                        return Step::NeedInput;
                    }
                    DataOutcome::Done { consumed } => {
                        self.input.drain(..consumed);
                        let Mode::Data(reader) = std::mem::replace(&mut self.mode, Mode::Command)
                        else {
                            unreachable!()
                        };
                        if let Some(step) = self.end_of_data(reader) {
                            return step;
                        }
                    }
                },
                _ => {
                    let Some(line) = self.next_line() else {
                        return Step::NeedInput;
                    };
                    if let Some(step) = self.line(&line, recipients) {
                        return step;
                    }
                    if self.errors >= MAX_ERRORS {
                        self.reply(421, "4.7.0", "Too many errors, closing the connection");
                        self.mode = Mode::Closed;
                    }
                }
            }
        }
    }

    /// The next complete line (with its LF), or `None`; over-long lines are answered with 500.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            match super::data::memchr(b'\n', &self.input) {
                Some(lf) => {
                    let line: Vec<u8> = self.input.drain(..=lf).collect();
                    if self.skipping_long_line {
                        self.skipping_long_line = false;
                        continue;
                    }
                    if line.len() > MAX_COMMAND_LINE {
                        self.line_too_long();
                        continue;
                    }
                    return Some(line);
                }
                None => {
                    if self.input.len() > MAX_COMMAND_LINE {
                        self.input.clear();
                        if !self.skipping_long_line {
                            self.skipping_long_line = true;
                            self.line_too_long();
                        }
                    }
                    return None;
                }
            }
        }
    }

    fn line_too_long(&mut self) {
        self.errors += 1;
        self.reply(500, "5.5.2", "Line too long");
    }

    fn line(&mut self, line: &[u8], recipients: &dyn Recipients) -> Option<Step> {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::AuthPlain => return self.auth_plain(trim_crlf(line)),
            Mode::AuthLoginUser => {
                let user = self.sasl_line(trim_crlf(line))?;
                self.mode = Mode::AuthLoginPassword {
                    user: String::from_utf8_lossy(&user).into_owned(),
                };
                self.reply(334, "", "UGFzc3dvcmQ6");
                return None;
            }
            Mode::AuthLoginPassword { user } => {
                let password = self.sasl_line(trim_crlf(line))?;
                return self.authenticate(user, String::from_utf8_lossy(&password).into_owned());
            }
            _ => {}
        }
        let mut iter = line.iter();
        match Request::parse(&mut iter) {
            Ok(request) => self.command(request, recipients),
            Err(e) => {
                self.parse_error(e, line);
                None
            }
        }
    }

    fn parse_error(&mut self, error: ParseError, line: &[u8]) {
        self.errors += 1;
        let verb = String::from_utf8_lossy(line)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let name: &'static str = match verb.as_str() {
            "MAIL" => "MAIL",
            "RCPT" => "RCPT",
            "EHLO" => "EHLO",
            "HELO" => "HELO",
            "AUTH" => "AUTH",
            _ => "unknown",
        };
        self.counts.note(name, false);
        match error {
            ParseError::UnknownCommand => self.reply(500, "5.5.2", "Unknown command"),
            ParseError::InvalidSenderAddress => {
                self.reply(501, "5.1.7", "Bad sender address syntax")
            }
            ParseError::InvalidRecipientAddress => {
                self.reply(501, "5.1.3", "Bad recipient address syntax")
            }
            ParseError::SyntaxError { syntax } => {
                self.reply(501, "5.5.4", &format!("Syntax: {syntax}"))
            }
            ParseError::InvalidParameter { param } => {
                self.reply(501, "5.5.4", &format!("Invalid value of parameter {param}"))
            }
            ParseError::UnsupportedParameter { param } => {
                self.reply(555, "5.5.4", &format!("Unsupported parameter {param}"))
            }
            ParseError::NeedsMoreData { .. }
            | ParseError::ResponseTooLong
            | ParseError::InvalidResponse { .. } => self.reply(500, "5.5.2", "Syntax error"),
        }
    }

    fn command(
        &mut self,
        request: Request<Cow<'_, str>>,
        recipients: &dyn Recipients,
    ) -> Option<Step> {
        let name = request.name();
        let ok = match request {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to, recipients),
            Request::Data => return self.data(),
            Request::Rset => {
                self.transaction = None;
                self.reply(250, "2.0.0", "Ok");
                true
            }
            Request::Noop { .. } => {
                self.reply(250, "2.0.0", "Ok");
                true
            }
            Request::Quit => {
                self.counts.note(name, true);
                self.reply(221, "2.0.0", "Bye");
                self.mode = Mode::Closed;
                return Some(Step::Close);
            }
            // No user enumeration: RFC 5321 3.5.3 allows 252.
            Request::Vrfy { .. } => {
                self.reply(252, "2.5.2", "Cannot VRFY user; try RCPT");
                true
            }
            Request::Help { .. } => {
                self.reply(214, "2.0.0", "See RFC 5321");
                true
            }
            Request::StartTls => return self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, &initial_response),
            Request::Bdat { .. } => {
                self.reply(502, "5.5.1", "CHUNKING is not offered; use DATA");
                false
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Lhlo { .. } => {
                self.reply(502, "5.5.1", &format!("{name} is not implemented"));
                false
            }
        };
        self.counts.note(name, ok);
        if !ok {
            self.errors += 1;
        }
        None
    }

    fn ehlo(&mut self, host: &str, extended: bool) -> bool {
        self.transaction = None;
        self.helo = Some(host.to_string());
        if !extended {
            let text = self.config.hostname.clone();
            self.reply(250, "", &text);
            return true;
        }
        let mut lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "DSN".into(),
        ];
        if self.config.tls_available && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_allowed() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("HELP".into());
        let last = lines.len() - 1;
        for (i, text) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.output
                .extend_from_slice(format!("250{sep}{text}\r\n").as_bytes());
        }
        true
    }

    /// AUTH only over TLS, or on loopback (a password on the wire in the clear otherwise).
    fn auth_allowed(&self) -> bool {
        self.tls || self.config.loopback
    }

    fn may_relay(&self) -> bool {
        self.auth_user.is_some() || self.config.trusted_network
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<Cow<'_, str>>) -> bool {
        if self.helo.is_none() {
            self.reply(503, "5.5.1", "Send EHLO or HELO first");
            return false;
        }
        if self.transaction.is_some() {
            self.reply(503, "5.5.1", "Nested MAIL command");
            return false;
        }
        if self.config.listener == Listener::Submission && !self.may_relay() {
            self.reply(530, "5.7.0", "Authentication required");
            return false;
        }
        let sender = from.address.to_string();
        if !sender.is_empty() && !is_mailbox(&sender) {
            self.reply(501, "5.1.7", "Bad sender address syntax");
            return false;
        }
        if from.size as u64 > self.config.max_message_size {
            self.reply(552, "5.3.4", "Message size exceeds fixed limit");
            return false;
        }
        let ret = if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Ret::Headers
        } else {
            Ret::Full
        };
        self.transaction = Some(Transaction {
            sender,
            ret,
            envid: from.env_id.map(|e| e.into_owned()),
            smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            recipients: Vec::new(),
        });
        self.reply(250, "2.1.0", "Ok");
        true
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<Cow<'_, str>>, recipients: &dyn Recipients) -> bool {
        let may_relay = self.may_relay();
        let Some(transaction) = &self.transaction else {
            self.reply(503, "5.5.1", "Need MAIL before RCPT");
            return false;
        };
        if transaction.recipients.len() >= self.config.max_recipients {
            self.reply(452, "4.5.3", "Too many recipients");
            return false;
        }
        let mut address = to.address.to_string();
        // RFC 5321 4.5.1: <postmaster> without a domain must be accepted.
        if address.eq_ignore_ascii_case("postmaster") {
            address = format!("postmaster@{}", self.config.hostname);
        }
        if !is_mailbox(&address) {
            self.reply(501, "5.1.3", "Bad recipient address syntax");
            return false;
        }
        let local_user = match recipients.classify(&address) {
            RecipientClass::Local { user } => Some(user),
            RecipientClass::UnknownLocal => {
                self.reply(
                    550,
                    "5.1.1",
                    &format!("<{address}>: Recipient address rejected: no such user here"),
                );
                return false;
            }
            RecipientClass::Unavailable => {
                self.reply(
                    451,
                    "4.3.0",
                    "The user directory is unavailable; try again later",
                );
                return false;
            }
            RecipientClass::Remote if may_relay => None,
            RecipientClass::Remote => {
                self.reply(
                    554,
                    "5.7.1",
                    &format!("<{address}>: Relay access denied (log in, or send from mynetworks)"),
                );
                return false;
            }
        };
        let recipient = Recipient {
            address,
            local_user,
            notify: Notify::from_flags(to.flags),
            orcpt: to.orcpt.map(|o| o.into_owned()),
        };
        if let Some(t) = &mut self.transaction {
            t.recipients.push(recipient);
        }
        self.reply(250, "2.1.5", "Ok");
        true
    }

    fn data(&mut self) -> Option<Step> {
        let ready = match &self.transaction {
            None => {
                self.reply(503, "5.5.1", "Need MAIL and RCPT before DATA");
                false
            }
            Some(t) if t.recipients.is_empty() => {
                self.reply(554, "5.5.1", "No valid recipients");
                false
            }
            Some(_) => true,
        };
        if !ready {
            self.errors += 1;
            self.counts.note("DATA", false);
            return None;
        }
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
        self.mode = Mode::Data(DataReader::new(self.config.max_message_size));
        None
    }

    fn end_of_data(&mut self, reader: DataReader) -> Option<Step> {
        let transaction = self.transaction.take()?;
        match reader.finish() {
            Ok(message) => {
                self.counts.note("DATA", true);
                self.mode = Mode::Waiting;
                let envelope = Envelope {
                    sender: transaction.sender,
                    recipients: transaction.recipients,
                    ret: transaction.ret,
                    envid: transaction.envid,
                    smtputf8: transaction.smtputf8,
                    origin: Origin {
                        via: self.config.listener.name().into(),
                        ip: self.config.peer_ip.clone(),
                        helo: self.helo.clone().unwrap_or_default(),
                        auth_user: self.auth_user.clone(),
                        tls: self.tls,
                    },
                    received_at: 0,
                };
                Some(Step::Enqueue {
                    envelope: Box::new(envelope),
                    message,
                })
            }
            Err(problem) => {
                self.counts.note("DATA", false);
                self.errors += 1;
                match problem {
                    DataProblem::TooBig { .. } => {
                        self.reply(552, "5.3.4", "Message size exceeds fixed limit")
                    }
                    DataProblem::LineTooLong { line } => self.reply(
                        554,
                        "5.6.0",
                        &format!("Line {line} is longer than 998 characters (RFC 5322 2.1.1)"),
                    ),
                }
                None
            }
        }
    }

    /// The queue's answer for the message of the last DATA.
    /// The driver's checks refused the message after DATA (a DMARC policy, say).
    pub fn refused_after_data(&mut self, code: u16, enhanced: &str, text: &str) {
        self.mode = Mode::Command;
        self.reply(code, enhanced, text);
    }

    pub fn enqueued(&mut self, result: Result<String, String>) {
        self.mode = Mode::Command;
        match result {
            Ok(id) => self.reply(250, "2.0.0", &format!("Ok: queued as {id}")),
            Err(_) => self.reply(
                451,
                "4.3.0",
                "Could not write the message to the queue; try again later",
            ),
        }
    }

    fn starttls(&mut self) -> Option<Step> {
        let ok = if !self.config.tls_available {
            self.reply(454, "4.7.0", "TLS not available (no [tls] certificate)");
            false
        } else if self.tls {
            self.reply(503, "5.5.1", "TLS already active");
            false
        } else {
            true
        };
        self.counts.note("STARTTLS", ok);
        if !ok {
            self.errors += 1;
            return None;
        }
        self.reply(220, "2.0.0", "Ready to start TLS");
        // Whatever the client pipelined after STARTTLS was sent in the clear and must not
        // be taken as coming over TLS (CVE-2011-0411).
        self.input.clear();
        self.mode = Mode::Waiting;
        Some(Step::StartTls)
    }

    /// TLS is up: the session starts over (RFC 3207 4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.transaction = None;
        self.input.clear();
        self.mode = Mode::Command;
    }

    fn auth(&mut self, mechanism: u64, initial: &str) -> Option<Step> {
        let refusal = if self.helo.is_none() {
            Some((503, "5.5.1", "Send EHLO first"))
        } else if self.auth_user.is_some() {
            Some((503, "5.5.1", "Already authenticated"))
        } else if self.transaction.is_some() {
            Some((503, "5.5.1", "AUTH not allowed during a mail transaction"))
        } else if !self.auth_allowed() {
            Some((538, "5.7.11", "Encryption required: use STARTTLS first"))
        } else if mechanism != smtp_proto::AUTH_PLAIN && mechanism != smtp_proto::AUTH_LOGIN {
            Some((
                504,
                "5.5.4",
                "Unrecognized authentication type; use PLAIN or LOGIN",
            ))
        } else {
            None
        };
        if let Some((code, status, text)) = refusal {
            self.counts.note("AUTH", false);
            self.errors += 1;
            self.reply(code, status, text);
            return None;
        }
        if mechanism == smtp_proto::AUTH_PLAIN {
            if initial.is_empty() {
                self.mode = Mode::AuthPlain;
                self.reply(334, "", "");
                return None;
            }
            return self.auth_plain(initial.as_bytes());
        }
        if initial.is_empty() {
            self.mode = Mode::AuthLoginUser;
            self.reply(334, "", "VXNlcm5hbWU6");
            return None;
        }
        let user = self.sasl_line(initial.as_bytes())?;
        self.mode = Mode::AuthLoginPassword {
            user: String::from_utf8_lossy(&user).into_owned(),
        };
        self.reply(334, "", "UGFzc3dvcmQ6");
        None
    }

    /// Decodes one base64 SASL line; `*` or bad base64 end the exchange with an error.
    fn sasl_line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        if line == b"*" {
            self.auth_failed_syntax(501, "5.7.0", "Authentication aborted");
            return None;
        }
        match base64::engine::general_purpose::STANDARD.decode(line) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                self.auth_failed_syntax(501, "5.5.2", "Cannot decode the base64 response");
                None
            }
        }
    }

    fn auth_failed_syntax(&mut self, code: u16, status: &str, text: &str) {
        self.counts.note("AUTH", false);
        self.errors += 1;
        self.mode = Mode::Command;
        self.reply(code, status, text);
    }

    fn auth_plain(&mut self, line: &[u8]) -> Option<Step> {
        let decoded = self.sasl_line(line)?;
        let mut parts = decoded.split(|&b| b == 0);
        let (authzid, user, password) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(z), Some(u), Some(p), None) => (z, u, p),
                _ => {
                    self.auth_failed_syntax(
                        501,
                        "5.5.2",
                        "PLAIN needs authzid NUL user NUL password",
                    );
                    return None;
                }
            };
        if !authzid.is_empty() && authzid != user {
            self.auth_failed_syntax(535, "5.7.8", "Acting as another user is not allowed");
            return None;
        }
        self.authenticate(
            String::from_utf8_lossy(user).into_owned(),
            String::from_utf8_lossy(password).into_owned(),
        )
    }

    fn authenticate(&mut self, user: String, password: String) -> Option<Step> {
        self.mode = Mode::Waiting;
        self.pending_auth_user = Some(user.clone());
        Some(Step::Authenticate { user, password })
    }

    /// The directory's verdict on the credentials of the last AUTH.
    pub fn auth_done(&mut self, outcome: AuthOutcome) {
        self.mode = Mode::Command;
        let user = self.pending_auth_user.take();
        self.counts.note("AUTH", outcome == AuthOutcome::Ok);
        match outcome {
            AuthOutcome::Ok => {
                self.auth_user = user;
                self.reply(235, "2.7.0", "Authentication successful");
            }
            AuthOutcome::BadCredentials => {
                self.errors += 1;
                self.reply(535, "5.7.8", "Authentication credentials invalid");
            }
            AuthOutcome::RateLimited => {
                self.errors += 1;
                self.reply(
                    454,
                    "4.7.0",
                    "Too many failed logins from your address; try again later",
                );
            }
            AuthOutcome::Unavailable => {
                self.reply(454, "4.7.0", "Temporary authentication failure");
            }
        }
    }

    fn reply(&mut self, code: u16, status: &str, text: &str) {
        let line = match (status.is_empty(), text.is_empty()) {
            (true, true) => format!("{code} \r\n"),
            (true, false) => format!("{code} {text}\r\n"),
            (false, _) => format!("{code} {status} {text}\r\n"),
        };
        self.output.extend_from_slice(line.as_bytes());
    }
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
