//! The routing decision kept up to date one entry at a time, for the relay's
//! mirror: an RFC 4533 change costs the users it touches, not the directory.
//!
//! A change to entry X re-decides only the users whose decision can depend on
//! X: X itself (a user), every user claiming an address X has or had (an
//! address two users claim is left out, so a new claimant changes the first
//! owner's result), and every user whose `altRecipient` names X (a contact),
//! under its old or its new DN. [`model::decide`] is the same function the
//! whole-directory [`model::routing`] uses, so both give the same snapshot.
//!
//! Memory (the mirror holds every user and contact of the directory): an
//! entry keeps only what routing reads ([`Slim`]), each key set holds one
//! entry inline ([`Ids`]: an address or a contact is nearly always one
//! entry's), and each routed address is 38 bytes of references (the user,
//! the entry its target comes from, which of the user's addresses) keyed by
//! the folded address; the strings stay in the entries. `directory-memory`
//! in bench/ counts the bytes of each part.

use super::model::{self, dn_key, DirEntry, Fields, Kind, Problem, Routed};
use crate::address::fold;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap, HashSet};

/// An entry's identity: its RFC 4533 entryUUID (16 octets).
pub type Uuid = [u8; 16];

/// The UUID of a Sync State control's value (padded or cut to 16 octets:
/// RFC 4533 fixes the size, a server that breaks it still gets distinct keys
/// for distinct short values).
pub fn uuid(bytes: &[u8]) -> Uuid {
    let mut u = [0u8; 16];
    let n = bytes.len().min(16);
    u[..n].copy_from_slice(&bytes[..n]);
    u
}

/// One routed address, by reference.
#[derive(Debug, Clone, Copy)]
struct Ref {
    user: Uuid,
    /// The contact (or, Exchange Hybrid, the user itself) with the target.
    source: Uuid,
    /// Which of the user's `addresses`.
    address: u16,
    /// Where the checked target address is in the source's `targetAddress`
    /// (start, length): a snapshot renders it without checking it again.
    target: (u16, u16),
}

impl Ref {
    fn target<'a>(&self, source: &'a Slim) -> Option<&'a str> {
        let (start, len) = (usize::from(self.target.0), usize::from(self.target.1));
        source.target_address.as_deref()?.get(start..start + len)
    }
}

/// Where `target_of(value)` lies in `value`, as [`Ref::target`] reads it.
fn target_span(value: &str) -> Option<(u16, u16)> {
    let target = model::target_of(value).ok()?;
    // `target_of` returns a slice of its argument.
    let start = (target.as_ptr() as usize).checked_sub(value.as_ptr() as usize)?;
    (value.get(start..start + target.len()) == Some(target)).then_some((
        u16::try_from(start).ok()?,
        u16::try_from(target.len()).ok()?,
    ))
}

/// What routing reads of an entry: [`DirEntry`] without the migrator's
/// fields, its strings boxed (no spare capacity, 16 bytes a pointer).
#[derive(Debug)]
struct Slim {
    kind: Kind,
    dn: Box<str>,
    addresses: Box<[Box<str>]>,
    alt_recipient: Option<Box<str>>,
    target_address: Option<Box<str>>,
    route: Option<Box<str>>,
}

impl Slim {
    fn new(e: DirEntry) -> Slim {
        Slim {
            kind: e.kind,
            dn: e.dn.into(),
            addresses: e
                .addresses
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            alt_recipient: e.alt_recipient.map(String::into_boxed_str),
            target_address: e.target_address.map(String::into_boxed_str),
            route: e.route.map(String::into_boxed_str),
        }
    }
}

impl Fields for Slim {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn dn(&self) -> &str {
        &self.dn
    }
    fn addresses(&self) -> impl Iterator<Item = &str> {
        self.addresses.iter().map(|a| &**a)
    }
    fn alt_recipient(&self) -> Option<&str> {
        self.alt_recipient.as_deref()
    }
    fn target_address(&self) -> Option<&str> {
        self.target_address.as_deref()
    }
    fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }
}

/// The entries under one key: one, but for a conflict, so held inline.
type Ids = SmallVec<[Uuid; 1]>;

/// The entries and their routing decision, maintained per change.
#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<Uuid, Slim>,
    /// Contacts by `dn_key`.
    contacts: HashMap<Box<str>, Uuid>,
    /// Users by the `dn_key` of their `altRecipient`.
    forwarded_to: HashMap<Box<str>, Ids>,
    /// Users by each folded address they claim.
    claims: HashMap<Box<str>, Ids>,
    /// The snapshot, sorted by folded address (a stable cache file).
    routed: BTreeMap<Box<str>, Ref>,
    /// Per user, what left (part of) it out.
    problems: HashMap<Uuid, Vec<Problem>>,
    users: usize,
}

