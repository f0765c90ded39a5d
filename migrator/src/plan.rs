//! Before anything is written: which source folder goes to which target
//! folder, what is left to copy, and whether it fits (the quota gate). `ready`
//! is this step alone, for every ready user.
//!
//! A user whose mail does not fit in the target's free quota fails here, before
//! the contact is written (DESIGN.md: "fails before anything is written").

use crate::config::{Config, Content, Side};
use crate::directory::{Directory, DirectoryError, User};
use crate::imap::connect::{Connector, Servers};
use crate::imap::{Connections, Folder, ImapError, Quota, Session, SideError};
use crate::report::human_bytes;
use crate::state::{FolderState, UserState};
use serde::Serialize;

/// What to copy and from when.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Mail and/or calendar folders.
    pub content: Content,
    /// Calendar folder names (case-insensitive).
    pub calendar_folders: Vec<String>,
    /// INTERNALDATE on or after.
    pub since: Option<chrono::NaiveDate>,
    /// INTERNALDATE before.
    pub before: Option<chrono::NaiveDate>,
    /// Calendars go over CalDAV (both sides have a `dav_url`): the folders
    /// in `calendar_folders` are then plain mail.
    pub dav: bool,
}

/// A source folder and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderPlan {
    /// Source name.
    pub source: String,
    /// Target name.
    pub target: String,
    /// Whether it holds calendar items.
    pub calendar: bool,
}

/// Maps the source folders to target names: the hierarchy delimiter is
/// translated, INBOX stays INBOX, and RFC 6154 special-use folders go to the
/// target's folder with the same use (Sent → "Sent Items" and the like).
pub fn plan_folders(source: &[Folder], target: &[Folder], filter: &Filter) -> Vec<FolderPlan> {
    let target_delimiter = target
        .iter()
        .find_map(|f| f.delimiter)
        .or_else(|| source.iter().find_map(|f| f.delimiter))
        .unwrap_or('/');
    let mut plans = Vec::new();
    for folder in source.iter().filter(|f| !f.no_select) {
        let levels = folder.levels();
        let named = levels.iter().any(|level| {
            filter
                .calendar_folders
                .iter()
                .any(|c| c.eq_ignore_ascii_case(level))
        }) || filter
            .calendar_folders
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&folder.name));
        // With CalDAV on both sides, calendar folders are plain mail.
        let calendar = named && !filter.dav;
        let wanted = if calendar {
            filter.content.calendar
        } else {
            filter.content.mail
        };
        if !wanted {
            continue;
        }
        let special_target = folder.special_use.as_ref().and_then(|use_| {
            target
                .iter()
                .find(|t| t.special_use.as_ref() == Some(use_) && !t.no_select)
                .map(|t| t.name.clone())
        });
        let target_name = if folder.name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else if let Some(name) = special_target {
            name
        } else {
            levels.join(&target_delimiter.to_string())
        };
        plans.push(FolderPlan {
            source: folder.name.clone(),
            target: target_name,
            calendar,
        });
    }
    plans
}

/// Sizes and quota of one user, for the review, `ready` and the quota gate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measure {
    /// Folders to copy.
    pub folders: Vec<FolderPlan>,
    /// Messages not yet on the target.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The destination's storage quota, when known.
    pub quota: Option<Quota>,
}

impl Measure {
    /// Whether the bytes fit in the free quota (unknown quota = fits).
    pub fn fits(&self) -> bool {
        self.quota.is_none_or(|q| self.bytes <= q.free())
    }

    /// The quota in words, for the line before the copy.
    pub fn quota_words(&self) -> String {
        match self.quota {
            Some(q) => format!(
                "target quota {} free of {}: {}",
                human_bytes(q.free()),
                human_bytes(q.limit),
                if self.fits() { "fits" } else { "DOES NOT FIT" }
            ),
            None => "target quota unknown".to_string(),
        }
    }
}

