//! Where the relay's directory mirror keeps its bytes: the same entries as
//! `directory-load` (USERS users, each with `mail` and one `smtp:` alias;
//! the first MIGRATED with a forwarding contact), applied one by one to the
//! mirror's [`Index`], then the snapshot rendered and parsed into the
//! routing table, as `route::mirror` does. A counting allocator reports the
//! live heap bytes each part holds (requested sizes; the allocator's own
//! overhead and retained pages come on top, which RSS shows).
//!
//! `directory-memory [--users N] [--migrated M]` (default 100000 / 50000).

use relay::directory::index::{self, Index};
use relay::directory::model::DirEntry;
use relay::route::table::ContactsTable;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mb(n: usize) -> String {
    format!("{:.1}MB", n as f64 / 1e6)
}

fn attrs(pairs: &[(&str, String)]) -> HashMap<String, Vec<String>> {
    let mut a: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        a.entry((*k).to_string()).or_default().push(v.clone());
    }
    a
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut users, mut migrated) = (100_000usize, 50_000usize);
    while let Some(flag) = args.next() {
        let value: usize = args.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--users" => users = value,
            "--migrated" => migrated = value,
            other => panic!("unknown flag {other}; use --users N --migrated M"),
        }
    }
    let base = LIVE.load(Ordering::Relaxed);
    let mut index = Index::new();
    let known = |_: &str| true;
    let mut n = 0u128;
    let mut put = |index: &mut Index, dn: String, pairs: &[(&str, String)]| {
        n += 1;
        let entry = DirEntry::parse(&dn, &attrs(pairs), None);
        index.apply(index::uuid(&n.to_be_bytes()), entry, &known);
    };
    for i in 0..users {
        let mail = format!("user{i}@corp.example");
        let user_dn = format!("cn=user{i},ou=Users,dc=corp,dc=example");
        let mut pairs = vec![
            ("objectClass", "inetOrgPerson".to_string()),
            ("objectClass", "user".to_string()),
            ("mail", mail.clone()),
            ("proxyAddresses", format!("SMTP:{mail}")),
            ("proxyAddresses", format!("smtp:alias{i}@corp.example")),
            ("userAccountControl", "512".to_string()),
            ("displayName", format!("user{i}")),
        ];
        if i < migrated {
            let contact_dn = format!("cn={mail} (cloud),ou=Cloud Contacts,dc=corp,dc=example");
            let target = format!("user{i}@tenant.cloud.example");
            put(
                &mut index,
                contact_dn.clone(),
                &[
                    ("objectClass", "contact".to_string()),
                    ("mail", target.clone()),
                    ("targetAddress", format!("SMTP:{target}")),
                    ("displayName", mail.clone()),
                ],
            );
            pairs.push(("altRecipient", contact_dn));
        }
        put(&mut index, user_dn, &pairs);
    }
    let after_index = LIVE.load(Ordering::Relaxed);
    println!(
        "index: entries={} users={} routed={} live={}",
        index.len(),
        index.users(),
        index.routed_len(),
        mb(after_index - base)
    );
    let t = std::time::Instant::now();
    let text = index.render();
    let render = t.elapsed();
    let after_text = LIVE.load(Ordering::Relaxed);
    println!(
        "snapshot text: {} bytes, live={}, rendered in {:.1}ms",
        text.len(),
        mb(after_text - after_index),
        render.as_secs_f64() * 1e3
    );
    let t = std::time::Instant::now();
    let table = ContactsTable::parse_checked(&text, std::path::Path::new("contacts"), &known)
        .unwrap_or_else(|e| panic!("{} errors", e.len()));
    let parse = t.elapsed();
    let after_table = LIVE.load(Ordering::Relaxed);
    println!(
        "table: {} contacts, live={}, parsed in {:.1}ms",
        table.len(),
        mb(after_table - after_text),
        parse.as_secs_f64() * 1e3
    );
    println!(
        "all: live={} peak={}",
        mb(after_table - base),
        mb(PEAK.load(Ordering::Relaxed) - base)
    );
}
