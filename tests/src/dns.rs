//! A DNS responder on loopback UDP with fixed answers, so the built binary can
//! be pointed at it with `[dns] nameservers` (no internet in tests).
//!
//! A name in the zone answers its records of the type asked (NODATA when it has
//! none of that type); other names are NXDOMAIN. One thread, alive until the
//! test process ends.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, MX, TXT};
use hickory_proto::rr::{Name, RData, Record};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// Records by owner name (lower case, no trailing dot).
#[derive(Clone)]
pub struct Zone {
    records: BTreeMap<String, Vec<RData>>,
    /// TTL of every answer; 0 = not cached by the resolver (a zone that changes).
    ttl: u32,
}

fn fqdn(s: &str) -> Name {
    Name::from_ascii(format!("{}.", s.trim_end_matches('.'))).expect("valid name")
}

impl Default for Zone {
    fn default() -> Self {
        Zone::with_ttl(60)
    }
}

impl Zone {
    /// A zone whose answers carry `ttl` seconds (the default is 60).
    pub fn with_ttl(ttl: u32) -> Zone {
        Zone {
            records: BTreeMap::new(),
            ttl,
        }
    }

    /// Removes every record of `owner`.
    pub fn remove(mut self, owner: &str) -> Zone {
        self.records.remove(&owner.to_ascii_lowercase());
        self
    }

    fn add(mut self, owner: &str, rdata: RData) -> Zone {
        self.records
            .entry(owner.to_ascii_lowercase())
            .or_default()
            .push(rdata);
        self
    }

    /// An A record.
    pub fn a(self, owner: &str, ip: Ipv4Addr) -> Zone {
        self.add(owner, RData::A(A(ip)))
    }

    /// An MX record.
    pub fn mx(self, owner: &str, preference: u16, exchange: &str) -> Zone {
        self.add(owner, RData::MX(MX::new(preference, fqdn(exchange))))
    }

    /// A TXT record of one string.
    pub fn txt(self, owner: &str, text: &str) -> Zone {
        self.add(owner, RData::TXT(TXT::new(vec![text.to_string()])))
    }

    /// A CNAME record (returned for CNAME queries only).
    pub fn cname(self, owner: &str, target: &str) -> Zone {
        self.add(owner, RData::CNAME(CNAME(fqdn(target))))
    }

    fn answer(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let req = Message::from_vec(packet).ok()?;
        let q = req.queries.first().cloned()?;
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.metadata.authoritative = true;
        resp.add_query(q.clone());
        let owner = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        match self.records.get(&owner) {
            None => resp.metadata.response_code = ResponseCode::NXDomain,
            Some(list) => {
                for rdata in list.iter().filter(|r| r.record_type() == q.query_type()) {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        self.ttl,
                        rdata.clone(),
                    ));
                }
            }
        }
        resp.to_vec().ok()
    }

    /// Serves the zone on 127.0.0.1, a free port, with a handle to change it
    /// while it is served (`*handle.lock().unwrap() = new_zone`).
    pub fn serve_mutable(self) -> (SocketAddr, Arc<Mutex<Zone>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS");
        let addr = socket.local_addr().expect("DNS address");
        let zone = Arc::new(Mutex::new(self));
        let shared = Arc::clone(&zone);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                let answer = shared.lock().unwrap().answer(&buf[..n]);
                if let Some(bytes) = answer {
                    let _ = socket.send_to(&bytes, peer);
                }
            }
        });
        (addr, zone)
    }

    /// Serves the zone on 127.0.0.1, a free port; returns the address.
    pub fn serve(self) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS");
        let addr = socket.local_addr().expect("DNS address");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                if let Some(bytes) = self.answer(&buf[..n]) {
                    let _ = socket.send_to(&bytes, peer);
                }
            }
        });
        addr
    }
}
