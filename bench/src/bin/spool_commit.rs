//! `spool-commit`: stores per second through the spool's group commit, with
//! many concurrent writers of small messages (the relay's accept path without
//! SMTP). Usage: `spool-commit [WRITERS] [PER_WRITER] [DIR]` (defaults 50, 200,
//! the temp folder; give a DIR to measure another file system).

use relay::envelope::{Envelope, Recipient, RecipientStatus, RouteReason};
use relay::queue::spool::Spool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn envelope(id: String) -> Envelope {
    Envelope {
        id,
        received_at: unix_now(),
        sender: "alice@example.net".into(),
        client_ip: "192.0.2.7".parse().expect("ip"),
        helo: "client.example.net".into(),
        listener: "smtp".into(),
        body: Default::default(),
        smtputf8: false,
        ret: None,
        envid: None,
        size: 0,
        recipients: vec![Recipient {
            address: "bob@corp.example".into(),
            rewritten: "bob@tenant.cloud.example".into(),
            route: "cloud".into(),
            reason: RouteReason::Contact,
            notify: Default::default(),
            orcpt: None,
            status: RecipientStatus::Pending,
            attempts: 0,
            next_attempt: 0,
            last_error: None,
        }],
        delay_notified: false,
        held: false,
        external: None,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let writers: usize = args.next().map_or(50, |a| a.parse().expect("WRITERS"));
    let per_writer: usize = args.next().map_or(200, |a| a.parse().expect("PER_WRITER"));
    let dir = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = tempfile::tempdir_in(dir).expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (spool, _) = Spool::open(tmp.path()).expect("open spool");
    let header = b"Received: from client.example.net by relay.corp.example\r\n".to_vec();
    let body = vec![b'a'; 4096];
    let start = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let spool = Arc::clone(&spool);
                let (header, body) = (header.clone(), body.clone());
                tokio::spawn(async move {
                    for _ in 0..per_writer {
                        let e = envelope(spool.new_id());
                        let mut incoming = spool.incoming(e.id.clone());
                        incoming.buffer().extend_from_slice(&header);
                        incoming.buffer().extend_from_slice(&body);
                        spool.store(e, incoming).await.expect("store");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    let elapsed = start.elapsed();
    let stats = spool.stats();
    println!(
        "{} messages in {:.2?}: {:.0} stores/s, {} batches (avg {:.1}, max {})",
        stats.messages,
        elapsed,
        stats.messages as f64 / elapsed.as_secs_f64(),
        stats.batches,
        stats.messages as f64 / stats.batches.max(1) as f64,
        stats.largest_batch
    );
    assert_eq!(stats.messages, (writers * per_writer) as u64);
}
