//! A real nginx (Debian's `nginx`) as an HTTPS reverse proxy in front of a
//! server that cannot check OAuth2 bearer tokens itself: every request is
//! first checked with `auth_request` against the test authorization server's
//! `GET /auth` (`tests/py/oauth_server.py`), and the user it names goes on to
//! the upstream as `X-Remote-User` (whatever the client sent in that header
//! is replaced). Own folder, own config, loopback only.

use crate::dovecot::TestCa;
use crate::free_port;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
pub struct Nginx {
    dir: tempfile::TempDir,
    /// The HTTPS port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl Nginx {
    /// Proxies `https://127.0.0.1:PORT/` to `http://127.0.0.1:upstream/`,
    /// each request allowed by `auth_url` (checked with the test CA).
    pub fn start_auth_proxy(upstream: u16, auth_url: &str, ca: &TestCa) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("nginx-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("cert.pem"), &ca.cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), &ca.key_pem).unwrap();
        std::fs::write(d.join("ca.pem"), &ca.ca_pem).unwrap();
        let port = free_port();
        // As root the workers would switch to `nobody`, who cannot read this
        // folder; they stay the test's user.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let user = if root { "user root;\n" } else { "" };
        std::fs::write(
            d.join("nginx.conf"),
            format!(
                "{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n\
                 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
                 client_max_body_size 64m;\n\
                 server {{\n    listen 127.0.0.1:{port} ssl;\n\
                 ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
                 location = /_auth {{\n      internal;\n      proxy_pass {auth_url};\n\
                 proxy_method GET;\n      proxy_pass_request_body off;\n\
                 proxy_set_header Content-Length \"\";\n\
                 proxy_set_header Authorization $http_authorization;\n\
                 proxy_ssl_verify on;\n      proxy_ssl_trusted_certificate {d}/ca.pem;\n\
                 proxy_ssl_name localhost;\n    }}\n\
                 location / {{\n      auth_request /_auth;\n\
                 auth_request_set $remote_user_from_token $upstream_http_x_remote_user;\n\
                 proxy_set_header X-Remote-User $remote_user_from_token;\n\
                 proxy_set_header Authorization \"\";\n\
                 proxy_set_header Host $http_host;\n\
                 proxy_pass http://127.0.0.1:{upstream};\n    }}\n  }}\n}}\n",
                d = d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("stderr.log")).unwrap();
        let mut child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("/usr/sbin/nginx (apt-get install nginx)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "nginx exited ({status}):\n{}{}",
                    std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default(),
                    std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { dir, port, child }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Its error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
