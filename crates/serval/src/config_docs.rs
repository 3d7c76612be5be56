//! Comments for `serval config default`: one per table and per key. A test fails when a key of the
//! default config has no comment here, so new keys get documented where they are printed.

pub const HEADER: &str = "\
# Serval configuration. Every key is shown with its default value.
# Run `serval check --config FILE` after editing; it names every problem at once.
# Relative paths: `data_dir` is relative to this file's folder; other paths are relative to data_dir.

";

/// (dotted key, comment). Tables are keyed by their name.
pub const DOCS: &[(&str, &str)] = &[
    ("data_dir", "Folder for the store (serval.db), TLS material, logs and, by default, the movies folder."),
    ("admin", "Web admin page, JSON API (/api/v1/), Prometheus /metrics and /healthz.\nOnly members of the `admin` group can log in: `serval user add admin`, then\n`serval group add-member admin admin`, or open the page from this machine on first run."),
    ("admin.enabled", "Serve the admin site."),
    ("admin.listen", "Address or list of addresses, e.g. \"127.0.0.1:1220\" or [\"127.0.0.1:1220\", \"[::1]:1220\"].\n1220 was the QuickTime Streaming Server admin port."),
    ("admin.tls", "Serve the admin site over HTTPS with the [tls] certificate (cookies then get `Secure`)."),
    ("admin.max_connections", "Concurrent admin connections; more wait for a free slot."),
    ("admin.session_idle_timeout", "A login unused for this long ends."),
    ("admin.public_metrics", "Serve /metrics without a login (for Prometheus). Keep admin.listen private when on."),
    ("log", "Logging to standard error; the admin page shows the recent lines."),
    ("log.level", "Default level: off, error, warn, info, debug or trace."),
    ("log.format", "\"text\" for people, \"json\" for log collectors."),
    ("log.access_log_dir", "Access logs, one file per protocol (e.g. stream-access.log in the old streaming server's W3C format)."),
    ("log.services", "Per-service levels that override log.level, e.g.\n  stream = \"debug\"\n  calendar = \"warn\""),
    ("tls", "Certificate for every TLS listener (admin.tls, RTSPS, CalDAV over HTTPS).\nGive PEM files:\n  cert = \"/etc/serval/fullchain.pem\"\n  key = \"/etc/serval/privkey.pem\"\nor set self_signed = true to generate one in data_dir/tls/ (kept across restarts)."),
    ("tls.self_signed", "Generate and reuse a self-signed certificate when cert/key are not given."),
    ("store", "Where the directory, calendars and every service's data live: the embedded SQLite file\n(data_dir/serval.db), or a PostgreSQL database that several Serval nodes share."),
    ("store.engine", "\"sqlite\" (embedded, one node) or \"postgres\" (one database, any number of nodes).\nMove an existing store over with `serval store migrate --to postgres://...`."),
    ("store.url", "PostgreSQL only: postgres://USER@HOST:PORT/DATABASE. Keep the password out of it."),
    ("store.password_file", "PostgreSQL only: a file whose first line is the password; empty means $PGPASSWORD, if set.\nNever logged."),
    ("store.pool_size", "PostgreSQL only: connections this node keeps open."),
    ("store.statement_timeout", "PostgreSQL only: a statement running longer is cancelled (the request fails with 503)."),
    ("directory", "The user directory shared by every service. Manage it with `serval user ...` and `serval group ...`."),
    ("directory.realm", "Realm of HTTP/RTSP Digest logins. Digest hashes are computed per realm when a password is set,\nso after changing this, users must set their passwords again for Digest clients."),
    ("directory.max_failed_logins", "Failed logins from one address within failed_login_window before it is refused for a while."),
    ("directory.failed_login_window", "Window for counting failed logins."),
    ("stream", "On-demand RTSP/RTP streaming of the MP4/MOV files in media_dir (QuickTime Streaming Server's job).\nrtsp://HOST:PORT/sub/movie.mp4 plays media_dir/sub/movie.mp4."),
    ("stream.enabled", "Run the streaming service."),
    ("stream.listen", "RTSP addresses. 554 is the standard RTSP port (below 1024: needs root or CAP_NET_BIND_SERVICE),\n7070 was QuickTime's alternative, 8554 is the unprivileged default."),
    ("stream.media_dir", "The movies folder; empty means data_dir/media (created at start)."),
    ("stream.rtp_ports", "Server UDP ports for RTP (even) and RTCP (odd), a range to open in the firewall.\nSessions share the pairs, so this is not a session limit."),
    ("stream.session_timeout", "A session with no RTSP request and no RTCP report for this long is closed."),
    ("stream.unplayed_session_timeout", "A session that was set up but never played is closed this long after its SETUP, keep-alives\nor not. Protects against SETUP floods: such sessions are also the first closed to make room\nwhen a cap below is reached, so a flood never refuses a viewer who goes on to PLAY."),
    ("stream.max_connections", "Concurrent RTSP connections (file descriptors and memory: a few KiB each); beyond this the\noldest connection without a session is closed, then new ones are refused with 503.\nRTSP-over-HTTP viewers hold two."),
    ("stream.max_bandwidth", "Total bitrate of open sessions, so the link is never oversubscribed (every viewer would\nstutter); a SETUP beyond it closes never-played sessions or is answered 453 Not Enough\nBandwidth. \"auto\": the speed of the fastest network interface (10Gbit when none reports\none); or a rate such as \"1Gbit\", \"500Mbit\"."),
    ("calendar", "CalDAV calendars with delegation and sharing (iCal Server's job). Clients: Apple Calendar,\nThunderbird, DAVx5, Evolution; discovery at http://HOST:8008/.well-known/caldav."),
    ("calendar.enabled", "Run the calendar service."),
    ("calendar.listen", "CalDAV addresses over plain HTTP."),
    ("calendar.tls_listen", "CalDAV addresses over HTTPS with the [tls] certificate (8443 was iCal Server's)."),
    ("calendar.max_resource_size", "Largest calendar object in bytes (CalDAV max-resource-size)."),
    ("calendar.max_instances", "Most occurrences one recurring event may expand to in queries and free-busy."),
    ("calendar.allow_insecure_auth", "Accept passwords over plain HTTP from other hosts (off: only loopback may log in without TLS)."),
    ("web", "The office's web sites (OS X Server's Apache + PHP): static files, PHP over FastCGI to php-fpm,\nreverse proxy with WebSocket, logins against the directory. Access log: logs/web-access.log\n(Apache combined format)."),
    ("web.enabled", "Run the web service."),
    ("web.listen", "HTTP addresses (80 needs root or CAP_NET_BIND_SERVICE)."),
    ("web.tls_listen", "HTTPS addresses, e.g. \"0.0.0.0:8443\"; empty: none. Certificates: ACME ones by name, else [tls]."),
    ("web.max_body_size", "Largest request body (uploads, forms); larger gets 413. PHP's own post_max_size is 8M."),
    ("web.max_header_size", "Largest request line plus headers; larger gets 431."),
    ("web.max_connections", "Concurrent connections; more wait for a free slot."),
    ("web.allow_insecure_auth", "Accept logins to realms over plain HTTP from other hosts (off: HTTPS or this machine only)."),
    ("web.acme", "Certificates from an ACME CA (Let's Encrypt) for every site's names, renewed by themselves.\nThe CA checks each name over HTTP on port 80 (HTTP-01): the names must point at this machine\nand port 80 must reach web.listen. Kept in data_dir/acme/. Expiry on the admin page and\n/metrics (web_certificate_expiry_timestamp_seconds)."),
    ("web.acme.enabled", "Order and renew the certificates."),
    ("web.acme.directory", "The CA's directory URL. Let's Encrypt staging, for trying things out:\n\"https://acme-staging-v02.api.letsencrypt.org/directory\"."),
    ("web.acme.contact", "Addresses the CA may warn about expiry, e.g. [\"mailto:admin@example.test\"]."),
    ("web.acme.ca_file", "PEM root trusted for the CA's own HTTPS (a private or test CA); empty: the system's roots."),
    ("web.acme.renew_before", "Renew this long before expiry, or with a third of the life left if sooner (short-lived certificates)."),
    ("web.site.acme", "With [web.acme] on, get a certificate for this site's DNS names (not localhost, IPs, wildcards)."),
    ("web.site", "A site, chosen by the request's Host header. Add one [[web.site]] per site. Inside a site:\n  [[web.site.redirect]]  from = \"/old/\", to = \"/new/\", status = 301\n  [[web.site.auth]]      path = \"/staff/\", realm = \"Staff\", groups = [\"staff\"]\n  [[web.site.proxy]]     path = \"/app/\", to = \"http://127.0.0.1:3000\", preserve_host = false, timeout = \"60s\"\n  [web.site.error_pages] \"404\" = \"/404.html\""),
    ("web.site.host", "The site's name as in the Host header; \"*.example.test\" matches every subdomain."),
    ("web.site.aliases", "More names of the same site."),
    ("web.site.default", "Answer requests whose Host matches no site (one site at most; none marked: the first site)."),
    ("web.site.root", "Folder of the site's files, relative to data_dir; empty: data_dir/www."),
    ("web.site.index", "Files tried, in order, for a folder."),
    ("web.site.listing", "List a folder's files when it has no index file."),
    ("web.site.dotfiles", "Serve names starting with a dot (.git, .env); off: 404 (.well-known is always served)."),
    ("web.site.follow_symlinks", "Follow symbolic links that lead out of root."),
    ("web.site.php", "php-fpm's socket for .php files: \"unix:/run/php/php8.2-fpm.sock\" or \"127.0.0.1:9000\"; empty: PHP off\n(.php files are then refused, never shown as source)."),
    ("web.site.php_keep_alive", "Connections to php-fpm kept open for reuse; 0: one per request (nginx's default; safe with any\npool). Set to the pool's pm.max_children for about 15% more PHP requests/s; each open connection\nholds a php-fpm worker, so never more than that."),
    ("web.site.php_timeout", "Longest a PHP page may take to start answering; then 504."),
    ("web.site.compress", "gzip/brotli for clients that accept it (text, not images or ranges)."),
    ("web.site.cache_max_age", "Cache-Control max-age for static files; 0s: none (browsers revalidate with ETag)."),
    ("web.site.error_pages", "Pages for Serval's own errors, by status, as paths under root."),
    ("web.site.redirect", "Redirects: from (a path; ending in / a prefix), to (path or URL), status (301 default)."),
    ("dns", "The office's DNS resolver (OS X Server's BIND): full recursion from the root (no forwarder\nneeded), a cache with serve-stale, local zones, client ACLs, and a reason (RFC 8914 EDE) on every\nfailure. DNSSEC validation is not built yet, so the service is off by default."),
    ("dns.enabled", "Run the DNS service."),
    ("dns.listen", "Addresses, UDP and TCP on each (53 needs root or CAP_NET_BIND_SERVICE)."),
    ("dns.allow", "Clients that may ask, as CIDR blocks; others get REFUSED (with an Extended DNS Error saying why)."),
    ("dns.forwarders", "Resolvers asked for names outside the local zones, in order, e.g. [\"192.168.1.1\"];\nempty: Serval resolves them itself, from the root."),
    ("dns.root_hints_file", "Root hints in named.root format, used instead of the compiled-in ones; empty: the\ncompiled-in hints and the root set learnt by priming, kept in data_dir/dns, never go stale."),
    ("dns.trust_anchors_file", "DS or DNSKEY lines for \".\" (as in root.key or root.ds), used instead of the compiled-in root\ntrust anchors (KSK-2017 and KSK-2024); empty: the compiled-in ones."),
    ("dns.dnssec", "Validate answers: AD on signed ones, SERVFAIL with the reason (EDE 6-12) on forged or broken\nones; clients that set CD get the data anyway."),
    ("dns.cache_size", "Most memory the answer cache uses; the oldest entries go first."),
    ("dns.serve_stale", "When the authorities of a cached name do not answer within 1.8 s, answer from the expired\nentry (TTL 30 s, EDE 3 \"Stale Answer\"), for up to a day past expiry (RFC 8767)."),
    ("dns.allow_loopback_upstreams", "Test switch: ask name servers on 127.0.0.0/8 and ::1 (a fake Internet on one machine)."),
    ("dns.forward_timeout", "How long one forwarder gets before the next is tried; after the last, SERVFAIL with EDE 22."),
    ("dns.query_log", "One line per query in logs/dns-access.log: client, transport, question, code, time."),
    ("dns.local_zone", "Names the office answers itself, authoritatively, never forwarded (they shadow the real\nzone of that name). Replace `local_zone = []` with one table per zone:\n  [[dns.local_zone]]\n  name = \"office.test\"\n  records = [\"printer A 192.168.1.50\", \"@ MX 10 mail\", \"mail A 192.168.1.2\"]\n  ttl = 3600          # optional: TTL of records that give none\nOwners are relative to the zone (@ is the apex); a target without a trailing dot is too."),
    ("mail", "The office's mail relay and submission server (OS X Server's Postfix): mail clients and scripts\nsubmit, local users get Maildirs under data_dir/mail/USER, everything else is relayed through the\nsmarthost or straight to each domain's MX. Every deferral and bounce is a WARN line with the queue id,\nthe next hop and the remote reply; `serval mail queue` shows what waits and why."),
    ("mail.enabled", "Run the mail service."),
    ("mail.hostname", "EHLO name, Message-ID domain and Received \"by\"; empty: this machine's host name.\nAlways a local domain too (postmaster@HOSTNAME reaches the postmaster)."),
    ("mail.listen", "SMTP (the port 25 role): mail for local users from anyone, relay for mynetworks and logged-in\nusers. Port 25 needs root or CAP_NET_BIND_SERVICE, e.g. [\"0.0.0.0:25\"]."),
    ("mail.submission_listen", "Submission (the port 587 role): AUTH PLAIN/LOGIN against the directory (offered only after\nSTARTTLS, or on loopback); clients outside mynetworks must log in before MAIL."),
    ("mail.mynetworks", "Clients that may relay without logging in (scripts, hooks), as CIDR blocks."),
    ("mail.local_domains", "Domains whose mail is delivered here: the local part is a directory user's name or one of\nthe users' --email addresses; postmaster@, abuse@ and mailer-daemon@ go to `postmaster`."),
    ("mail.postmaster", "The user who gets postmaster@ mail and the notices of bounces nobody else can take\n(Postfix drops those by default; Serval never drops one)."),
    ("mail.max_message_size", "Largest message; bigger ones get 552 at MAIL (SIZE=) or after DATA."),
    ("mail.max_recipients", "Most recipients of one message (more get 452, the client sends the rest later)."),
    ("mail.max_connections", "SMTP sessions at once over all listeners; more get 421."),
    ("mail.nameservers", "DNS servers for MX, MTA-STS and MX address lookups, e.g. [\"127.0.0.1:5353\"] (Serval's own\nresolver); empty: the ones in /etc/resolv.conf."),
    ("mail.ca_file", "PEM CA certificates trusted besides the public web PKI for verified TLS (a smarthost or MX\nwith a certificate from the office's own CA); empty: the web PKI only."),
    ("mail.mta_sts", "Honour MTA-STS (RFC 8461) when delivering direct to an MX: a domain whose policy says\n\"enforce\" gets its mail only from its listed MX hosts over TLS with a valid certificate, else\nthe message waits in the queue with the reason. Policies are cached in data_dir/mail/mta-sts.json."),
    ("mail.dane", "Honour DANE (RFC 7672) when delivering direct to an MX: where the domain's DNSSEC-signed zone\npublishes TLSA records for its MX host, mail goes only over STARTTLS to a certificate they name.\nTrusts the AD bit of a resolver on loopback only (nameservers, else /etc/resolv.conf), e.g. Serval's\n[dns]; with none there, DANE is off and the start log says so. DANE wins over MTA-STS."),
    ("mail.inbound", "Checks of mail from outside (clients not in mynetworks and not logged in)."),
    ("mail.inbound.checks", "SPF, DKIM and DMARC of each message, written into an Authentication-Results header for\nmail clients and filters (forged ones naming this host are removed)."),
    ("mail.inbound.enforce_dmarc", "Refuse (550 5.7.1, at the end of DATA) a message that fails its From: domain's DMARC\npolicy p=reject; p=quarantine is delivered with an X-Serval-Quarantine header."),
    ("mail.inbound.reject_spf_fail", "Also refuse an SPF \"fail\" without DMARC (550 5.7.23). Off by default: it breaks plain\nforwarding, and DMARC already says what the sender wants."),
    ("mail.relay", "The smarthost (the ISP's relay). Empty host: deliver direct to each domain's MX on port 25,\nwith STARTTLS when offered (verified where an MTA-STS policy says so)."),
    ("mail.relay.host", "\"host:port\" of the smarthost, e.g. \"smtp.example.net:587\"; the port defaults to 587 (465 with tls = \"tls\")."),
    ("mail.relay.tls", "\"starttls\" (required, certificate verified), \"tls\" (TLS from the first byte), or \"none\"\n(plain: only for a relay on this machine or a trusted LAN)."),
    ("mail.relay.user", "AUTH user at the smarthost; empty: no AUTH. Test it with `serval mail test-relay`."),
    ("mail.relay.password_file", "File holding the smarthost password followed by a newline (never logged)."),
    ("mail.queue", "Retries and lifetime of queued mail."),
    ("mail.queue.retry_initial", "Wait before the first retry after a temporary failure; each next wait doubles."),
    ("mail.queue.retry_max", "Longest wait between two attempts."),
    ("mail.queue.max_age", "A message still undelivered after this goes back to its sender with a DSN."),
    ("mail.queue.concurrency", "Deliveries in flight at once."),
    ("mail.dkim", "DKIM signatures on mail from the local domains to other domains."),
    ("mail.dkim.enabled", "Sign. Keys are generated into data_dir/mail/.dkim on first start; `serval mail dkim-records`\nand the admin page's Mail panel show the TXT records to publish."),
    ("mail.dkim.selector", "Selector (s=) of the Ed25519 key: its record is at SELECTOR._domainkey.DOMAIN."),
    ("mail.dkim.algorithms", "One signature per key: \"ed25519\" (RFC 8463) and \"rsa\" (rsa-sha256, 2048 bits, the one\nevery verifier checks)."),
    ("mail.dkim.rsa_selector", "Selector of the RSA key; empty: SELECTOR-rsa."),
    ("mail.dkim.rsa_key_file", "An RSA private key to sign with instead of a generated one, e.g. OpenDKIM's\nSELECTOR.private (PEM, PKCS#1 or PKCS#8); set rsa_selector to the selector it is published under."),
    ("web.site.auth", "Realms: path prefix needing a directory login (HTTP Basic); groups limits who (empty: any user)."),
    ("web.site.proxy", "Paths passed to another HTTP server (path kept), with X-Forwarded-For/-Proto/-Host; WebSockets pass through."),
    ("stream.max_payload", "Largest RTP payload in bytes; keep packets under the network MTU."),
    ("stream.tls_listen", "RTSPS addresses (RTSP over TLS with the [tls] certificate, RTP inside the TLS stream);\nempty: none. 322 is the registered RTSPS port, e.g. [\"0.0.0.0:322\"]."),
    ("stream.allow", "Client addresses allowed to connect, as CIDR blocks (e.g. [\"192.168.1.0/24\"]); empty: everyone."),
    ("stream.deny", "Client addresses refused even when allowed (deny wins), as CIDR blocks."),
    ("stream.max_connections_per_ip", "Open RTSP connections from one address, so one host cannot take every connection; beyond\nit that address's oldest connection without a session is closed, then 503. Sized for a whole\noffice behind one NAT address."),
    ("stream.max_sessions_per_client", "Sessions one address may hold, so one host cannot take every session; beyond it that\naddress's oldest never-played session is closed, or the SETUP is answered 453 when all of\nthem play. Sized for an office behind NAT."),
    ("stream.request_timeout", "A request must arrive whole within this time once it has begun (defeats clients that\nsend a byte a second)."),
    ("stream.auth_scheme", "\"digest\" (passwords never cross the network; what QuickTime-era players expect) or \"basic\",\nfor protected folders whose rule names none."),
    ("stream.access", "Protected folders, nearest rule wins; `qtaccess` files in the movies folder work too.\nReplace `access = []` with one table per folder:\n  [[stream.access]]\n  path = \"private/\"\n  require = [\"group:staff\", \"user:bob\"]   # or \"valid-user\", \"any-user\"\n  scheme = \"digest\"                        # optional: basic or digest\n  realm = \"Streaming Server\"               # optional: the realm of imported qtusers accounts\n  allow = [\"192.168.1.0/24\"]                # optional CIDR rules for this folder (also deny)"),
];

