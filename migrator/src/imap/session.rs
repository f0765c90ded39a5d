//! One logged-in IMAP session and the commands the migrator sends.
//!
//! Commands go through `imap-next`'s client state machine; this file only tags
//! them, waits for the tagged completion (RFC 3501 §7.1) and turns the typed
//! responses into the small values in [`super`].

use super::{
    code_name, is_limit_code, is_temporary_code, status_text, tls, vec1, Folder, ImapError,
    Message, MessageMeta, Quota, Selected,
};
use crate::config::{Auth, Endpoint, Security};
use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::Literal;
use imap_next::imap_types::datetime::NaiveDate;
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::fetch::{MessageDataItem, MessageDataItemName, Section};
use imap_next::imap_types::flag::{FlagFetch, FlagNameAttribute};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Data, Status, StatusBody, StatusKind};
use imap_next::imap_types::search::SearchKey;
use imap_next::stream::Stream;
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long one response may take (a 20 MB FETCH on a slow link fits).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest response accepted (one FETCH of a huge message).
const MAX_RESPONSE: u32 = 200 * 1024 * 1024;

/// A logged-in session.
pub struct Session {
    stream: Stream,
    client: Client,
    next_tag: u32,
    capabilities: Vec<String>,
    /// `side login` for messages.
    label: String,
}

/// The untagged data and statuses a command produced, and its completion.
struct Response {
    data: Vec<Data<'static>>,
    untagged: Vec<StatusBody<'static>>,
}

/// The mailbox name as a string (modified UTF-7 is ASCII).
pub fn mailbox_name(mailbox: &Mailbox) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

fn mailbox(name: &str) -> Result<Mailbox<'static>, ImapError> {
    Mailbox::try_from(name.to_string())
        .map_err(|e| ImapError::Protocol(format!("mailbox name {name:?}: {e:?}")))
}

/// Finds the password for `login` in `endpoint.password_file`.
fn password(endpoint: &Endpoint, login: &str) -> Result<String, ImapError> {
    let path = &endpoint.password_file;
    let text = std::fs::read_to_string(path).map_err(|e| {
        ImapError::Secret(format!(
            "{}: cannot read the {} password file: {e}",
            path.display(),
            endpoint.side
        ))
    })?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let found = match endpoint.auth {
        // Lines "login password"; the password is the rest of the line.
        Auth::Password => lines.find_map(|l| {
            let (user, pass) = l.split_once(char::is_whitespace)?;
            relay::address::same_address(user, login).then(|| pass.trim().to_string())
        }),
        Auth::Master | Auth::Authzid => lines.next().map(str::to_string),
    };
    found.ok_or_else(|| {
        ImapError::Secret(match endpoint.auth {
            Auth::Password => format!(
                "{}: no line \"{login} PASSWORD\" in the {} password file",
                path.display(),
                endpoint.side
            ),
            _ => format!(
                "{}: the {} password file is empty",
                path.display(),
                endpoint.side
            ),
        })
    })
}

fn stream_error<E: std::fmt::Display>(e: imap_next::stream::Error<E>) -> ImapError {
    match e {
        imap_next::stream::Error::State(e) => ImapError::Protocol(e.to_string()),
        imap_next::stream::Error::Closed => ImapError::Io("connection closed by the server".into()),
        other => ImapError::Io(other.to_string()),
    }
}

