//! Calendars and contacts, when `dav_url` is configured: each side's DAV
//! server reached over TLS; per user, the calendar and address-book homes
//! (the `dav_home` template as the admin, else RFC 6764 well-known and
//! RFC 5397 `current-user-principal` as the user, then the home sets) and what
//! is in them; whether the target schedules (RFC 6638: the copy then adds
//! `SCHEDULE-AGENT=CLIENT`); the RFC 4331 quota the gate will count. Only
//! OPTIONS and PROPFIND are sent: nothing is created, not even a missing home.

use crate::config::{Auth, Config, Content, Endpoint, Side};
use crate::dav::client::Pool;
use crate::dav::discover::{self, Found, Homes};
use crate::dav::measure::{self, DavMeasure};
use crate::dav::state::{CollectionState, Kind};
use crate::dav::{collections, DavError, Servers};
use crate::report::human_bytes;
use relay::doctor::{Check, Status};
use std::collections::BTreeMap;

/// The DAV servers to check, or `None` (with the line that says why) when
/// calendars and contacts do not go over DAV.
pub(super) fn servers(
    config: &Config,
    insecure: bool,
    logins: &crate::imap::connect::Servers,
    checks: &mut Vec<Check>,
) -> Option<Servers> {
    let content = config.migration.content;
    match (&config.source.dav, &config.target.dav) {
        (None, None) => return None,
        (Some(_), None) | (None, Some(_)) => {
            let (with, without) = if config.source.dav.is_some() {
                (Side::Source, Side::Target)
            } else {
                (Side::Target, Side::Source)
            };
            checks.push(Check::warn(
                "DAV",
                format!("only [{with}] has a dav_url: calendars and contacts are not copied"),
                format!("add dav_url to [{without}], or remove it from [{with}]"),
            ));
            return None;
        }
        (Some(_), Some(_)) if !content.wants_dav() => {
            checks.push(Check::ok(
                "DAV",
                "not used: [migration] content has neither calendar nor contacts",
            ));
            return None;
        }
        (Some(_), Some(_)) => {}
    }
    let mut usable = true;
    for e in [&config.source, &config.target] {
        if let Err(err) = Pool::new(e, insecure) {
            checks.push(Check::fail(
                format!("{} DAV {}/", e.side, dav_url(e)),
                err.to_string(),
                fix(e, &err),
            ));
            usable = false;
        }
    }
    if !usable {
        return None;
    }
    Servers::new(config, insecure, logins).ok().flatten()
}

/// Each side's server answers HTTP over a verified TLS connection (an
/// OPTIONS without credentials: any status will do).
pub(super) async fn reach(servers: &Servers, insecure: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    for side in [&servers.source, &servers.target] {
        let e = &side.endpoint;
        let url = format!("{}/", dav_url(e));
        let what = format!("{} DAV {url}", e.side);
        checks.push(match side.pool.reach(e.side, &url).await {
            Ok(status) => {
                let dav = e.dav.as_ref().expect("a DAV side");
                let tls = if !dav.tls {
                    "plain HTTP (allow_insecure)".to_string()
                } else if insecure {
                    "TLS, certificate verification off (allow_insecure)".to_string()
                } else {
                    format!("TLS certificate verified for {}", dav.host)
                };
                Check::ok(
                    what,
                    format!("connected, {tls}; OPTIONS answered {}", status.as_u16()),
                )
            }
            Err(err) => Check::fail(what, err.to_string(), fix(e, &err)),
        });
    }
    checks
}

