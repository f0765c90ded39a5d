//! A real Prometheus on loopback, scraping the processes under test every second,
//! and its HTTP query API (`/api/v1/query`). `promtool` runs rule unit tests.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    /// Where its API answers.
    pub api: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping each job's targets every second (job name,
    /// `host:port` addresses), and waits until it is ready.
    pub fn start(jobs: &[(&str, &[SocketAddr])]) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, targets) in jobs {
            let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ));
        }
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let api: SocketAddr = format!("127.0.0.1:{}", crate::free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={api}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (tests/run installs it)");
        let prometheus = Prometheus {
            child,
            api,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while crate::try_http_get(api, "/-/ready").map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "Prometheus never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// Runs one instant query; returns the HTTP status and the parsed answer
    /// (`{"status": "success"|"error", "data": ..., "error": ...}`).
    pub fn query(&self, promql: &str) -> (u16, serde_json::Value) {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, body) = crate::http_get(self.api, &path);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("Prometheus answered {status} with no JSON ({e}): {body}"));
        (status, json)
    }

    /// The result vector of a successful instant query (panics on an error answer).
    pub fn series(&self, promql: &str) -> Vec<serde_json::Value> {
        let (status, answer) = self.query(promql);
        assert!(
            status == 200 && answer["status"] == "success",
            "{promql}: {status} {answer}"
        );
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `promql` until `done` holds for its result vector (Prometheus scrapes on
    /// its own clock); panics with the last answer after `timeout`.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let series = self.series(promql);
            if done(&series) {
                return series;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus: {promql} never held: {series:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample value of one series of a result vector.
pub fn value(series: &serde_json::Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Percent-encodes a query parameter (RFC 3986: everything but the unreserved set).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