impl Session {
    /// Connects to `endpoint`, secures the connection and logs in to the mailbox
    /// `login` (already expanded from the endpoint's template).
    ///
    /// `imap://` without STARTTLS, and any certificate that does not verify, are
    /// refused before credentials are sent unless `insecure`.
    pub async fn connect(
        endpoint: &Endpoint,
        login: &str,
        insecure: bool,
    ) -> Result<Session, ImapError> {
        let label = format!("{} {login}", endpoint.side);
        let secret = password(endpoint, login)?;
        let addr = format!("{}:{}", endpoint.host, endpoint.port);
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        let tcp = tokio::time::timeout(RESPONSE_TIMEOUT, connect)
            .await
            .map_err(|_| ImapError::Timeout(RESPONSE_TIMEOUT.as_secs()))?
            .map_err(|e| ImapError::Io(format!("{} {addr}: cannot connect: {e}", endpoint.side)))?;
        // Commands and their literals are written whole; Nagle would only delay them.
        let _ = tcp.set_nodelay(true);
        let tls_config = tls::client_config(endpoint.ca.as_deref(), insecure)?;
        let server_name = tls::server_name(&endpoint.host)?;
        let handshake = |tcp: TcpStream| {
            let connector = tokio_rustls::TlsConnector::from(tls_config.clone());
            let server_name = server_name.clone();
            let addr = addr.clone();
            async move {
                let mut tls = connector
                    .connect(server_name, tcp)
                    .await
                    .map_err(|e| ImapError::Tls(format!("{addr}: {e}")))?;
                // imap-next hands a whole APPEND literal to rustls at once; the
                // default 64 KiB send buffer limit would refuse a big message.
                // Memory stays bounded by the copy's batch size.
                tls.get_mut().1.set_buffer_limit(None);
                Ok::<_, ImapError>(tls)
            }
        };
        let options = |discard_greeting: bool| {
            let mut o = Options::default();
            o.max_response_size = MAX_RESPONSE;
            o.discard_greeting = discard_greeting;
            o
        };

        let mut session = match endpoint.security {
            Security::Implicit => {
                let tls = handshake(tcp).await?;
                let mut s = Session {
                    stream: Stream::tls(tokio_rustls::TlsStream::Client(tls)),
                    client: Client::new(options(false)),
                    next_tag: 1,
                    capabilities: Vec::new(),
                    label,
                };
                s.greeting().await?;
                s
            }
            Security::StartTls => {
                let mut s = Session {
                    stream: Stream::insecure(tcp),
                    client: Client::new(options(false)),
                    next_tag: 1,
                    capabilities: Vec::new(),
                    label,
                };
                s.greeting().await?;
                s.refresh_capabilities().await?;
                if s.has("STARTTLS") {
                    // RFC 3501 §6.2.1; nothing the server sent before the
                    // handshake is trusted afterwards (capabilities are asked again).
                    s.run(CommandBody::StartTLS).await?;
                    let tcp = TcpStream::from(s.stream);
                    let tls = handshake(tcp).await?;
                    s.stream = Stream::tls(tokio_rustls::TlsStream::Client(tls));
                    s.client = Client::new(options(true));
                } else if !insecure {
                    return Err(ImapError::Insecure(format!(
                        "{} {addr} does not offer STARTTLS",
                        endpoint.side
                    )));
                } else {
                    tracing::warn!(
                        "{} {addr}: no STARTTLS; continuing in plaintext as allowed",
                        endpoint.side
                    );
                }
                s
            }
        };
        session.refresh_capabilities().await?;
        session.login(endpoint, login, secret).await?;
        session.refresh_capabilities().await?;
        tracing::debug!("{}: capabilities {:?}", session.label, session.capabilities);
        Ok(session)
    }

