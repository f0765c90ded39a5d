//! The commands the migrator sends, each turning the typed responses into the
//! small values of [`super`].

use super::session::Session;
use super::{vec1, AppendRefusal, Folder, ImapError, Message, MessageMeta, Quota, Selected};
use imap_next::client::Event;
use imap_next::imap_types::command::{CommandBody, FetchModifier, SelectParameter};
use imap_next::imap_types::core::{AString, Literal};
use imap_next::imap_types::datetime::NaiveDate;
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::fetch::{MessageDataItem, MessageDataItemName, Section};
use imap_next::imap_types::flag::{Flag, FlagFetch, FlagNameAttribute, StoreResponse, StoreType};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Data, Status, StatusKind};
use imap_next::imap_types::search::SearchKey;
use std::collections::HashMap;

/// The mailbox name as a string (modified UTF-7 is ASCII).
pub fn mailbox_name(mailbox: &Mailbox) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).into_owned(),
    }
}

/// Flags as FETCH returns them, without `\Recent` (which no client can set).
fn without_recent(flags: Vec<FlagFetch<'static>>) -> Vec<Flag<'static>> {
    flags
        .into_iter()
        .filter_map(|f| match f {
            FlagFetch::Flag(f) => Some(f),
            FlagFetch::Recent => None,
        })
        .collect()
}

fn mailbox(name: &str) -> Result<Mailbox<'static>, ImapError> {
    Mailbox::try_from(name.to_string())
        .map_err(|e| ImapError::Protocol(format!("mailbox name {name:?}: {e:?}")))
}

impl Session {
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
    /// EXAMINE asks for HIGHESTMODSEQ where the server has CONDSTORE (RFC
    /// 7162 §3.1.8), so an unchanged folder is known from this one command.
    pub async fn open(&mut self, name: &str, write: bool) -> Result<Selected, ImapError> {
        let mb = mailbox(name)?;
        let mut body = if write {
            CommandBody::select(mb)
        } else {
            CommandBody::examine(mb)
        }
        .map_err(|e| ImapError::Protocol(format!("SELECT {name}: {e:?}")))?;
        if let CommandBody::Examine { parameters, .. } = &mut body {
            if self.can_condstore() {
                parameters.push(SelectParameter::CondStore);
            }
        }
        let response = self.run(body).await?;
        let mut selected = Selected {
            uid_validity: 0,
            exists: 0,
            uid_next: 0,
            highest_modseq: 0,
        };
        for data in &response.data {
            if let Data::Exists(n) = data {
                selected.exists = *n;
            }
        }
        for status in &response.untagged {
            match &status.code {
                Some(Code::UidValidity(v)) => selected.uid_validity = v.get(),
                Some(Code::UidNext(n)) => selected.uid_next = n.get(),
                Some(Code::HighestModSeq(m)) => selected.highest_modseq = m.get(),
                _ => {}
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

    /// Whether the server offers CONDSTORE (RFC 7162; QRESYNC implies it).
    pub fn can_condstore(&self) -> bool {
        self.has("CONDSTORE") || self.has("QRESYNC")
    }

    /// UID and flags of every message of the selected folder whose flags
    /// changed after mod-sequence `since` (UID FETCH 1:* (UID FLAGS)
    /// (CHANGEDSINCE since), RFC 7162 §3.1.4.1).
    pub async fn changed_flags(
        &mut self,
        since: u64,
    ) -> Result<Vec<(u32, Vec<Flag<'static>>)>, ImapError> {
        let Some(since) = std::num::NonZeroU64::new(since) else {
            return Ok(Vec::new());
        };
        let mut body = CommandBody::fetch(
            "1:*",
            vec![MessageDataItemName::Uid, MessageDataItemName::Flags],
            true,
        )
        .map_err(|e| ImapError::Protocol(format!("UID FETCH CHANGEDSINCE: {e:?}")))?;
        if let CommandBody::Fetch { modifiers, .. } = &mut body {
            modifiers.push(FetchModifier::ChangedSince(since));
        }
        let response = self.run(body).await?;
        Ok(response
            .data
            .into_iter()
            .filter_map(|d| match d {
                Data::Fetch { items, .. } => {
                    let (mut uid, mut flags) = (None, None);
                    for item in items.into_iter() {
                        match item {
                            MessageDataItem::Uid(u) => uid = Some(u.get()),
                            MessageDataItem::Flags(f) => flags = Some(without_recent(f)),
                            _ => {}
                        }
                    }
                    Some((uid?, flags?))
                }
                _ => None,
            })
            .collect())
    }

    /// UIDs in the selected folder whose Message-ID header contains `<id>`
    /// (UID SEARCH HEADER, a substring match: the angle brackets keep `<1@x>`
    /// from matching `<11@x>`).
    pub async fn search_message_id(&mut self, id: &str) -> Result<Vec<u32>, ImapError> {
        let value = format!("<{id}>");
        let key = SearchKey::Header(
            AString::try_from("Message-ID".to_string())
                .map_err(|e| ImapError::Protocol(format!("SEARCH HEADER: {e:?}")))?,
            AString::try_from(value)
                .map_err(|e| ImapError::Protocol(format!("SEARCH HEADER {id}: {e:?}")))?,
        );
        let response = self
            .run(CommandBody::search(None, vec1(vec![key])?, true))
            .await?;
        Ok(response
            .data
            .iter()
            .filter_map(|d| match d {
                Data::Search(uids, ..) => Some(uids.iter().map(|u| u.get())),
                _ => None,
            })
            .flatten()
            .collect())
    }

    /// Sets the flags of `uids` in the selected folder to exactly `flags`
    /// (UID STORE FLAGS.SILENT).
    pub async fn store_flags(
        &mut self,
        uids: &[u32],
        flags: &[Flag<'static>],
    ) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = sequence_set(uids);
        let body = CommandBody::store(
            set.as_str(),
            StoreType::Replace,
            StoreResponse::Silent,
            flags.to_vec(),
            true,
        )
        .map_err(|e| ImapError::Protocol(format!("UID STORE {set}: {e:?}")))?;
        self.run(body).await.map(|_| ())
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

    /// The header block (`BODY.PEEK[HEADER]`) of `uids`, for matching by
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
                    MessageDataItem::Flags(flags) => message.flags = without_recent(flags),
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
                        let Some(&i) = by_tag.get(t.tag.as_ref()) else {
                            // A pipelined batch's answer (see `send_multiappend`).
                            self.keep_early(t.tag.as_ref(), t.body);
                            continue;
                        };
                        if results[i].is_none() {
                            open -= 1;
                        }
                        results[i] = Some(match t.body.kind {
                            StatusKind::Ok => Ok(()),
                            _ => Err(AppendRefusal::from_status(Some(&t.body))),
                        });
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
                        results[i] = Some(Err(AppendRefusal::from_status(body)));
                    }
                }
                _ => {}
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect())
    }
}