/// The quota gate refused the user: nothing was written.
#[derive(Debug, thiserror::Error)]
#[error(
    "the mailbox needs {} but the target has {} free ({} of {} used); nothing was written — raise the target quota, or limit the copy with --since/--content",
    human_bytes(*needed),
    human_bytes(quota.free()),
    human_bytes(quota.usage),
    human_bytes(quota.limit)
)]
pub struct DoesNotFit {
    /// Bytes to copy.
    pub needed: u64,
    /// What the target reported.
    pub quota: Quota,
}

/// The quota gate: the measured mail must fit in the target's free quota.
pub fn gate(m: &Measure) -> Result<(), DoesNotFit> {
    match m.quota {
        Some(quota) if !m.fits() => Err(DoesNotFit {
            needed: m.bytes,
            quota,
        }),
        _ => Ok(()),
    }
}

/// Plans the folders and counts what is left to copy (the checkpoint's copied
/// UIDs are not counted again), and reads the target's quota; without a QUOTA
/// extension, `directory_quota` stands in (usage unknown).
pub async fn measure(
    c: &mut Connections,
    state: &UserState,
    filter: &Filter,
    directory_quota: Option<u64>,
) -> Result<Measure, SideError> {
    let src_folders = c.src.list().await.map_err(SideError::on(Side::Source))?;
    let dst_folders = c.dst.list().await.map_err(SideError::on(Side::Target))?;
    let mut m = Measure {
        folders: plan_folders(&src_folders, &dst_folders, filter),
        ..Measure::default()
    };
    for plan in &m.folders {
        let (n, b) = measure_folder(&mut c.src, plan, state.folders.get(&plan.source), filter)
            .await
            .map_err(SideError::on(Side::Source))?;
        m.messages += n;
        m.bytes += b;
    }
    m.quota = match c.dst.quota().await.map_err(SideError::on(Side::Target))? {
        Some(q) => Some(q),
        None => directory_quota.map(|limit| Quota { usage: 0, limit }),
    };
    Ok(m)
}

/// Counts one folder's messages to copy and their bytes.
async fn measure_folder(
    src: &mut Session,
    plan: &FolderPlan,
    state: Option<&FolderState>,
    filter: &Filter,
) -> Result<(u64, u64), ImapError> {
    let selected = src.open(&plan.source, false).await?;
    let dated = filter.since.is_some() || filter.before.is_some();
    let unchanged = state.is_some_and(|s| {
        s.unchanged(selected.uid_validity, selected.uid_next, dated) && s.target == plan.target
    });
    if selected.exists == 0 || unchanged {
        return Ok((0, 0));
    }
    let uids = src.search(filter.since, filter.before).await?;
    let todo: Vec<u32> = match state {
        Some(s) if s.uid_validity == selected.uid_validity => uids
            .into_iter()
            .filter(|u| !s.copied.contains(*u))
            .collect(),
        _ => uids,
    };
    let mut bytes = 0;
    for chunk in todo.chunks(1000) {
        for m in src.sizes(chunk).await? {
            bytes += u64::from(m.size);
        }
    }
    Ok((todo.len() as u64, bytes))
}

/// One row of `ready`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyRow {
    /// The user.
    pub address: String,
    /// Display name.
    pub display_name: String,
    /// Messages at the source (all content).
    pub messages: u64,
    /// Bytes at the source.
    pub bytes: u64,
    /// Destination quota limit, bytes.
    pub quota_limit: Option<u64>,
    /// Destination quota free, bytes.
    pub quota_free: Option<u64>,
    /// Whether the mailbox fits.
    pub fits: Option<bool>,
    /// Why it could not be measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why `ready` could not answer at all (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadyError {
    /// The directory or the contacts table could not be read.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// An OAuth2 side's token endpoint refuses the client.
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
}