/// One user's DAV lines: each side's homes and collections, the target's
/// scheduling (the first user only: `scheduling_asked`), the target's quota.
/// Returns what the quota gate adds, when it could be measured.
pub(super) async fn user(
    servers: &Servers,
    address: &str,
    target: &str,
    content: Content,
    state: &BTreeMap<String, CollectionState>,
    scheduling_asked: &mut bool,
) -> (Vec<Check>, Option<DavMeasure>) {
    let mut checks = Vec::new();
    let mut usable = true;
    let mut target_calendars = None;
    for side in [&servers.source, &servers.target] {
        let e = &side.endpoint;
        let what = format!("user {address} {} DAV", e.side);
        let dav = match side.client(&servers.logins, address, target) {
            Ok(d) => d,
            Err(err) => {
                checks.push(Check::fail(what, err.to_string(), fix(e, &err)));
                usable = false;
                continue;
            }
        };
        let endpoint = e.dav.as_ref().expect("a DAV side");
        let homes = match discover::homes(&dav, e.side, endpoint, address, target).await {
            Ok(h) => h,
            Err(err) => {
                checks.push(Check::fail(what, err.to_string(), fix(e, &err)));
                usable = false;
                continue;
            }
        };
        let line = contents(&dav, e, &homes, content).await;
        usable &= line.status != Status::Fail && !(e.side == Side::Source && line.missing);
        checks.push(line.check(what, &homes.found));
        if e.side == Side::Target && content.calendar {
            target_calendars = homes.calendars.clone().map(|h| (dav, h));
        }
    }
    if let (false, Some((dav, home))) = (*scheduling_asked, &target_calendars) {
        checks.push(schedules(dav, &servers.target.endpoint, home).await);
        *scheduling_asked = true;
    }
    if !usable {
        return (checks, None);
    }
    let what = format!("user {address} target DAV quota");
    match measure::measure(servers, address, target, content, state).await {
        Ok(m) => {
            let size = format!("{} of calendars and contacts to copy", human_bytes(m.bytes));
            checks.push(Check::ok(
                what,
                match m.free {
                    Some(free) => format!(
                        "{size}; quota-available-bytes {} on the target (RFC 4331), counted by the quota gate",
                        human_bytes(free)
                    ),
                    None => format!(
                        "{size}; the target offers no RFC 4331 quota: the gate counts them against the IMAP quota"
                    ),
                },
            ));
            (checks, Some(m))
        }
        Err(err) => {
            // Every DavError's text starts with its side.
            let side = if err.to_string().starts_with("target") {
                &servers.target.endpoint
            } else {
                &servers.source.endpoint
            };
            checks.push(Check::fail(
                what,
                format!("measuring failed: {err}"),
                fix(side, &err),
            ));
            (checks, None)
        }
    }
}

/// What one side's homes hold, as one line.
struct Contents {
    status: Status,
    parts: Vec<String>,
    fix: Option<String>,
    /// A home is not there (404).
    missing: bool,
}

impl Contents {
    fn add(&mut self, status: Status, part: String, fix: Option<String>) {
        if status > self.status {
            self.status = status;
            self.fix = fix;
        }
        self.parts.push(part);
    }

    fn check(self, what: String, found: &Found) -> Check {
        let how = match found {
            Found::Template => "dav_home".to_string(),
            Found::Principal {
                principal,
                well_known: false,
            } => format!("principal {principal}"),
            Found::Principal {
                principal,
                well_known: true,
            } => format!("principal {principal} behind /.well-known/caldav"),
        };
        let detail = format!("homes from {how}: {}", self.parts.join("; "));
        match (self.status, self.fix) {
            (Status::Ok, _) | (_, None) => Check::ok(what, detail),
            (Status::Warn, Some(fix)) => Check::warn(what, detail, fix),
            (Status::Fail, Some(fix)) => Check::fail(what, detail, fix),
        }
    }
}

