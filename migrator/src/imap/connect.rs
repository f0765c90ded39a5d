//! Opening a session for real: TCP, then implicit TLS (RFC 8314) or STARTTLS
//! (RFC 3501 §6.2.1) with a verified certificate, then the login the side is
//! configured for. Insecure connections are refused before any credential is
//! sent, unless allowed. [`Connections`] is both sides of one user.

use super::session::{client_options, refusal, Session, RESPONSE_TIMEOUT};
use super::transport::{Pipe, Transport};
use super::{tls, ImapError, SideError};
use crate::config::{expand, Auth, Config, Endpoint, Security, Side};
use crate::oauth::{sasl, OAuthError, TokenSource};
use imap_next::client::{Client, Event};
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::response::{Status, StatusKind};
use imap_next::stream::Stream;
use relay::address::same_address;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// The two sessions of one user: the mailbox at the source and at the target.
pub struct Connections {
    /// The source mailbox (read-only use: EXAMINE, BODY.PEEK).
    pub src: Session,
    /// The target mailbox.
    pub dst: Session,
}

impl Connections {
    /// LOGOUT on both sides.
    pub async fn logout(self) {
        self.src.logout().await;
        self.dst.logout().await;
    }
}

/// What [`Connector::open`] returns.
pub type Opening<'a> = Pin<Box<dyn Future<Output = Result<Connections, SideError>> + Send + 'a>>;

/// Where a user's two sessions come from: the configured servers ([`Servers`]),
/// or, in the scripted tests, in-memory ones. The copy reconnects through it
/// after a lost connection.
pub trait Connector: Send + Sync {
    /// Logs in to both sides for the user `address`, whose contact is `target`
    /// (the login templates may use either).
    fn open<'a>(&'a self, address: &'a str, target: &'a str) -> Opening<'a>;
}

/// The `[source]` and `[target]` servers of the configuration, with each
/// `auth = "oauth2"` side's token, shared by every user of the run.
#[derive(Debug, Clone)]
pub struct Servers {
    source: Endpoint,
    target: Endpoint,
    /// Plaintext and unverified certificates allowed.
    insecure: bool,
    source_tokens: Option<Arc<TokenSource>>,
    target_tokens: Option<Arc<TokenSource>>,
    /// Per side: a session has already warned that `compress` did not get
    /// its way (said once per run, not once per mailbox).
    compress_warned: Arc<[AtomicBool; 2]>,
}

impl Servers {
    /// The servers `config` names. Fails when an OAuth2 side's token endpoint
    /// cannot be used at all (`http://` without `insecure`).
    pub fn new(config: &Config, insecure: bool) -> Result<Servers, OAuthError> {
        Ok(Servers {
            source: config.source.clone(),
            target: config.target.clone(),
            insecure,
            source_tokens: TokenSource::for_endpoint(&config.source, insecure)?.map(Arc::new),
            target_tokens: TokenSource::for_endpoint(&config.target, insecure)?.map(Arc::new),
            compress_warned: Arc::default(),
        })
    }

    /// Warns, once per side and run, when `session` is uncompressed though
    /// the side's `compress` wanted it: `always` on a server that does not
    /// offer COMPRESS=DEFLATE (`check` fails it), or a refused COMPRESS. The
    /// copy goes on: compression saves time, it is not needed to migrate.
    fn warn_uncompressed(&self, endpoint: &Endpoint, session: &Session) {
        let warned = match endpoint.side {
            Side::Source => &self.compress_warned[0],
            Side::Target => &self.compress_warned[1],
        };
        if session.compression().disappoints(endpoint.compress)
            && !warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "{}: compression {}; copying uncompressed",
                endpoint.side,
                session.compression().describe()
            );
        }
    }

    /// The token source of `side`, when it logs in with OAuth2.
    pub fn tokens(&self, side: Side) -> Option<&TokenSource> {
        match side {
            Side::Source => self.source_tokens.as_deref(),
            Side::Target => self.target_tokens.as_deref(),
        }
    }

    /// Gets each OAuth2 side's token once, before any user starts: a client
    /// the endpoint refuses is a configuration error for the whole run.
    pub async fn prefetch_tokens(&self) -> Result<(), OAuthError> {
        for side in [Side::Source, Side::Target] {
            if let Some(tokens) = self.tokens(side) {
                tokens.get().await?;
            }
        }
        Ok(())
    }
}