/// `ready`: the enabled users without a contact, each measured (a user that
/// cannot be measured gets its error in the row; the others go on).
pub async fn ready(config: &Config, allow_insecure: bool) -> Result<Vec<ReadyRow>, ReadyError> {
    let directory = Directory::new(config);
    let filter = Filter {
        content: config.migration.content,
        calendar_folders: config.migration.calendar_folders.clone(),
        dav: config.source.dav.is_some() && config.target.dav.is_some(),
        ..Filter::default()
    };
    let servers = Servers::new(config, allow_insecure || config.migration.allow_insecure)?;
    if let Err(e) = servers.prefetch_tokens().await {
        if e.is_config() {
            return Err(e.into());
        }
    }
    let mut rows = Vec::new();
    for user in directory.ready()? {
        let target = directory.target_for(&user);
        let measured = measure_ready(&servers, &user, &target, &filter).await;
        rows.push(ReadyRow {
            address: user.address.clone(),
            display_name: user.display_name.clone(),
            messages: measured.as_ref().map_or(0, |m| m.messages),
            bytes: measured.as_ref().map_or(0, |m| m.bytes),
            quota_limit: measured
                .as_ref()
                .ok()
                .and_then(|m| m.quota.map(|q| q.limit)),
            quota_free: measured
                .as_ref()
                .ok()
                .and_then(|m| m.quota.map(|q| q.free())),
            fits: measured.as_ref().ok().map(Measure::fits),
            error: measured.err().map(|e| e.to_string()),
        });
    }
    Ok(rows)
}

async fn measure_ready(
    servers: &Servers,
    user: &User,
    target: &str,
    filter: &Filter,
) -> Result<Measure, SideError> {
    let mut c = servers.open(&user.address, target).await?;
    let m = measure(&mut c, &UserState::default(), filter, user.quota).await?;
    c.logout().await;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, delimiter: char, special: Option<&str>) -> Folder {
        Folder {
            name: name.into(),
            delimiter: Some(delimiter),
            special_use: special.map(str::to_string),
            no_select: false,
        }
    }

    fn filter(mail: bool, calendar: bool) -> Filter {
        Filter {
            content: Content {
                mail,
                calendar,
                contacts: false,
            },
            calendar_folders: vec!["Calendar".into()],
            ..Filter::default()
        }
    }

    #[test]
    fn folders_map_delimiters_and_special_use() {
        let source = vec![
            folder("INBOX", '.', None),
            folder("INBOX.Work.2024", '.', None),
            folder("Sent Messages", '.', Some("sent")),
            folder("Calendar", '.', None),
            folder("Calendar.Holidays", '.', None),
            Folder {
                no_select: true,
                ..folder("Shared", '.', None)
            },
        ];
        let target = vec![
            folder("INBOX", '/', None),
            folder("Sent Items", '/', Some("sent")),
        ];
        let plans = plan_folders(&source, &target, &filter(true, true));
        let pairs: Vec<(&str, &str, bool)> = plans
            .iter()
            .map(|p| (p.source.as_str(), p.target.as_str(), p.calendar))
            .collect();
        assert_eq!(
            pairs,
            [
                ("INBOX", "INBOX", false),
                ("INBOX.Work.2024", "INBOX/Work/2024", false),
                ("Sent Messages", "Sent Items", false),
                ("Calendar", "Calendar", true),
                ("Calendar.Holidays", "Calendar/Holidays", true),
            ]
        );
        let only_calendar = plan_folders(&source, &target, &filter(false, true));
        assert_eq!(only_calendar.len(), 2);
        assert!(only_calendar.iter().all(|p| p.calendar));
        let only_mail = plan_folders(&source, &target, &filter(true, false));
        assert_eq!(only_mail.len(), 3);
    }

    #[test]
    fn the_gate_refuses_what_does_not_fit_and_allows_an_unknown_quota() {
        let mut m = Measure {
            bytes: 3 << 20,
            quota: Some(Quota {
                usage: 9 << 20,
                limit: 10 << 20,
            }),
            ..Measure::default()
        };
        let refused = gate(&m).unwrap_err().to_string();
        assert!(
            refused.starts_with(
                "the mailbox needs 3.0 MiB but the target has 1.0 MiB free (9.0 MiB of 10.0 MiB used); nothing was written"
            ),
            "{refused}"
        );
        assert!(m.quota_words().ends_with("DOES NOT FIT"));
        m.bytes = 1 << 20;
        assert!(gate(&m).is_ok(), "exactly the free space fits");
        m.quota = None;
        assert!(gate(&m).is_ok());
        assert_eq!(m.quota_words(), "target quota unknown");
    }
}
