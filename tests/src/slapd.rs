//! Real OpenLDAP `slapd` instances for the directory tests: each in its own
//! temporary folder with its own `slapd.conf` (back_mdb, the syncprov overlay,
//! the shipped `config/ldap/coexist.schema`), listening on free loopback ports
//! with `ldap://` (StartTLS) and `ldaps://`, a certificate from the test's CA.
//! A replica is a second instance that is a syncrepl consumer of the first.
//! Writes and reads for the test's own checks go through the OpenLDAP command
//! line tools (`ldapmodify`, `ldapsearch`): a client independent of coexist.

use crate::dovecot::TestCa;
use crate::free_port;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory's suffix.
pub const SUFFIX: &str = "dc=corp,dc=example";
/// The administrator (rootdn) and its password.
pub const ROOT: (&str, &str) = ("cn=admin,dc=corp,dc=example", "rootpw");
/// The service account coexist binds as, and its password.
pub const SERVICE: (&str, &str) = ("cn=coexist,ou=Service,dc=corp,dc=example", "svc-secret");
/// Where users live.
pub const USERS: &str = "ou=Users,dc=corp,dc=example";
/// Where forwarding contacts go.
pub const CONTACTS: &str = "ou=Cloud Contacts,dc=corp,dc=example";

/// How to set up one instance.
#[derive(Default)]
pub struct SlapdSetup {
    /// Name for logs (`provider`, `replica`).
    pub name: String,
    /// Entries added at start (LDIF, after the base entries); empty for a replica.
    pub ldif: String,
    /// For a replica: the provider's `ldap://` URL.
    pub provider: Option<String>,
    /// Give the service account write access to contacts and to users'
    /// forwarding attributes (what the migrator needs); read-only otherwise.
    pub service_writes: bool,
    /// Leave out the syncprov overlay: a server without RFC 4533 (as AD is).
    pub without_syncprov: bool,
    /// `ldif` brings its own suffix, OUs and service account (the shipped
    /// example directory): don't add the built-in ones.
    pub bare: bool,
    /// An LDIF file loaded offline with `slapadd` before the start (fast for
    /// a large directory); it must hold [`base_ldif`] itself.
    pub bulk: Option<PathBuf>,
    /// The database without fsync (`dbnosync`): for a benchmark whose
    /// directory stands for one on a machine of its own, so that its writes
    /// do not queue on the relay's disk.
    pub no_sync: bool,
    /// The CPUs (a `taskset` list) slapd and its command-line tools run on:
    /// for a benchmark that keeps the directory's CPU work off the relay's
    /// cores, as a directory on a machine of its own would.
    pub cpus: Option<String>,
}

/// A running slapd.
pub struct Slapd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `ldap://` port.
    pub port: u16,
    /// `ldaps://` port.
    pub tls_port: u16,
    /// PEM file of the CA that signed the server certificate.
    pub ca_file: PathBuf,
    name: String,
    /// [`SlapdSetup::cpus`].
    cpus: Option<String>,
}

/// The entries every provider starts with: the suffix, the OUs and the
/// service account.
pub fn base_ldif() -> String {
    format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: corp\ndc: corp\n\n\
         dn: ou=Service,{SUFFIX}\nobjectClass: organizationalUnit\nou: Service\n\n\
         dn: {USERS}\nobjectClass: organizationalUnit\nou: Users\n\n\
         dn: {CONTACTS}\nobjectClass: organizationalUnit\nou: Cloud Contacts\n\n\
         dn: {}\nobjectClass: person\ncn: coexist\nsn: service\nuserPassword: {}\n\n",
        SERVICE.0, SERVICE.1
    )
}

