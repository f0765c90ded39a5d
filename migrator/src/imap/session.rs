//! One IMAP session: tags each command, waits for its tagged completion
//! (RFC 3501 §7.1) and keeps the capabilities. The commands themselves are in
//! [`super::commands`], the way a session is opened and logged in is in
//! [`super::connect`].
//!
//! A session runs over a real connection or, through [`Session::over`], over any
//! byte stream: the scripted tests talk to it through `tokio::io::duplex`.

use super::compress::Compression;
use super::transport::{ByteStream, Pipe, Transport};
use super::{code_name, is_temporary_code, status_text, ImapError};
use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::response::{Data, Status, StatusBody, StatusKind};
use std::time::Duration;

/// How long one response may take (a 20 MB FETCH on a slow link fits).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest response accepted (one FETCH of a huge message).
const MAX_RESPONSE: u32 = 200 * 1024 * 1024;

/// A session (logged in, once [`super::connect`] has done its work).
pub struct Session {
    pub(super) transport: Transport,
    pub(super) client: Client,
    pub(super) next_tag: u32,
    pub(super) capabilities: Vec<String>,
    /// `side login` for messages.
    pub(super) label: String,
    /// Tagged completions that came while another command was being waited
    /// for: with pipelined MULTIAPPENDs, the answer to the next batch can
    /// arrive while the one-by-one APPENDs of a refused batch are awaited.
    pub(super) early: Vec<(String, StatusBody<'static>)>,
    /// The server's address is a loopback one (`compress = "auto"` leaves
    /// such links uncompressed).
    pub(super) loopback: bool,
    /// What became of the side's `compress` setting ([`super::compress`]).
    pub(super) compression: Compression,
}

/// The untagged data and statuses a command produced, and its completion.
pub(super) struct Response {
    pub(super) data: Vec<Data<'static>>,
    pub(super) untagged: Vec<StatusBody<'static>>,
}

/// The client options every session uses; `discard_greeting` after STARTTLS,
/// where no second greeting comes.
pub(super) fn client_options(discard_greeting: bool) -> Options {
    let mut o = Options::default();
    o.max_response_size = MAX_RESPONSE;
    o.discard_greeting = discard_greeting;
    o
}

impl Session {
    /// A session over any byte stream, not logged in: reads the greeting and asks
    /// for the capabilities. `label` names it in messages (`target alice@...`).
    /// What the scripted tests use; [`Session::connect`] is the real thing.
    pub async fn over(stream: impl ByteStream, label: &str) -> Result<Session, ImapError> {
        let mut session = Session::new(
            Transport::Pipe(Pipe::new(Box::new(stream))),
            label.to_string(),
        );
        session.greeting().await?;
        session.refresh_capabilities().await?;
        Ok(session)
    }

    /// A session whose greeting is still to be read.
    pub(super) fn new(transport: Transport, label: String) -> Session {
        Session {
            transport,
            client: Client::new(client_options(false)),
            next_tag: 1,
            capabilities: Vec::new(),
            label,
            early: Vec::new(),
            loopback: false,
            compression: Compression::NotAsked,
        }
    }

    pub(super) async fn next_event(&mut self) -> Result<Event, ImapError> {
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.transport.next(&mut self.client)).await {
            Err(_) => Err(ImapError::Timeout(RESPONSE_TIMEOUT.as_secs())),
            Ok(result) => result,
        }
    }

    pub(super) async fn greeting(&mut self) -> Result<(), ImapError> {
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

    /// A fresh tag, for a command written without imap-next's encoder.
    pub(super) fn next_tag_string(&mut self) -> String {
        self.tag()
    }

    fn tag(&mut self) -> String {
        let tag = format!("M{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    pub(super) fn command(
        &mut self,
        body: CommandBody<'static>,
    ) -> Result<(String, Command<'static>), ImapError> {
        let tag = self.tag();
        let command = Command::new(tag.clone(), body)
            .map_err(|e| ImapError::Protocol(format!("tag: {e:?}")))?;
        Ok((tag, command))
    }

    /// Sends one command and waits for its completion; NO and BAD are errors.
    pub(super) async fn run(&mut self, body: CommandBody<'static>) -> Result<Response, ImapError> {
        let name = body.name();
        let (tag, command) = self.command(body)?;
        self.client.enqueue_command(command);
        self.completion(&tag, name).await
    }

    /// Waits for the tagged completion of the command `tag` (`name` in
    /// errors), collecting its untagged data; NO and BAD are errors.
    pub(super) async fn completion(
        &mut self,
        tag: &str,
        name: &'static str,
    ) -> Result<Response, ImapError> {
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
                    Status::Tagged(t) => self.keep_early(t.tag.as_ref(), t.body),
                },
                Event::CommandRejected { status, .. } => {
                    return Err(refusal(name, &status));
                }
                _ => {}
            }
        }
    }

    /// Keeps the completion of a command nobody is waiting for right now.
    pub(super) fn keep_early(&mut self, tag: &str, body: StatusBody<'static>) {
        self.early.push((tag.to_string(), body));
    }

    /// The completion of `tag`, if it came while something else was awaited.
    pub(super) fn take_early(&mut self, tag: &str) -> Option<StatusBody<'static>> {
        let i = self.early.iter().position(|(t, _)| t == tag)?;
        Some(self.early.swap_remove(i).1)
    }

    pub(super) async fn refresh_capabilities(&mut self) -> Result<(), ImapError> {
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

    /// LOGOUT, ignoring errors (the work is done either way).
    pub async fn logout(mut self) {
        let _ = self.run(CommandBody::Logout).await;
    }
}

pub(super) fn refusal(command: &'static str, status: &Status) -> ImapError {
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
