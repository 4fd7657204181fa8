//! A real OpenLDAP `slapd` for tests: its own configuration and database in
//! a temporary directory, listening on free ports of 127.0.0.1, loaded
//! online with `ldapadd` (so the memberof overlay fills in `memberOf`), and
//! killed on drop.
//!
//! A missing `slapd` or `ldap-utils` fails the test with a message naming
//! what to install; nothing is skipped.

#![allow(dead_code, reason = "each test binary uses a part of the helper")]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts the tools; `PATH` is searched too.
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/libexec"];

/// The absolute path of a tool, or a message naming the package to install.
pub fn find_tool(name: &str, package: &str) -> Result<PathBuf, String> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    SBIN_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "{name} is missing: the LDAP tests need a real OpenLDAP server; install the Debian \
                 package {package} (apt-get install slapd ldap-utils; scripts/test does it)"
            )
        })
}

fn tool(name: &str, package: &str) -> PathBuf {
    find_tool(name, package).unwrap_or_else(|message| panic!("{message}"))
}

/// What the directory looks like.
#[derive(Debug, Clone)]
pub struct SlapdOptions {
    /// The naming context, `dc=example,dc=com`.
    pub suffix: String,
    /// Schema files besides core, cosine, inetorgperson and nis.
    pub extra_schemas: Vec<PathBuf>,
    /// LDIF files loaded with `ldapadd` after start.
    pub ldif: Vec<PathBuf>,
    /// Also listen on ldaps:// and offer StartTLS, with a throwaway CA.
    pub tls: bool,
}

impl SlapdOptions {
    pub fn new(suffix: &str) -> SlapdOptions {
        SlapdOptions {
            suffix: suffix.to_owned(),
            extra_schemas: Vec::new(),
            ldif: Vec::new(),
            tls: false,
        }
    }
}

/// Files of a throwaway CA and a server certificate for 127.0.0.1.
#[derive(Debug, Clone)]
pub struct TestCa {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Makes a CA and a server certificate (SAN `IP:127.0.0.1`,
/// `DNS:localhost`) in `dir` with the `openssl` command.
pub fn make_test_ca(dir: &Path, name: &str) -> TestCa {
    let openssl = find_tool("openssl", "openssl").unwrap_or_else(|message| panic!("{message}"));
    let run = |args: &[&str]| {
        let output = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ca_key = format!("{name}-ca.key");
    let ca_file = format!("{name}-ca.pem");
    let key_file = format!("{name}-server.key");
    let csr = format!("{name}-server.csr");
    let cert_file = format!("{name}-server.pem");
    let extensions = format!("{name}-server.ext");
    std::fs::write(
        dir.join(&extensions),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n",
    )
    .expect("write extensions");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca_file,
        "-days",
        "2",
        "-subj",
        "/CN=holdfast test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&args);
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", &key_file, "-out", &csr, "-subj", "/CN=localhost"]);
    run(&args);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_file,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert_file,
        "-days",
        "2",
        "-extfile",
        &extensions,
    ]);
    TestCa {
        ca_file: dir.join(ca_file),
        cert_file: dir.join(cert_file),
        key_file: dir.join(key_file),
    }
}

/// A running slapd; killed on drop.
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub suffix: String,
    pub root_dn: String,
    pub root_password: String,
    pub ca: Option<TestCa>,
    paused: bool,
}