/// An LDIF user entry (`inetOrgPerson` + the shipped `user` class).
pub fn user_ldif(cn: &str, mail: &str, extra: &[(&str, &str)]) -> String {
    let mut out = format!(
        "dn: cn={cn},{USERS}\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: {cn}\nsn: {cn}\n\
         displayName: {cn}\nmail: {mail}\nproxyAddresses: SMTP:{mail}\nuserAccountControl: 512\n"
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push('\n');
    out
}

/// The DN of a user made by [`user_ldif`].
pub fn user_dn(cn: &str) -> String {
    format!("cn={cn},{USERS}")
}

/// A forwarding contact as the migrator writes it, for seeding.
pub fn contact_ldif(address: &str, target: &str) -> String {
    format!(
        "dn: {}\nobjectClass: contact\ncn: {address} (cloud)\ndisplayName: {address}\nmail: {target}\n\
         targetAddress: SMTP:{target}\nmsExchHideFromAddressLists: TRUE\n\n",
        contact_dn(address)
    )
}

/// The DN of the forwarding contact for `address` (DESIGN.md: cn = address + " (cloud)").
pub fn contact_dn(address: &str) -> String {
    format!("cn={address} (cloud),{CONTACTS}")
}

impl Slapd {
    /// Writes the config, starts slapd and loads the entries.
    pub fn start(setup: SlapdSetup, ca: &TestCa) -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &ca.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &ca.key_pem).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.ca_pem).unwrap();
        let mut slapd = Slapd {
            port: free_port(),
            tls_port: free_port(),
            ca_file,
            child: None,
            name: setup.name.clone(),
            cpus: setup.cpus.clone(),
            dir,
        };
        std::fs::write(slapd.dir.path().join("slapd.conf"), slapd.config(&setup)).unwrap();
        if let Some(bulk) = &setup.bulk {
            let out = Command::new("/usr/sbin/slapadd")
                .arg("-q")
                .arg("-f")
                .arg(slapd.dir.path().join("slapd.conf"))
                .arg("-l")
                .arg(bulk)
                .output()
                .expect("slapadd");
            assert!(
                out.status.success(),
                "slapadd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        slapd.restart();
        if setup.provider.is_none() && setup.bulk.is_none() {
            if !setup.bare {
                slapd.add(&base_ldif());
            }
            if !setup.ldif.is_empty() {
                slapd.add(&setup.ldif);
            }
        }
        slapd
    }

    fn config(&self, setup: &SlapdSetup) -> String {
        let d = self.dir.path().display();
        let schema = crate::repo_root().join("config/ldap/coexist.schema");
        let schema = schema.display();
        let writes = if setup.service_writes {
            "write"
        } else {
            "read"
        };
        let (svc, root) = (SERVICE.0, ROOT.0);
        let nosync = if setup.no_sync { "dbnosync\n" } else { "" };
        let mut c = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include {schema}\n\
             pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload syncprov\n\
             TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/cert.pem\nTLSCertificateKeyFile {d}/key.pem\n\
             database mdb\nsuffix \"{SUFFIX}\"\nrootdn \"{root}\"\nrootpw {}\ndirectory {d}/db\nmaxsize 1073741824\n{nosync}\
             index objectClass,entryCSN,entryUUID eq\nindex mail,proxyAddresses,targetAddress,altRecipient eq\n\
             limits dn.exact=\"{svc}\" size=unlimited time=unlimited\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to dn.base=\"{CONTACTS}\" attrs=children by dn.exact=\"{svc}\" {writes} by * read\n\
             access to dn.children=\"{CONTACTS}\" by dn.exact=\"{svc}\" {writes} by * read\n\
             access to dn.subtree=\"{USERS}\" attrs=altRecipient,deliverAndRedirect by dn.exact=\"{svc}\" {writes} by * read\n\
             access to * by * read\n",
            ROOT.1
        );
        if let Some(provider) = &setup.provider {
            c.push_str(&format!(
                "syncrepl rid=001 provider={provider} type=refreshAndPersist searchbase=\"{SUFFIX}\" \
                 bindmethod=simple binddn=\"{root}\" credentials={} retry=\"1 +\"\nupdateref {provider}\n",
                ROOT.1
            ));
        }
        if !setup.without_syncprov {
            c.push_str("overlay syncprov\nsyncprov-checkpoint 100 10\n");
        }
        c
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS-capable).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    /// Starts (again) the process on the same ports and data; waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("slapd.log"))
            .unwrap();
        let child = self
            .command("/usr/sbin/slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!("{} {}/", self.url(), self.ldaps_url()))
            .args(["-d", "0"])
            .env("LDAPNOINIT", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("slapd (tests/run installs slapd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("slapd {} exited {status}:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "slapd {} did not start:\n{}",
                self.name,
                self.log()
            );
            // slapd offers no readiness notification; its port is the event.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// slapd's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// `program`, on [`SlapdSetup::cpus`] when set (taskset execs it: the
    /// child's pid is the program's).
    fn command(&self, program: &str) -> Command {
        match &self.cpus {
            None => Command::new(program),
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, program]);
                c
            }
        }
    }

    fn tool(&self, tool: &str, args: &[&str], input: &str) -> std::process::Output {
        let mut child = self
            .command(tool)
            .args(["-x", "-H", &self.url(), "-D", ROOT.0, "-w", ROOT.1])
            .args(args)
            .env("LDAPNOINIT", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: {e} (tests/run installs ldap-utils)"));
        // Written from a thread: the tool prints a line per entry while it
        // reads, and a big LDIF would fill its stdout pipe before we read it.
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        out
    }

    /// `ldapadd` as the administrator; panics on failure.
    pub fn add(&self, ldif: &str) {
        let out = self.tool("ldapadd", &[], ldif);
        assert!(
            out.status.success(),
            "ldapadd: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ldapmodify` as the administrator (LDIF with changetype lines); panics on failure.
    pub fn modify(&self, ldif: &str) {
        let out = self.tool("ldapmodify", &[], ldif);
        assert!(
            out.status.success(),
            "ldapmodify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ldapsearch -LLL` under the suffix; the LDIF text.
    pub fn search(&self, filter: &str, attrs: &[&str]) -> String {
        let mut args = vec!["-LLL", "-o", "ldif-wrap=no", "-b", SUFFIX, filter];
        args.extend_from_slice(attrs);
        let out = self.tool("ldapsearch", &args, "");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Folder of the instance.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `[ldap]` section for a relay bound as the service account over
/// StartTLS, verified with the test CA; `urls` tried in order.
pub fn relay_ldap_section(urls: &[String], ca_file: &Path, password_file: &Path) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "url = [{}]\nca = \"{}\"\nbind_dn = \"{}\"\npassword_file = \"{}\"\nbase = \"{SUFFIX}\"\ntimeout = \"5s\"",
        urls.join(", "),
        ca_file.display(),
        SERVICE.0,
        password_file.display()
    )
}