/// Adds the comments to a serialized default config.
pub fn annotate(doc: &mut toml_edit::DocumentMut) {
    let root = doc.as_table_mut();
    let keys: Vec<String> = root.iter().map(|(k, _)| k.to_string()).collect();
    for key in keys {
        let Some(comment) = doc_of(&key) else {
            continue;
        };
        let is_table = root.get(&key).is_some_and(|i| i.is_table());
        if is_table {
            if let Some(table) = root.get_mut(&key).and_then(|i| i.as_table_mut()) {
                table
                    .decor_mut()
                    .set_prefix(format!("\n{}", comment_lines(comment)));
                annotate_table(table, &key);
            }
        } else if let Some(mut k) = root.key_mut(&key) {
            k.leaf_decor_mut().set_prefix(comment_lines(comment));
        }
    }
}

fn annotate_table(table: &mut toml_edit::Table, prefix: &str) {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_string()).collect();
    for key in keys {
        let path = format!("{prefix}.{key}");
        let Some(comment) = doc_of(&path) else {
            continue;
        };
        if let Some(sub) = table.get_mut(&key).and_then(|i| i.as_table_mut()) {
            sub.decor_mut()
                .set_prefix(format!("\n{}", comment_lines(comment)));
            sub.set_implicit(false);
            annotate_table(sub, &path);
            continue;
        }
        if let Some(array) = table.get_mut(&key).and_then(|i| i.as_array_of_tables_mut()) {
            for (n, sub) in array.iter_mut().enumerate() {
                if n == 0 {
                    sub.decor_mut()
                        .set_prefix(format!("\n{}", comment_lines(comment)));
                }
                annotate_table(sub, &path);
            }
            continue;
        }
        if let Some(mut k) = table.key_mut(&key) {
            k.leaf_decor_mut().set_prefix(comment_lines(comment));
        }
    }
}