    async fn next_event(&mut self) -> Result<Event, ImapError> {
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.stream.next(&mut self.client)).await {
            Err(_) => Err(ImapError::Timeout(RESPONSE_TIMEOUT.as_secs())),
            Ok(Err(e)) => Err(stream_error(e)),
            Ok(Ok(event)) => Ok(event),
        }
    }

    async fn greeting(&mut self) -> Result<(), ImapError> {
        loop {
            if let Event::GreetingReceived { greeting } = self.next_event().await? {
                use imap_next::imap_types::response::GreetingKind;
                return match greeting.kind {
                    GreetingKind::Bye => Err(ImapError::Bye(greeting.text.to_string())),
                    _ => Ok(()),
                };
            }
        }
    }

    fn tag(&mut self) -> String {
        let tag = format!("M{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    fn command(
        &mut self,
        body: CommandBody<'static>,
    ) -> Result<(String, Command<'static>), ImapError> {
        let tag = self.tag();
        let command = Command::new(tag.clone(), body)
            .map_err(|e| ImapError::Protocol(format!("tag: {e:?}")))?;
        Ok((tag, command))
    }

    /// Sends one command and waits for its completion; NO and BAD are errors.
    async fn run(&mut self, body: CommandBody<'static>) -> Result<Response, ImapError> {
        let name = body.name();
        let (tag, command) = self.command(body)?;
        self.client.enqueue_command(command);
        let mut response = Response {
            data: Vec::new(),
            untagged: Vec::new(),
        };
        loop {
            match self.next_event().await? {
                Event::DataReceived { data } => response.data.push(data),
                Event::StatusReceived { status } => match status {
                    Status::Tagged(t) if t.tag.as_ref() == tag => {
                        return match t.body.kind {
                            StatusKind::Ok => Ok(response),
                            StatusKind::No | StatusKind::Bad => Err(ImapError::Refused {
                                command: name,
                                text: status_text(&t.body),
                                temporary: is_temporary_code(&t.body),
                            }),
                        };
                    }
                    Status::Untagged(body) => response.untagged.push(body),
                    Status::Bye(bye) => return Err(ImapError::Bye(bye.text.to_string())),
                    Status::Tagged(_) => {}
                },
                Event::CommandRejected { status, .. } => {
                    return Err(refusal(name, &status));
                }
                _ => {}
            }
        }
    }

    async fn refresh_capabilities(&mut self) -> Result<(), ImapError> {
        let response = self.run(CommandBody::Capability).await?;
        self.capabilities = response
            .data
            .iter()
            .filter_map(|d| match d {
                Data::Capability(caps) => Some(
                    caps.as_ref()
                        .iter()
                        .map(|c| c.to_string().to_ascii_uppercase()),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        Ok(())
    }

    /// Whether the server advertised `capability` (upper case).
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    async fn login(
        &mut self,
        endpoint: &Endpoint,
        login: &str,
        secret: String,
    ) -> Result<(), ImapError> {
        let refused = |e: ImapError| match e {
            ImapError::Refused { text, .. } => ImapError::Login {
                login: login.to_string(),
                text,
            },
            other => other,
        };
        match endpoint.auth {
            Auth::Password | Auth::Master => {
                let user = match endpoint.auth {
                    // Dovecot's master-user login (auth_master_user_separator = *).
                    Auth::Master => {
                        format!("{login}*{}", endpoint.master_user.as_deref().unwrap_or(""))
                    }
                    _ => login.to_string(),
                };
                if self.has("LOGINDISABLED") {
                    return Err(ImapError::Insecure(format!(
                        "{} refuses LOGIN on this connection (LOGINDISABLED)",
                        self.label
                    )));
                }
                let body = CommandBody::login(user.clone(), secret)
                    .map_err(|e| ImapError::Protocol(format!("login: {e:?}")))?;
                self.run(body).await.map_err(refused)?;
            }
            Auth::Authzid => {
                // RFC 4616: message = [authzid] NUL authcid NUL passwd.
                let master = endpoint.master_user.as_deref().unwrap_or("");
                let mut plain = Vec::new();
                plain.extend_from_slice(login.as_bytes());
                plain.push(0);
                plain.extend_from_slice(master.as_bytes());
                plain.push(0);
                plain.extend_from_slice(secret.as_bytes());
                self.authenticate_plain(plain).await.map_err(refused)?;
            }
        }
        Ok(())
    }

    async fn authenticate_plain(&mut self, plain: Vec<u8>) -> Result<(), ImapError> {
        // RFC 4959 SASL-IR saves a round trip where offered.
        let body = if self.has("SASL-IR") {
            CommandBody::authenticate_with_ir(AuthMechanism::Plain, plain.clone())
        } else {
            CommandBody::authenticate(AuthMechanism::Plain)
        };
        let (_, command) = self.command(body)?;
        self.client.enqueue_command(command);
        let mut pending = Some(plain);
        loop {
            match self.next_event().await? {
                Event::AuthenticateContinuationRequestReceived { .. } => {
                    let data = match pending.take() {
                        Some(p) => AuthenticateData::r#continue(p),
                        None => AuthenticateData::Cancel,
                    };
                    self.client
                        .set_authenticate_data(data)
                        .map_err(|e| ImapError::Protocol(format!("AUTHENTICATE: {e:?}")))?;
                }
                Event::AuthenticateStatusReceived { status, .. } => {
                    return match status {
                        Status::Tagged(t) if t.body.kind == StatusKind::Ok => Ok(()),
                        other => Err(refusal("AUTHENTICATE", &other)),
                    };
                }
                Event::StatusReceived {
                    status: Status::Bye(bye),
                } => return Err(ImapError::Bye(bye.text.to_string())),
                _ => {}
            }
        }
    }

    /// LIST "" "*": every folder with its special use.
    pub async fn list(&mut self) -> Result<Vec<Folder>, ImapError> {
        let body =
            CommandBody::list("", "*").map_err(|e| ImapError::Protocol(format!("LIST: {e:?}")))?;
        let response = self.run(body).await?;
        let mut folders = Vec::new();
        for data in response.data {
            if let Data::List {
                items,
                delimiter,
                mailbox,
            } = data
            {
                let mut folder = Folder {
                    name: mailbox_name(&mailbox),
                    delimiter: delimiter.map(|d| d.inner()),
                    special_use: None,
                    no_select: false,
                };
                for item in &items {
                    match item {
                        FlagNameAttribute::Noselect => folder.no_select = true,
                        other => {
                            let text = other.to_string().to_ascii_lowercase();
                            let text = text.trim_start_matches('\\');
                            match text {
                                "nonexistent" => folder.no_select = true,
                                "sent" | "drafts" | "trash" | "junk" | "archive" | "all"
                                | "flagged" => folder.special_use = Some(text.to_string()),
                                _ => {}
                            }
                        }
                    }
                }
                folders.push(folder);
            }
        }
        Ok(folders)
    }

    /// GETQUOTAROOT INBOX (RFC 9208): the STORAGE resource of the first root that
    /// has one; `None` when the server has no QUOTA extension or no storage limit.
    pub async fn quota(&mut self) -> Result<Option<Quota>, ImapError> {
        if !self.has("QUOTA") {
            return Ok(None);
        }
        let response = self
            .run(CommandBody::GetQuotaRoot {
                mailbox: Mailbox::Inbox,
            })
            .await?;
        for data in &response.data {
            if let Data::Quota { quotas, .. } = data {
                for q in quotas.as_ref() {
                    if q.resource.to_string().eq_ignore_ascii_case("STORAGE") {
                        // Units of 1024 octets (RFC 9208 §5.1).
                        return Ok(Some(Quota {
                            usage: q.usage.saturating_mul(1024),
                            limit: q.limit.saturating_mul(1024),
                        }));
                    }
                }
            }
        }
        Ok(None)
    }

    /// SELECT (read-write) or EXAMINE (read-only, so fetching never sets \Seen).
    pub async fn open(&mut self, name: &str, write: bool) -> Result<Selected, ImapError> {
        let mb = mailbox(name)?;
        let body = if write {
            CommandBody::select(mb)
        } else {
            CommandBody::examine(mb)
        }
        .map_err(|e| ImapError::Protocol(format!("SELECT {name}: {e:?}")))?;
        let response = self.run(body).await?;
        let mut selected = Selected {
            uid_validity: 0,
            exists: 0,
        };
        for data in &response.data {
            if let Data::Exists(n) = data {
                selected.exists = *n;
            }
        }
        for status in &response.untagged {
            if let Some(Code::UidValidity(v)) = &status.code {
                selected.uid_validity = v.get();
            }
        }
        Ok(selected)
    }

    /// UID SEARCH on INTERNALDATE (RFC 3501 §6.4.4: SINCE is inclusive, BEFORE
    /// exclusive; both compare dates, not times).
    pub async fn search(
        &mut self,
        since: Option<chrono::NaiveDate>,
        before: Option<chrono::NaiveDate>,
    ) -> Result<Vec<u32>, ImapError> {
        let mut keys = Vec::new();
        if let Some(d) = since {
            keys.push(SearchKey::Since(NaiveDate::unvalidated(d)));
        }
        if let Some(d) = before {
            keys.push(SearchKey::Before(NaiveDate::unvalidated(d)));
        }
        if keys.is_empty() {
            keys.push(SearchKey::All);
        }
        let response = self
            .run(CommandBody::search(None, vec1(keys)?, true))
            .await?;
        let mut uids: Vec<u32> = response
            .data
            .iter()
            .filter_map(|d| match d {
                Data::Search(uids, ..) => Some(uids.iter().map(|u| u.get())),
                _ => None,
            })
            .flatten()
            .collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    async fn fetch(
        &mut self,
        uids: &[u32],
        items: Vec<MessageDataItemName<'static>>,
    ) -> Result<Vec<Vec<MessageDataItem<'static>>>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = sequence_set(uids);
        let body = CommandBody::fetch(set.as_str(), items, true)
            .map_err(|e| ImapError::Protocol(format!("UID FETCH {set}: {e:?}")))?;
        let response = self.run(body).await?;
        Ok(response
            .data
            .into_iter()
            .filter_map(|d| match d {
                Data::Fetch { items, .. } => Some(items.into_iter().collect()),
                _ => None,
            })
            .collect())
    }

    /// UID and RFC822.SIZE of `uids`.
    pub async fn sizes(&mut self, uids: &[u32]) -> Result<Vec<MessageMeta>, ImapError> {
        let fetched = self
            .fetch(
                uids,
                vec![MessageDataItemName::Uid, MessageDataItemName::Rfc822Size],
            )
            .await?;
        Ok(fetched
            .into_iter()
            .filter_map(|items| {
                let mut uid = None;
                let mut size = 0;
                for item in items {
                    match item {
                        MessageDataItem::Uid(u) => uid = Some(u.get()),
                        MessageDataItem::Rfc822Size(s) => size = s,
                        _ => {}
                    }
                }
                Some(MessageMeta { uid: uid?, size })
            })
            .collect())
    }

    /// The header block (BODY.PEEK[HEADER]) of `uids`, for matching by
    /// Message-ID or header hash.
    pub async fn headers(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
        let fetched = self
            .fetch(
                uids,
                vec![
                    MessageDataItemName::Uid,
                    MessageDataItemName::BodyExt {
                        section: Some(Section::Header(None)),
                        partial: None,
                        peek: true,
                    },
                ],
            )
            .await?;
        Ok(fetched
            .into_iter()
            .filter_map(|items| {
                let mut uid = None;
                let mut header = Vec::new();
                for item in items {
                    match item {
                        MessageDataItem::Uid(u) => uid = Some(u.get()),
                        MessageDataItem::BodyExt { data, .. } => {
                            header = data
                                .into_option()
                                .map(|c| c.into_owned())
                                .unwrap_or_default()
                        }
                        _ => {}
                    }
                }
                Some((uid?, header))
            })
            .collect())
    }

    /// Whole messages with flags and INTERNALDATE (BODY.PEEK[] so the source's
    /// \Seen flags are left alone).
    pub async fn messages(&mut self, uids: &[u32]) -> Result<Vec<Message>, ImapError> {
        let fetched = self
            .fetch(
                uids,
                vec![
                    MessageDataItemName::Uid,
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::BodyExt {
                        section: None,
                        partial: None,
                        peek: true,
                    },
                ],
            )
            .await?;
        let mut out = Vec::with_capacity(fetched.len());
        for items in fetched {
            let mut uid = None;
            let mut message = Message {
                uid: 0,
                flags: Vec::new(),
                date: None,
                body: Vec::new(),
            };
            for item in items {
                match item {
                    MessageDataItem::Uid(u) => uid = Some(u.get()),
                    MessageDataItem::Flags(flags) => {
                        message.flags = flags
                            .into_iter()
                            .filter_map(|f| match f {
                                FlagFetch::Flag(f) => Some(f),
                                FlagFetch::Recent => None,
                            })
                            .collect()
                    }
                    MessageDataItem::InternalDate(d) => message.date = Some(d),
                    MessageDataItem::BodyExt { data, .. } => {
                        message.body = data
                            .into_option()
                            .map(|c| c.into_owned())
                            .unwrap_or_default()
                    }
                    _ => {}
                }
            }
            // A FETCH without UID is an unsolicited flag update; skip it.
            if let Some(uid) = uid {
                message.uid = uid;
                out.push(message);
            }
        }
        Ok(out)
    }

    /// CREATE; a folder that already exists is fine.
    pub async fn create(&mut self, name: &str) -> Result<(), ImapError> {
        let body = CommandBody::create(mailbox(name)?)
            .map_err(|e| ImapError::Protocol(format!("CREATE: {e:?}")))?;
        match self.run(body).await {
            Ok(_) => Ok(()),
            // RFC 5530 ALREADYEXISTS; older servers only say so in the text.
            Err(ImapError::Refused { text, .. })
                if text.to_ascii_uppercase().contains("ALREADYEXISTS")
                    || text.to_ascii_lowercase().contains("already exists") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// APPENDs `messages` to `folder`, pipelined: with LITERAL+ (RFC 7888) every
    /// command is written without waiting for continuations. Returns one result per
    /// message, in order; `Err` is the server's refusal of that message. A broken
    /// connection is an error for the whole batch (the caller retries it).
    pub async fn append(
        &mut self,
        folder: &str,
        messages: &[Message],
    ) -> Result<Vec<Result<(), AppendRefusal>>, ImapError> {
        let non_sync = self.has("LITERAL+");
        let mb = mailbox(folder)?;
        let mut results: Vec<Option<Result<(), AppendRefusal>>> = vec![None; messages.len()];
        let mut by_tag = HashMap::new();
        let mut by_handle = HashMap::new();
        for (i, m) in messages.iter().enumerate() {
            // A copy: the caller keeps the message to send again if throttled.
            let literal = match Literal::try_from(m.body.clone()) {
                Ok(l) if non_sync => l.into_non_sync(),
                Ok(l) => l,
                Err(e) => {
                    results[i] = Some(Err(AppendRefusal {
                        text: format!("cannot be sent as an IMAP literal: {e}"),
                        temporary: false,
                        limit: false,
                    }));
                    continue;
                }
            };
            let body = CommandBody::Append {
                mailbox: mb.clone(),
                flags: m.flags.clone(),
                date: m.date.clone(),
                message: LiteralOrLiteral8::Literal(literal),
            };
            let (tag, command) = self.command(body)?;
            let handle = self.client.enqueue_command(command);
            by_tag.insert(tag, i);
            by_handle.insert(handle, i);
        }
        let mut open = by_tag.len();
        while open > 0 {
            match self.next_event().await? {
                Event::StatusReceived { status } => match status {
                    Status::Tagged(t) => {
                        if let Some(&i) = by_tag.get(t.tag.as_ref()) {
                            if results[i].is_none() {
                                open -= 1;
                            }
                            results[i] = Some(match t.body.kind {
                                StatusKind::Ok => Ok(()),
                                _ => Err(AppendRefusal {
                                    text: status_text(&t.body),
                                    temporary: is_temporary_code(&t.body),
                                    limit: is_limit_code(&t.body),
                                }),
                            });
                        }
                    }
                    Status::Bye(bye) => return Err(ImapError::Bye(bye.text.to_string())),
                    Status::Untagged(_) => {}
                },
                Event::CommandRejected { handle, status, .. } => {
                    if let Some(&i) = by_handle.get(&handle) {
                        if results[i].is_none() {
                            open -= 1;
                        }
                        let body = match &status {
                            Status::Tagged(t) => Some(&t.body),
                            Status::Untagged(b) => Some(b),
                            Status::Bye(_) => None,
                        };
                        results[i] = Some(Err(AppendRefusal {
                            text: body.map(status_text).unwrap_or_else(|| "BYE".into()),
                            temporary: body.is_some_and(is_temporary_code),
                            limit: body.is_some_and(is_limit_code),
                        }));
                    }
                }
                _ => {}
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect())
    }

    /// LOGOUT, ignoring errors (the work is done either way).
    pub async fn logout(mut self) {
        let _ = self.run(CommandBody::Logout).await;
    }
}

/// The server's refusal of one APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRefusal {
    /// Its text with the response code (`[OVERQUOTA] Quota exceeded`).
    pub text: String,
    /// Whether it says to try later.
    pub temporary: bool,
    /// Whether the code is `[LIMIT]`, which may be about the message rather
    /// than the rate (see `copy::judge`).
    pub limit: bool,
}

fn refusal(command: &'static str, status: &Status) -> ImapError {
    match status {
        Status::Tagged(t) => ImapError::Refused {
            command,
            text: status_text(&t.body),
            temporary: is_temporary_code(&t.body),
        },
        Status::Untagged(b) => ImapError::Refused {
            command,
            text: status_text(b),
            temporary: is_temporary_code(b),
        },
        Status::Bye(b) => ImapError::Bye(match &b.code {
            Some(c) => format!("[{}] {}", code_name(c), b.text),
            None => b.text.to_string(),
        }),
    }
}

/// `1:3,7,9:10` for sorted UIDs.
pub fn sequence_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_sets_compress_runs() {
        assert_eq!(sequence_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(sequence_set(&[5]), "5");
        assert_eq!(sequence_set(&[]), "");
    }
}
