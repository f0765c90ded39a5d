//! A DNS responder on loopback UDP with a fixed zone, for tests that resolve
//! through `[dns] nameservers` without touching the internet.
//!
//! Names in the zone answer the records they hold for the type asked (an empty
//! answer, NODATA, when they hold none of that type); a CNAME is returned for
//! any type together with the target's records of that type, as a recursive
//! server would; names not in the zone are NXDOMAIN.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use tokio::net::UdpSocket;

/// Records by owner name (lower case, no trailing dot).
#[derive(Clone, Default)]
pub(crate) struct Zone {
    records: BTreeMap<String, Vec<RData>>,
}

fn name(s: &str) -> Name {
    let fqdn = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(fqdn).expect("valid test name")
}

fn key(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    pub(crate) fn new() -> Zone {
        Zone::default()
    }

    fn add(mut self, owner: &str, rdata: RData) -> Zone {
        self.records.entry(key(owner)).or_default().push(rdata);
        self
    }

    /// An A or AAAA record.
    pub(crate) fn addr(self, owner: &str, ip: IpAddr) -> Zone {
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.add(owner, rdata)
    }

    /// An MX record; `exchange` "." makes a null MX (RFC 7505).
    pub(crate) fn mx(self, owner: &str, preference: u16, exchange: &str) -> Zone {
        let exchange = if exchange == "." {
            Name::root()
        } else {
            name(exchange)
        };
        self.add(owner, RData::MX(MX::new(preference, exchange)))
    }

    /// A TXT record of one string.
    pub(crate) fn txt(self, owner: &str, text: &str) -> Zone {
        self.add(owner, RData::TXT(TXT::new(vec![text.to_string()])))
    }

    /// A CNAME record.
    pub(crate) fn cname(self, owner: &str, target: &str) -> Zone {
        self.add(owner, RData::CNAME(CNAME(name(target))))
    }

    /// An SRV record.
    pub(crate) fn srv(self, owner: &str, priority: u16, port: u16, target: &str) -> Zone {
        self.add(owner, RData::SRV(SRV::new(priority, 0, port, name(target))))
    }

    /// The response to one query message; `None` for a packet that is not one.
    pub(crate) fn answer(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let req = Message::from_vec(packet).ok()?;
        let q = req.queries.first().cloned()?;
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.metadata.authoritative = true;
        resp.add_query(q.clone());
        let owner = key(&q.name().to_ascii());
        match self.records.get(&owner) {
            None => resp.metadata.response_code = ResponseCode::NXDomain,
            Some(list) => {
                for rdata in list {
                    if rdata.record_type() == q.query_type() {
                        resp.add_answer(Record::from_rdata(q.name().clone(), 60, rdata.clone()));
                    } else if let RData::CNAME(target) = rdata {
                        resp.add_answer(Record::from_rdata(q.name().clone(), 60, rdata.clone()));
                        let t = key(&target.0.to_ascii());
                        for r in self.records.get(&t).into_iter().flatten() {
                            if r.record_type() == q.query_type() {
                                resp.add_answer(Record::from_rdata(
                                    target.0.clone(),
                                    60,
                                    r.clone(),
                                ));
                            }
                        }
                    }
                }
            }
        }
        resp.to_vec().ok()
    }
}

/// A running responder; it stops when the test's runtime ends.
pub(crate) struct DnsServer {
    /// Where to send queries (`[dns] nameservers`).
    pub(crate) addr: SocketAddr,
}

impl DnsServer {
    /// Binds 127.0.0.1 on a free port and answers from `zone`.
    pub(crate) async fn start(zone: Zone) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS");
        let addr = socket.local_addr().expect("DNS address");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(bytes) = zone.answer(&buf[..n]) {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        DnsServer { addr }
    }
}