impl Slapd {
    /// Starts slapd and loads the LDIF files. Panics, naming what is
    /// missing or what slapd said, when it cannot.
    pub fn start(options: &SlapdOptions) -> Slapd {
        let slapd = tool("slapd", "slapd");
        let ldapadd = tool("ldapadd", "ldap-utils");
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = options.tls.then(|| make_test_ca(dir.path(), "test"));
        let root_dn = format!("cn=admin,{}", options.suffix);
        let root_password = "directory-manager-secret".to_owned();
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let tls_port = options.tls.then(free_port);
            let run = dir.path().join(format!("run-{port}"));
            std::fs::create_dir_all(run.join("db")).expect("create db directory");
            let config = run.join("slapd.conf");
            std::fs::write(
                &config,
                slapd_conf(options, &run, &root_dn, &root_password, ca.as_ref()),
            )
            .expect("write slapd.conf");
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if let Some(tls_port) = tls_port {
                urls.push_str(&format!(" ldaps://127.0.0.1:{tls_port}/"));
            }
            let log_path = run.join("slapd.log");
            let log = std::fs::File::create(&log_path).expect("create slapd log");
            let mut child = Command::new(&slapd)
                .arg("-f")
                .arg(&config)
                .arg("-h")
                .arg(&urls)
                .arg("-d")
                .arg("0")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot run {}: {error}", slapd.display()));
            let deadline = Instant::now() + Duration::from_secs(15);
            let ready = loop {
                if let Some(status) = child.try_wait().expect("slapd status") {
                    break Err(status);
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && tls_port
                        .is_none_or(|tls_port| TcpStream::connect(("127.0.0.1", tls_port)).is_ok())
                {
                    break Ok(());
                }
                assert!(
                    Instant::now() < deadline,
                    "slapd did not listen within 15 s: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            match ready {
                Ok(()) => {
                    let server = Slapd {
                        child: Some(child),
                        dir,
                        port,
                        tls_port,
                        suffix: options.suffix.clone(),
                        root_dn,
                        root_password,
                        ca,
                        paused: false,
                    };
                    for ldif in &options.ldif {
                        server.ldap_tool(&ldapadd, &["-f", &ldif.display().to_string()], None);
                    }
                    return server;
                }
                // Another test took the port between our probe and slapd's bind.
                Err(_) if last_log.contains("already in use") => continue,
                Err(status) => panic!("slapd exited ({status}): {last_log}"),
            }
        }
        panic!("slapd could not bind a free port in five attempts: {last_log}");
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:<port>` (with `tls`).
    pub fn ldaps_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.tls_port.expect("slapd started with tls")
        )
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Applies LDIF changes with `ldapmodify` (`changetype:` records).
    pub fn modify(&self, ldif: &str) {
        let ldapmodify = tool("ldapmodify", "ldap-utils");
        self.ldap_tool(&ldapmodify, &[], Some(ldif));
    }

    /// Deletes an entry with `ldapdelete`.
    pub fn delete(&self, dn: &str) {
        let ldapdelete = tool("ldapdelete", "ldap-utils");
        self.ldap_tool(&ldapdelete, &[dn], None);
    }

    fn ldap_tool(&self, tool: &Path, args: &[&str], stdin: Option<&str>) {
        let mut child = Command::new(tool)
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                &self.root_dn,
                "-w",
                &self.root_password,
            ])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", tool.display()));
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(text.as_bytes())
                .expect("write to the tool");
        }
        let output = child.wait_with_output().expect("tool finishes");
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            tool.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kills the server (the directory goes down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the
    /// kernel but never answered, as with a hung directory.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("slapd is running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

fn slapd_conf(
    options: &SlapdOptions,
    run: &Path,
    root_dn: &str,
    root_password: &str,
    ca: Option<&TestCa>,
) -> String {
    let mut conf = String::new();
    for schema in ["core", "cosine", "inetorgperson", "nis"] {
        conf.push_str(&format!("include /etc/ldap/schema/{schema}.schema\n"));
    }
    for schema in &options.extra_schemas {
        conf.push_str(&format!("include {}\n", schema.display()));
    }
    conf.push_str(&format!(
        "modulepath /usr/lib/ldap\n\
         moduleload back_mdb\n\
         moduleload memberof\n\
         moduleload refint\n\
         pidfile {run}/slapd.pid\n\
         argsfile {run}/slapd.args\n",
        run = run.display()
    ));
    if let Some(ca) = ca {
        conf.push_str(&format!(
            "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
            ca.ca_file.display(),
            ca.cert_file.display(),
            ca.key_file.display()
        ));
    }
    conf.push_str(&format!(
        "database mdb\n\
         maxsize 104857600\n\
         suffix \"{suffix}\"\n\
         rootdn \"{root_dn}\"\n\
         rootpw {root_password}\n\
         directory {run}/db\n\
         index objectClass,uid,mail,member,uniqueMember eq\n\
         overlay memberof\n\
         memberof-group-oc groupOfNames\n\
         memberof-member-ad member\n\
         memberof-memberof-ad memberOf\n\
         memberof-refint TRUE\n\
         overlay refint\n\
         refint_attributes member uniqueMember\n\
         access to attrs=userPassword by self write by anonymous auth by * none\n\
         access to * by users read by * none\n",
        suffix = options.suffix,
        run = run.display()
    ));
    conf
}

#[test]
fn a_missing_tool_is_named_with_its_package() {
    let message = find_tool("slapd-that-does-not-exist", "slapd").expect_err("not installed");
    assert!(
        message.contains("slapd-that-does-not-exist is missing"),
        "{message}"
    );
    assert!(
        message.contains("apt-get install slapd ldap-utils"),
        "{message}"
    );
}