fn folded(a: &str) -> Box<str> {
    fold(a).collect::<String>().into_boxed_str()
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// User entries held.
    pub fn users(&self) -> usize {
        self.users
    }

    /// Routing keys in the snapshot.
    pub fn routed_len(&self) -> usize {
        self.routed.len()
    }

    /// Adds or replaces an entry (`None`: it was deleted, or is no longer a
    /// user or contact) and re-decides the users that depend on it.
    pub fn apply(&mut self, id: Uuid, entry: Option<DirEntry>, known_route: &dyn Fn(&str) -> bool) {
        let entry = entry.map(Slim::new);
        let mut affected: HashSet<Uuid> = HashSet::new();
        if let Some(old) = self.entries.get(&id) {
            self.dependents(id, old, &mut affected);
        }
        if let Some(new) = &entry {
            self.dependents(id, new, &mut affected);
        }
        for u in &affected {
            self.forget(*u);
        }
        if let Some(old) = self.entries.remove(&id) {
            self.unlink(id, &old);
        }
        if let Some(new) = entry {
            self.link(id, &new);
            self.entries.insert(id, new);
        }
        for u in affected {
            self.redecide(u, known_route);
        }
    }

    /// The users whose decision depends on `e` (with id `id`).
    fn dependents(&self, id: Uuid, e: &Slim, out: &mut HashSet<Uuid>) {
        match e.kind {
            Kind::User => {
                out.insert(id);
                for a in &e.addresses {
                    if let Some(c) = self.claims.get(&folded(a)) {
                        out.extend(c.iter().copied());
                    }
                }
            }
            Kind::Contact => {
                if let Some(f) = self.forwarded_to.get(dn_key(&e.dn).as_str()) {
                    out.extend(f.iter().copied());
                }
            }
        }
    }

    /// Takes a user's routed addresses and problems out of the snapshot (its
    /// current entry says which addresses it routed: only a sole claimant
    /// routes one, so no other user's key is touched).
    fn forget(&mut self, u: Uuid) {
        self.problems.remove(&u);
        let Some(e) = self.entries.get(&u) else {
            return;
        };
        for a in &e.addresses {
            let key = folded(a);
            if self.routed.get(&key).is_some_and(|r| r.user == u) {
                self.routed.remove(&key);
            }
        }
    }

    fn unlink(&mut self, id: Uuid, e: &Slim) {
        match e.kind {
            Kind::User => {
                self.users -= 1;
                for a in &e.addresses {
                    remove_from(&mut self.claims, &folded(a), id);
                }
                if let Some(alt) = &e.alt_recipient {
                    remove_from(&mut self.forwarded_to, &dn_key(alt), id);
                }
            }
            Kind::Contact => {
                let key = dn_key(&e.dn);
                if self.contacts.get(key.as_str()) == Some(&id) {
                    self.contacts.remove(key.as_str());
                }
            }
        }
    }

    fn link(&mut self, id: Uuid, e: &Slim) {
        match e.kind {
            Kind::User => {
                self.users += 1;
                for a in &e.addresses {
                    self.claims.entry(folded(a)).or_default().push(id);
                }
                if let Some(alt) = &e.alt_recipient {
                    self.forwarded_to
                        .entry(dn_key(alt).into_boxed_str())
                        .or_default()
                        .push(id);
                }
            }
            Kind::Contact => {
                self.contacts.insert(dn_key(&e.dn).into_boxed_str(), id);
            }
        }
    }

    fn redecide(&mut self, u: Uuid, known_route: &dyn Fn(&str) -> bool) {
        let Some(user) = self.entries.get(&u) else {
            return;
        };
        let (entries, contacts, claims) = (&self.entries, &self.contacts, &self.claims);
        let contact_id = |alt: &str| contacts.get(dn_key(alt).as_str()).copied();
        let decision = model::decide(
            user,
            &|alt| contact_id(alt).and_then(|c| entries.get(&c)),
            &|key| {
                claims.get(key).map_or(Vec::new(), |ids| {
                    ids.iter()
                        .filter_map(|i| entries.get(i).map(|e| &*e.dn))
                        .collect()
                })
            },
            known_route,
        );
        let source = match &user.alt_recipient {
            Some(alt) => contact_id(alt),
            None => Some(u),
        };
        let target = source
            .and_then(|s| entries.get(&s))
            .and_then(|s| s.target_address.as_deref())
            .and_then(target_span);
        let refs: Vec<(String, Ref)> = decision
            .routed
            .iter()
            .filter_map(|(key, r)| {
                let address = user.addresses.iter().position(|a| **a == r.address)?;
                Some((
                    key.clone(),
                    Ref {
                        user: u,
                        source: source?,
                        address: u16::try_from(address).ok()?,
                        target: target?,
                    },
                ))
            })
            .collect();
        for (key, r) in refs {
            self.routed.insert(key.into_boxed_str(), r);
        }
        if !decision.problems.is_empty() {
            self.problems.insert(u, decision.problems);
        }
    }

    /// The snapshot, sorted by address, as [`model::routing`] returns it.
    pub fn routed(&self) -> impl Iterator<Item = Routed> + '_ {
        self.routed.values().filter_map(|r| {
            let user = self.entries.get(&r.user)?;
            let source = self.entries.get(&r.source)?;
            let target = r.target(source)?;
            Some(Routed {
                address: user.addresses.get(usize::from(r.address))?.to_string(),
                target: target.to_string(),
                route: source.route.as_deref().map(str::to_string),
                source_dn: source.dn.to_string(),
            })
        })
    }

    /// The snapshot in the contacts-table format ([`model::render`] of
    /// [`routed`](Self::routed), without a copy of each line's strings).
    pub fn render(&self) -> String {
        let mut out = model::render_start(self.routed.len());
        for r in self.routed.values() {
            let (Some(user), Some(source)) =
                (self.entries.get(&r.user), self.entries.get(&r.source))
            else {
                continue;
            };
            let Some(target) = r.target(source) else {
                continue;
            };
            let Some(address) = user.addresses.get(usize::from(r.address)) else {
                continue;
            };
            model::render_line(
                &mut out,
                address,
                target,
                source.route.as_deref(),
                &source.dn,
            );
        }
        // Kept until the cache writer has written it: no spare capacity.
        out.shrink_to_fit();
        out
    }

    /// Every entry left out and why, sorted, without repeats.
    pub fn problems(&self) -> Vec<Problem> {
        let mut all: Vec<Problem> = self.problems.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

fn remove_from(map: &mut HashMap<Box<str>, Ids>, key: &str, id: Uuid) {
    if let Some(ids) = map.get_mut(key) {
        ids.retain(|i| *i != id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, pairs: &[(&str, &str)]) -> DirEntry {
        let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            attrs.entry(k.to_string()).or_default().push(v.to_string());
        }
        DirEntry::parse(dn, &attrs, None).unwrap()
    }

    fn id(n: u8) -> Uuid {
        [n; 16]
    }

    fn same(index: &Index, all: &[(u8, DirEntry)]) {
        let entries: Vec<DirEntry> = all.iter().map(|(_, e)| e.clone()).collect();
        let (routed, problems) = model::routing(&entries, &|_| true);
        let got: Vec<Routed> = index.routed().collect();
        assert_eq!(got, routed);
        assert_eq!(index.render(), model::render(&routed));
        assert_eq!(index.problems(), problems);
    }

    /// Each step of a random-ish history gives what a full decision over the
    /// same entries gives.
    #[test]
    fn incremental_equals_full() {
        let user = |n: &str, more: &[(&str, &str)]| {
            let mut p = vec![("objectClass", "user"), ("mail", n)];
            p.extend_from_slice(more);
            entry(&format!("CN={n},OU=U"), &p)
        };
        let contact = |n: &str, t: &str| {
            entry(
                &format!("CN={n},OU=C"),
                &[("objectClass", "contact"), ("targetAddress", t)],
            )
        };
        let mut index = Index::new();
        let mut all: Vec<(u8, DirEntry)> = Vec::new();
        let put = |index: &mut Index, all: &mut Vec<(u8, DirEntry)>, n: u8, e: Option<DirEntry>| {
            all.retain(|(k, _)| *k != n);
            if let Some(e) = &e {
                all.push((n, e.clone()));
            }
            index.apply(id(n), e, &|_| true);
            same(index, all);
        };
        // A contact before its user, then the user pointing at it.
        put(
            &mut index,
            &mut all,
            1,
            Some(contact("a", "SMTP:a@t.example")),
        );
        put(
            &mut index,
            &mut all,
            2,
            Some(user(
                "a@c.example",
                &[
                    ("altRecipient", "cn=a, ou=c"),
                    ("proxyAddresses", "smtp:x@c.example"),
                ],
            )),
        );
        // A second user claims the alias: both lose it.
        put(
            &mut index,
            &mut all,
            3,
            Some(user(
                "b@c.example",
                &[
                    ("targetAddress", "SMTP:b@t.example"),
                    ("proxyAddresses", "smtp:X@c.example"),
                ],
            )),
        );
        // The contact re-pointed, then deleted, then back.
        put(
            &mut index,
            &mut all,
            1,
            Some(contact("a", "SMTP:a2@t.example")),
        );
        put(&mut index, &mut all, 1, None);
        put(&mut index, &mut all, 1, Some(contact("a", "bad")));
        put(
            &mut index,
            &mut all,
            1,
            Some(contact("a", "SMTP:a3@t.example")),
        );
        // The second user drops the alias, then goes away.
        put(
            &mut index,
            &mut all,
            3,
            Some(user(
                "b@c.example",
                &[("targetAddress", "SMTP:b@t.example")],
            )),
        );
        put(&mut index, &mut all, 3, None);
        // The first user's flip rolled back.
        put(&mut index, &mut all, 2, Some(user("a@c.example", &[])));
        assert_eq!(index.routed_len(), 0);
        assert_eq!(index.users(), 1);
        assert_eq!(index.len(), 2);
    }
}