impl Connector for Servers {
    fn open<'a>(&'a self, address: &'a str, target: &'a str) -> Opening<'a> {
        Box::pin(async move {
            let src_login = expand(&self.source.login, address, target);
            let dst_login = expand(&self.target.login, address, target);
            let src = Session::connect(
                &self.source,
                &src_login,
                self.insecure,
                self.tokens(Side::Source),
            )
            .await
            .map_err(SideError::on(Side::Source))?;
            let dst = Session::connect(
                &self.target,
                &dst_login,
                self.insecure,
                self.tokens(Side::Target),
            )
            .await
            .map_err(SideError::on(Side::Target))?;
            self.warn_uncompressed(&self.source, &src);
            self.warn_uncompressed(&self.target, &dst);
            Ok(Connections { src, dst })
        })
    }
}

/// Finds the password for `login` in `endpoint.password_file`.
pub(crate) fn password(endpoint: &Endpoint, login: &str) -> Result<String, ImapError> {
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
            same_address(user, login).then(|| pass.trim().to_string())
        }),
        Auth::Master | Auth::Authzid => lines.next().map(str::to_string),
        Auth::OAuth2 => None,
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

/// The TLS client for one side: verified against webpki roots plus the side's
/// `ca`, unless insecure connections are allowed.
struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    /// `host:port`, for messages.
    addr: String,
}

impl Tls {
    fn new(endpoint: &Endpoint, insecure: bool) -> Result<Tls, ImapError> {
        let config = tls::client_config(endpoint.ca.as_deref(), insecure)?;
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(config),
            server_name: tls::server_name(&endpoint.host)?,
            addr: format!("{}:{}", endpoint.host, endpoint.port),
        })
    }

    /// The TLS handshake; the session then runs over our own [`Pipe`], which
    /// reads 64 KiB of plaintext at a time (imap-next's TLS stream decrypts
    /// into 128-byte pieces, and grows its read buffer 64 bytes at a time: a
    /// read syscall per 64 bytes of a big FETCH).
    async fn handshake(&self, tcp: TcpStream) -> Result<Transport, ImapError> {
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| ImapError::Tls(format!("{}: {e}", self.addr)))?;
        Ok(Transport::Pipe(Pipe::new(Box::new(tls))))
    }
}

impl Session {
    /// Connects to `endpoint`, secures the connection and logs in to the mailbox
    /// `login` (already expanded from the endpoint's template).
    ///
    /// `imap://` without STARTTLS, and any certificate that does not verify, are
    /// refused before credentials are sent unless `insecure`. `tokens` is the
    /// side's token source when it logs in with OAuth2.
    pub async fn connect(
        endpoint: &Endpoint,
        login: &str,
        insecure: bool,
        tokens: Option<&TokenSource>,
    ) -> Result<Session, ImapError> {
        let label = format!("{} {login}", endpoint.side);
        let secret = match (endpoint.auth, tokens) {
            (Auth::OAuth2, Some(tokens)) => Credential::Token(tokens),
            (Auth::OAuth2, None) => {
                return Err(ImapError::Protocol(format!(
                    "{label}: auth = \"oauth2\" without a token source"
                )))
            }
            _ => Credential::Password(Zeroizing::new(password(endpoint, login)?)),
        };
        let mut session = Session::secured(endpoint, label, insecure).await?;
        session.login(endpoint, login, secret).await?;
        session.refresh_capabilities().await?;
        tracing::debug!("{}: capabilities {:?}", session.label, session.capabilities);
        session.compress(endpoint.compress).await
    }