fn doc_of(path: &str) -> Option<&'static str> {
    DOCS.iter().find(|(k, _)| *k == path).map(|(_, d)| *d)
}

fn comment_lines(text: &str) -> String {
    text.lines().map(|l| format!("# {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(table: &toml_edit::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, item) in table.iter() {
            let path = if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            if let Some(t) = item.as_table() {
                paths(t, &path, out);
            }
            if let Some(array) = item.as_array_of_tables() {
                for t in array.iter() {
                    paths(t, &path, out);
                }
            }
        }
    }

    #[test]
    fn every_default_key_has_a_comment() {
        let doc: toml_edit::DocumentMut = toml::to_string(&crate::config::Config::default())
            .unwrap()
            .parse()
            .unwrap();
        let mut all = Vec::new();
        paths(doc.as_table(), "", &mut all);
        let missing: Vec<&String> = all.iter().filter(|p| doc_of(p).is_none()).collect();
        assert!(
            missing.is_empty(),
            "keys without a comment in config_docs.rs: {missing:?}"
        );
    }

    #[test]
    fn every_comment_names_a_real_key() {
        let text = crate::config::default_toml();
        for (key, _) in DOCS {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                text.contains(leaf),
                "config_docs.rs documents `{key}`, which the default config lacks"
            );
        }
    }
}
