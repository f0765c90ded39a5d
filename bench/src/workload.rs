//! The workload every target gets: who receives each message and what it looks
//! like. Users are `userN@corp.example`, N in `0..users`; the even-numbered half is
//! migrated (the contacts table and Postfix's virtual map list exactly those, see
//! [`contacts_table`] and [`postfix_virtual`]).

use std::sync::Arc;

/// Domain of every recipient (the relays' accepted domain).
pub const DOMAIN: &str = "corp.example";
/// Domain migrated users are rewritten to.
pub const CLOUD_DOMAIN: &str = "tenant.cloud.example";

/// Parameters of one run's messages.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Number of users (`user0` .. `user{users-1}`).
    pub users: u64,
    /// Share of recipients drawn from the migrated half, 0.0 ..= 1.0.
    pub migrated_share: f64,
    /// Distinct recipients per message.
    pub rcpts: usize,
    /// Total message size in bytes (headers + body), approximately.
    pub size: usize,
    /// Sizes with their weights; when not empty, message `i` draws its size from
    /// here (see [`Workload::size_of`]) and `size` is ignored.
    pub mix: Vec<(usize, u64)>,
    /// Prefix of every Message-ID, unique per run so sinks can tell runs apart.
    pub tag: String,
}

/// Whether user number `n` is migrated.
pub fn is_migrated(n: u64) -> bool {
    n.is_multiple_of(2)
}

/// The contacts table for `users` users (one line per migrated user).
pub fn contacts_table(users: u64) -> String {
    let mut out = String::new();
    for n in (0..users).filter(|n| is_migrated(*n)) {
        out.push_str(&format!("user{n}@{DOMAIN} user{n}@{CLOUD_DOMAIN}\n"));
    }
    out
}

/// The same rewrites as a Postfix `virtual_alias_maps` source.
pub fn postfix_virtual(users: u64) -> String {
    contacts_table(users)
}

/// splitmix64: a small, fast, deterministic generator (no quality needs here).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Workload {
    /// The recipients of message `i`: distinct, each migrated with probability
    /// `migrated_share`. Deterministic in `i`.
    pub fn recipients(&self, i: u64) -> Vec<String> {
        let half = (self.users / 2).max(1);
        let mut seed = mix(i ^ 0x5eed);
        let mut picked: Vec<u64> = Vec::with_capacity(self.rcpts);
        while picked.len() < self.rcpts.min(self.users as usize) {
            seed = mix(seed);
            let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
            let migrated = unit < self.migrated_share;
            seed = mix(seed);
            let k = seed % half;
            let n = if migrated { 2 * k } else { 2 * k + 1 };
            if n < self.users && !picked.contains(&n) {
                picked.push(n);
            }
        }
        picked
            .into_iter()
            .map(|n| format!("user{n}@{DOMAIN}"))
            .collect()
    }

    /// The Message-ID (without angle brackets) of message `i`.
    pub fn message_id(&self, i: u64) -> String {
        format!("{}.{i}@bench.example", self.tag)
    }

    /// The header block of message `i` sent at `sent_ns`, ending with the blank line.
    pub fn headers(&self, i: u64, sent_ns: u64, rcpts: &[String]) -> Vec<u8> {
        format!(
            "From: Load <load@bench.example>\r\nTo: {}\r\nSubject: bench message {i}\r\n\
             Message-ID: <{}>\r\nX-Bench-Sent: {sent_ns}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\n",
            rcpts.join(", "),
            self.message_id(i)
        )
        .into_bytes()
    }

    /// Every size this workload sends: the mix's, or the one `size`.
    pub fn sizes(&self) -> Vec<usize> {
        if self.mix.is_empty() {
            vec![self.size]
        } else {
            self.mix.iter().map(|(size, _)| *size).collect()
        }
    }

    /// The size of message `i`: drawn from the mix by weight, deterministic in
    /// `i` (so every target gets the same sequence of sizes).
    pub fn size_of(&self, i: u64) -> usize {
        let total: u64 = self.mix.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return self.size;
        }
        let mut pick = mix(i ^ 0x512e) % total;
        for (size, weight) in &self.mix {
            if pick < *weight {
                return *size;
            }
            pick -= weight;
        }
        self.size
    }

    /// A body that brings a message to about `size` bytes: 78-byte lines of
    /// printable text (none starts with a dot), then the end-of-data line `.\r\n`.
    pub fn body(&self, size: usize) -> Arc<[u8]> {
        const HEADER_ESTIMATE: usize = 300;
        let want = size.saturating_sub(HEADER_ESTIMATE).max(78);
        let mut body = Vec::with_capacity(want + 3);
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut k = 0usize;
        while body.len() < want {
            for _ in 0..76 {
                body.push(alphabet[k % alphabet.len()]);
                k += 1;
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        body.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(share: f64, rcpts: usize) -> Workload {
        Workload {
            users: 10_000,
            migrated_share: share,
            rcpts,
            size: 4096,
            mix: Vec::new(),
            tag: "t".into(),
        }
    }

    #[test]
    fn recipients_are_distinct_and_follow_the_share() {
        let all_cloud = w(1.0, 5);
        for i in 0..100 {
            let r = all_cloud.recipients(i);
            assert_eq!(r.len(), 5);
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 5, "distinct: {r:?}");
            for a in &r {
                let n: u64 = a[4..a.find('@').unwrap()].parse().unwrap();
                assert!(is_migrated(n), "{a}");
            }
        }
        let half = w(0.5, 1);
        let migrated = (0..10_000)
            .filter(|i| {
                let a = &half.recipients(*i)[0];
                is_migrated(a[4..a.find('@').unwrap()].parse().unwrap())
            })
            .count();
        assert!((4_500..5_500).contains(&migrated), "{migrated}");
    }

    #[test]
    fn message_has_the_size_and_no_leading_dots() {
        let wl = w(0.5, 1);
        let body = wl.body(wl.size);
        let h = wl.headers(7, 123, &wl.recipients(7));
        let total = body.len() + h.len();
        assert!((4000..4300).contains(&total), "{total}");
        assert!(body.ends_with(b"\r\n.\r\n"));
        assert!(!body[..body.len() - 3]
            .split(|b| *b == b'\n')
            .any(|l| l.starts_with(b".")));
        let text = String::from_utf8(h).unwrap();
        assert!(text.contains("Message-ID: <t.7@bench.example>\r\n"));
        assert!(text.contains("X-Bench-Sent: 123\r\n"));
    }

    #[test]
    fn a_mix_draws_sizes_by_weight() {
        let mut wl = w(0.5, 1);
        wl.mix = vec![(4096, 90), (102_400, 9), (10 << 20, 1)];
        let sizes: Vec<usize> = (0..10_000).map(|i| wl.size_of(i)).collect();
        let count = |s| sizes.iter().filter(|x| **x == s).count();
        assert!((8_800..9_200).contains(&count(4096)), "{}", count(4096));
        assert!((800..1_000).contains(&count(102_400)), "{}", count(102_400));
        assert!((60..140).contains(&count(10 << 20)), "{}", count(10 << 20));
        assert_eq!(wl.size_of(17), wl.size_of(17));
        assert_eq!(wl.sizes().len(), 3);
    }

    #[test]
    fn contacts_list_the_migrated_half() {
        let t = contacts_table(10);
        assert_eq!(t.lines().count(), 5);
        assert!(t.starts_with("user0@corp.example user0@tenant.cloud.example\n"));
    }
}