/// Lists the calendars and address books `content` asks for under `homes`.
async fn contents(
    dav: &crate::dav::client::Dav,
    e: &Endpoint,
    homes: &Homes,
    content: Content,
) -> Contents {
    let mut line = Contents {
        status: Status::Ok,
        parts: Vec::new(),
        fix: None,
        missing: false,
    };
    let kinds = [
        (content.calendar, Kind::Calendar, &homes.calendars),
        (content.contacts, Kind::Contacts, &homes.addressbooks),
    ];
    for (wanted, kind, home) in kinds {
        if !wanted {
            continue;
        }
        let plural = match kind {
            Kind::Calendar => "calendar(s)",
            Kind::Contacts => "address book(s)",
        };
        let Some(home) = home else {
            line.add(
                Status::Warn,
                format!("no {} home set: {} are not copied", kind.label(), plural),
                Some(format!(
                    "set [{}] dav_home (or dav_addressbook_home) to the user's home",
                    e.side
                )),
            );
            continue;
        };
        match collections::list(dav, e.side, home, kind).await {
            Ok(found) => line.add(
                Status::Ok,
                format!("{} {plural} at {home}", found.len()),
                None,
            ),
            Err(DavError::NotFound(_)) if e.side == Side::Target => {
                line.missing = true;
                line.add(
                    Status::Ok,
                    format!("{home} is not there yet: migrate creates it (MKCOL)"),
                    None,
                );
            }
            Err(DavError::NotFound(_)) => {
                line.missing = true;
                line.add(
                    Status::Warn,
                    format!("{home} is not there (404): nothing to copy"),
                    Some(format!(
                        "if the user has {plural}, correct [source] dav_home (it expands to {home})"
                    )),
                );
            }
            Err(err) => line.add(Status::Fail, err.to_string(), Some(fix(e, &err))),
        }
    }
    line
}

/// Whether the target schedules: said once, since it decides whether the
/// copy changes what it writes.
async fn schedules(dav: &crate::dav::client::Dav, e: &Endpoint, home: &str) -> Check {
    let what = "target DAV scheduling";
    match discover::auto_schedules(dav, Side::Target, home).await {
        Ok(true) => Check::ok(
            what,
            "calendar-auto-schedule advertised (RFC 6638): the target would mail invitations \
             and replies itself, so the copy adds SCHEDULE-AGENT=CLIENT to the ORGANIZER and \
             ATTENDEE of every event that has them; nobody is mailed",
        ),
        Ok(false) => Check::ok(
            what,
            "no calendar-auto-schedule: the target does not schedule; events are copied unchanged",
        ),
        Err(err) => Check::fail(what, err.to_string(), fix(e, &err)),
    }
}

/// `dav_url` of a DAV side.
fn dav_url(e: &Endpoint) -> &str {
    e.dav.as_ref().map_or("", |d| d.url.as_str())
}

/// What to do about a DAV failure on `e`'s side.
fn fix(e: &Endpoint, err: &DavError) -> String {
    let side = e.side;
    let host = e.dav.as_ref().map_or("", |d| d.host.as_str());
    match err {
        DavError::Config(_) => format!("correct [{side}] dav_url, dav_home and dav_addressbook_home"),
        DavError::Secret(_) => match e.auth {
            Auth::Password => format!("add the user's line to [{side}] password_file"),
            _ => format!("create [{side}] password_file (mode 0600)"),
        },
        DavError::Insecure(_) => format!(
            "use an https:// dav_url in [{side}] (or allow_insecure, on a test network only)"
        ),
        DavError::Tls(_) => format!(
            "give {host} a certificate for {host} from a public CA, or name the issuing CA's PEM in [{side}] ca"
        ),
        DavError::Transport(_) => format!(
            "check [{side}] dav_url and that {host} is reachable from this machine"
        ),
        DavError::Denied(_) => match e.auth {
            Auth::Password => format!("check the user's password in [{side}] password_file"),
            Auth::Master | Auth::Authzid => format!(
                "check [{side}] master_user and password_file, and that the admin may read and write \
                 every user's collections (Radicale: a rights file; Cyrus: ACLs)"
            ),
            Auth::OAuth2 => format!(
                "check that the DAV server (or the proxy in front of it) accepts the application's \
                 token for every user's collections under [{side}] dav_home"
            ),
        },
        DavError::Status(_) => format!(
            "check [{side}] dav_url: it must be the DAV server's base URL"
        ),
        DavError::NotFound(_) => format!(
            "check [{side}] dav_home: it must expand to the user's calendar home"
        ),
        DavError::Discovery(_) => format!(
            "set [{side}] dav_home to the user's calendar home (Radicale: \"/{{address}}/\"; \
             Cyrus: \"/dav/calendars/user/{{local}}/\")"
        ),
    }
}