impl Session {
    /// Whether [`Session::multiappend`] can be used: the server offers
    /// MULTIAPPEND (RFC 3502) and LITERAL+ (so no literal waits for a `+`).
    pub fn can_multiappend(&self) -> bool {
        self.has("MULTIAPPEND") && self.has("LITERAL+") && self.transport.writes_raw()
    }

    /// One APPEND with every message of `messages` (RFC 3502): the server
    /// stores all or none, in one transaction — Dovecot commits (and fsyncs)
    /// once instead of once per message. `Ok(Err)` is its refusal of the lot
    /// (nothing stored; the caller sends them one by one to learn which).
    pub async fn multiappend(
        &mut self,
        folder: &str,
        messages: &[Message],
    ) -> Result<Result<(), AppendRefusal>, ImapError> {
        match self.send_multiappend(folder, messages)? {
            Ok(tag) => self.append_answer(&tag).await,
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// Writes one MULTIAPPEND of `messages` without waiting for its answer
    /// and returns its tag ([`Session::append_answer`] waits for it), so the
    /// next batch can go out while the target still stores this one. With
    /// LITERAL+ nothing in it waits for a continuation. `Ok(Err)`: it cannot
    /// be encoded (a message that is no valid literal); nothing was sent.
    pub fn send_multiappend(
        &mut self,
        folder: &str,
        messages: &[Message],
    ) -> Result<Result<String, AppendRefusal>, ImapError> {
        let tag = self.next_tag_string();
        let wire = match multiappend_bytes(&tag, &mailbox(folder)?, messages) {
            Ok(w) => w,
            Err(why) => {
                return Ok(Err(AppendRefusal {
                    text: why,
                    temporary: false,
                    limit: false,
                }))
            }
        };
        if !self.transport.write_raw(wire) {
            return Err(ImapError::Protocol(
                "MULTIAPPEND needs the session's own transport".into(),
            ));
        }
        Ok(Ok(tag))
    }

    /// Waits for the answer to the APPEND tagged `tag` (from
    /// [`Session::send_multiappend`]); the answers of other commands
    /// pipelined meanwhile are kept for whoever waits for them.
    pub async fn append_answer(
        &mut self,
        tag: &str,
    ) -> Result<Result<(), AppendRefusal>, ImapError> {
        let verdict = |body: &imap_next::imap_types::response::StatusBody| match body.kind {
            StatusKind::Ok => Ok(()),
            _ => Err(AppendRefusal::from_status(Some(body))),
        };
        if let Some(body) = self.take_early(tag) {
            return Ok(verdict(&body));
        }
        loop {
            match self.next_event().await? {
                Event::StatusReceived {
                    status: Status::Tagged(t),
                } => {
                    if t.tag.as_ref() == tag {
                        return Ok(verdict(&t.body));
                    }
                    self.keep_early(t.tag.as_ref(), t.body);
                }
                Event::StatusReceived {
                    status: Status::Bye(bye),
                } => return Err(ImapError::Bye(bye.text.to_string())),
                _ => {}
            }
        }
    }
}

/// The wire form of `TAG APPEND mailbox (flags) date {n+}\r\nmsg (flags) date
/// {n+}\r\nmsg ...\r\n` (RFC 3502 §6.3.11), built from imap-codec's encoding of
/// single APPENDs of an empty message, so flags, dates and the mailbox name
/// are quoted exactly as for any other command; each message's bytes are
/// copied once, straight after its literal's `{n+}` (encoding the whole
/// APPEND copied each message three times and checked it byte by byte
/// twice: a third of the client's CPU). `Err` when a message cannot be sent
/// as a literal (a NUL byte, RFC 3501 §9 `CHAR8`).
fn multiappend_bytes(
    tag: &str,
    mb: &Mailbox<'static>,
    messages: &[Message],
) -> Result<Vec<u8>, String> {
    use imap_codec::encode::Encoder;
    // "TAG APPEND mailbox (flags) date": an empty message minus its
    // ` {0+}\r\n\r\n`.
    const EMPTY_LITERAL: &[u8] = b" {0+}\r\n\r\n";
    let encode = |flags: Vec<imap_next::imap_types::flag::Flag<'static>>,
                  date: Option<imap_next::imap_types::datetime::DateTime>|
     -> Result<Vec<u8>, String> {
        let command = imap_next::imap_types::command::Command::new(
            tag.to_string(),
            CommandBody::Append {
                mailbox: mb.clone(),
                flags,
                date,
                message: LiteralOrLiteral8::Literal(Literal::unvalidated_non_sync(Vec::new())),
            },
        )
        .map_err(|e| format!("tag: {e:?}"))?;
        let mut wire = imap_codec::CommandCodec::default().encode(&command).dump();
        match wire.strip_suffix(EMPTY_LITERAL) {
            Some(head) => wire.truncate(head.len()),
            None => return Err("unexpected APPEND encoding".into()),
        }
        Ok(wire)
    };
    let prefix = encode(Vec::new(), None)?;
    let total: usize = messages.iter().map(|m| m.body.len() + 64).sum();
    let mut out = Vec::with_capacity(prefix.len() + total + 2);
    out.extend_from_slice(&prefix);
    for m in messages {
        if let Some(at) = memchr::memchr(0, &m.body) {
            return Err(format!(
                "cannot be sent as an IMAP literal: a NUL byte at offset {at}"
            ));
        }
        let head = encode(m.flags.clone(), m.date.clone())?;
        // ` (flags) date`, then the literal.
        let meta = head
            .strip_prefix(prefix.as_slice())
            .ok_or("unexpected APPEND encoding")?;
        out.extend_from_slice(meta);
        out.extend_from_slice(format!(" {{{}+}}\r\n", m.body.len()).as_bytes());
        out.extend_from_slice(&m.body);
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
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
    fn multiappend_is_one_command_with_every_message() {
        use imap_next::imap_types::flag::Flag;
        let m = |uid, flags: Vec<Flag<'static>>, body: &[u8]| Message {
            uid,
            flags,
            date: None,
            body: body.to_vec(),
        };
        let messages = [
            m(1, vec![Flag::Seen], b"Subject: a\r\n\r\none\r\n"),
            m(2, vec![], b"Subject: b\r\n\r\ntwo\r\n"),
        ];
        let wire = multiappend_bytes("M7", &mailbox("Work/2024").unwrap(), &messages).unwrap();
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "M7 APPEND Work/2024 (\\Seen) {19+}\r\nSubject: a\r\n\r\none\r\n \
             {19+}\r\nSubject: b\r\n\r\ntwo\r\n\r\n"
        );
    }

    #[test]
    fn multiappend_refuses_what_is_no_literal() {
        let m = Message {
            uid: 1,
            flags: Vec::new(),
            date: None,
            body: b"Subject: a\r\n\r\nnul \0 here\r\n".to_vec(),
        };
        let why = multiappend_bytes("M1", &Mailbox::Inbox, &[m]).unwrap_err();
        assert!(why.contains("NUL byte at offset 18"), "{why}");
    }

    #[test]
    fn sequence_sets_compress_runs() {
        assert_eq!(sequence_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(sequence_set(&[5]), "5");
        assert_eq!(sequence_set(&[]), "");
    }
}