    /// Connects to `endpoint` and secures the connection (implicit TLS or
    /// STARTTLS, the certificate verified unless `insecure`), not logged in:
    /// the greeting read and the capabilities asked. What `check` probes.
    pub async fn secured(
        endpoint: &Endpoint,
        label: String,
        insecure: bool,
    ) -> Result<Session, ImapError> {
        let tls = Tls::new(endpoint, insecure)?;
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        let tcp = tokio::time::timeout(RESPONSE_TIMEOUT, connect)
            .await
            .map_err(|_| ImapError::Timeout(RESPONSE_TIMEOUT.as_secs()))?
            .map_err(|e| {
                ImapError::Io(format!(
                    "{} {}: cannot connect: {e}",
                    endpoint.side, tls.addr
                ))
            })?;
        // Commands and their literals are written whole; Nagle would only delay them.
        let _ = tcp.set_nodelay(true);
        let loopback = tcp
            .peer_addr()
            .is_ok_and(|a| a.ip().to_canonical().is_loopback());
        let mut session = match endpoint.security {
            Security::Implicit => {
                let mut s = Session::new(tls.handshake(tcp).await?, label);
                s.greeting().await?;
                s
            }
            Security::StartTls => {
                let mut s = Session::new(Transport::Net(Box::new(Stream::insecure(tcp))), label);
                s.greeting().await?;
                s.refresh_capabilities().await?;
                if s.has("STARTTLS") {
                    s.start_tls(&tls).await?
                } else if !insecure {
                    return Err(ImapError::Insecure(format!(
                        "{} {} does not offer STARTTLS",
                        endpoint.side, tls.addr
                    )));
                } else {
                    tracing::warn!(
                        "{} {}: no STARTTLS; continuing in plaintext as allowed",
                        endpoint.side,
                        tls.addr
                    );
                    s
                }
            }
        };
        session.refresh_capabilities().await?;
        session.loopback = loopback;
        Ok(session)
    }

    /// RFC 3501 §6.2.1: STARTTLS, then the handshake on the same TCP stream.
    /// Nothing the server sent before the handshake is trusted afterwards: the
    /// capabilities are asked again, and no second greeting is awaited.
    async fn start_tls(mut self, tls: &Tls) -> Result<Session, ImapError> {
        self.run(CommandBody::StartTLS).await?;
        let Session {
            transport,
            next_tag,
            label,
            ..
        } = self;
        let Transport::Net(stream) = transport else {
            return Err(ImapError::Protocol(
                "STARTTLS needs a TCP connection".into(),
            ));
        };
        let transport = tls.handshake(TcpStream::from(*stream)).await?;
        Ok(Session {
            transport,
            client: Client::new(client_options(true)),
            next_tag,
            capabilities: Vec::new(),
            label,
            early: Vec::new(),
            loopback: false,
            compression: super::Compression::NotAsked,
        })
    }

    async fn login(
        &mut self,
        endpoint: &Endpoint,
        login: &str,
        credential: Credential<'_>,
    ) -> Result<(), ImapError> {
        let secret = match credential {
            Credential::Token(tokens) => return self.login_oauth2(endpoint, login, tokens).await,
            Credential::Password(p) => p,
        };
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
                let body = CommandBody::login(user.clone(), secret.to_string())
                    .map_err(|e| ImapError::Protocol(format!("login: {e:?}")))?;
                self.run(body).await.map_err(refused)?;
            }
            Auth::Authzid => {
                // RFC 4616: message = [authzid] NUL authcid NUL passwd.
                let master = endpoint.master_user.as_deref().unwrap_or("");
                let mut plain = Zeroizing::new(Vec::new());
                plain.extend_from_slice(login.as_bytes());
                plain.push(0);
                plain.extend_from_slice(master.as_bytes());
                plain.push(0);
                plain.extend_from_slice(secret.as_bytes());
                self.authenticate(AuthMechanism::Plain, plain, None)
                    .await
                    .map_err(refused)?;
            }
            Auth::OAuth2 => unreachable!("handled above"),
        }
        Ok(())
    }

    /// XOAUTH2 / OAUTHBEARER with the side's shared token. A refusal (not
    /// throttling) drops the token and tries once more with a new one; the
    /// second refusal is the user's failure, in the server's words.
    async fn login_oauth2(
        &mut self,
        endpoint: &Endpoint,
        login: &str,
        tokens: &TokenSource,
    ) -> Result<(), ImapError> {
        let mechanism = tokens.settings().sasl;
        if !self.has(&format!("AUTH={}", mechanism.name())) {
            return Err(ImapError::Login {
                login: login.to_string(),
                text: format!(
                    "the server does not offer AUTH={} (it offers: {}); set sasl to a mechanism it offers",
                    mechanism.name(),
                    self.auth_mechanisms().join(" ")
                ),
            });
        }
        let mech = match mechanism {
            crate::oauth::Sasl::XOAuth2 => AuthMechanism::XOAuth2,
            crate::oauth::Sasl::OAuthBearer => AuthMechanism::OAuthBearer,
        };
        let attempt = |token: &crate::oauth::Token| {
            sasl::initial_response(
                mechanism,
                login,
                &endpoint.host,
                endpoint.port,
                token.expose(),
            )
        };
        let token = tokens.get().await?;
        let first = self
            .authenticate(
                mech.clone(),
                attempt(&token),
                Some(sasl::after_error(mechanism)),
            )
            .await;
        match first {
            Err(ImapError::Refused {
                text,
                temporary: false,
                ..
            }) => {
                tracing::info!("{}: token refused ({text}); getting a new one", self.label);
                let token = tokens.renew(&token).await?;
                self.authenticate(mech, attempt(&token), Some(sasl::after_error(mechanism)))
                    .await
                    .map_err(|e| match e {
                        ImapError::Refused { text, .. } => ImapError::Login {
                            login: login.to_string(),
                            text: format!("{text} (with a newly fetched token too)"),
                        },
                        other => other,
                    })
            }
            other => other,
        }
    }

    /// The `AUTH=` mechanisms the server advertises.
    fn auth_mechanisms(&self) -> Vec<&str> {
        self.capabilities
            .iter()
            .filter_map(|c| c.strip_prefix("AUTH="))
            .collect()
    }

    /// AUTHENTICATE with a one-message mechanism (PLAIN, XOAUTH2, OAUTHBEARER).
    /// A challenge after the response is the server's error (RFC 7628
    /// §3.2.2): with `after_error` it is answered so the server can send its
    /// NO, and its words join the refusal; without, the exchange is cancelled.
    async fn authenticate(
        &mut self,
        mechanism: AuthMechanism<'static>,
        response: Zeroizing<Vec<u8>>,
        after_error: Option<Vec<u8>>,
    ) -> Result<(), ImapError> {
        // RFC 4959 SASL-IR saves a round trip where offered.
        let with_ir = self.has("SASL-IR");
        let body = if with_ir {
            CommandBody::authenticate_with_ir(mechanism, response.to_vec())
        } else {
            CommandBody::authenticate(mechanism)
        };
        let (_, command) = self.command(body)?;
        self.client.enqueue_command(command);
        let mut pending = (!with_ir).then_some(response);
        let mut server_words = None;
        loop {
            match self.next_event().await? {
                Event::AuthenticateContinuationRequestReceived {
                    continuation_request,
                    ..
                } => {
                    let data = match (pending.take(), &after_error) {
                        (Some(p), _) => AuthenticateData::r#continue(p.to_vec()),
                        (None, Some(reply)) => {
                            server_words = Some(challenge_words(&continuation_request));
                            AuthenticateData::r#continue(reply.clone())
                        }
                        (None, None) => AuthenticateData::Cancel,
                    };
                    self.client
                        .set_authenticate_data(data)
                        .map_err(|_| ImapError::Protocol("AUTHENTICATE: out of step".into()))?;
                }
                Event::AuthenticateStatusReceived { status, .. } => {
                    return match status {
                        Status::Tagged(t) if t.body.kind == StatusKind::Ok => Ok(()),
                        other => Err(match (refusal("AUTHENTICATE", &other), server_words) {
                            (
                                ImapError::Refused {
                                    command,
                                    text,
                                    temporary,
                                },
                                Some(words),
                            ) => ImapError::Refused {
                                command,
                                text: format!("{text} ({words})"),
                                temporary,
                            },
                            (e, _) => e,
                        }),
                    };
                }
                Event::StatusReceived {
                    status: Status::Bye(bye),
                } => return Err(ImapError::Bye(bye.text.to_string())),
                _ => {}
            }
        }
    }
}

/// How a session logs in: a password (zeroed on drop) or a side's token.
enum Credential<'a> {
    Password(Zeroizing<String>),
    Token(&'a TokenSource),
}

/// The words of a SASL error challenge: base64 JSON for XOAUTH2 and
/// OAUTHBEARER (decoded by the codec, or here when it came as text).
fn challenge_words(
    challenge: &imap_next::imap_types::response::CommandContinuationRequest<'_>,
) -> String {
    use base64::Engine;
    use imap_next::imap_types::response::CommandContinuationRequest as C;
    match challenge {
        C::Base64(data) => sasl::server_error(data),
        C::Basic(basic) => {
            let text = basic.text().inner();
            match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                Ok(data) => sasl::server_error(&data),
                Err(_) => text.to_string(),
            }
        }
    }
}
