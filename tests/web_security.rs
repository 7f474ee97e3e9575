//! `--web.config.file` on the real binary, with certificates made at test time (rcgen):
//! TLS with a required and verified client certificate, basic auth (401 with
//! `WWW-Authenticate` for missing, wrong or unknown credentials), configured headers on
//! every response, plain HTTP to the TLS port answered 400, a rotated certificate served
//! without a restart, bad web-config files (a user listed twice, nesting 100,000 levels
//! deep among them) refused at start with the field named, and the warnings found while
//! reading the file printed once logging is up.

mod common;

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use common::{exchange, fixture, Exporter, Response};

/// A CA with its key, able to sign leaves.
struct Authority {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("self-signed");
        Self { certificate, key }
    }

    /// A leaf for `name` (and 127.0.0.1) with the given usage: (certificate PEM, key PEM).
    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("signed");
        (certificate.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.certificate.pem()
    }
}

fn client_config(
    trusted: &Authority,
    identity: Option<&(String, String)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(trusted.certificate.der().to_vec()))
        .expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// One HTTPS request; Err when the TLS handshake or the request fails.
fn https(
    exporter: &Exporter,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let name = ServerName::try_from("localhost").expect("name");
    let connection = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let socket = TcpStream::connect_timeout(&exporter.addr, Duration::from_secs(5))?;
    socket.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    exchange(&mut stream, "localhost", "GET", path, headers)
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn start(web_config: &Path, state: &Path) -> Exporter {
    Exporter::start(&[
        "--web.config.file",
        web_config.to_str().expect("utf-8"),
        "--path.procfs",
        fixture("host/proc").to_str().expect("utf-8"),
        "--path.sysfs",
        fixture("host/sys-v2").to_str().expect("utf-8"),
        "--no-collector.exits",
        "--no-collector.kmsg",
        "--state.dir",
        state.to_str().expect("utf-8"),
    ])
}

/// Replaces a file the way certificate tools do: write aside, rename over.
fn replace(path: &Path, contents: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).expect("write");
    std::fs::rename(&aside, path).expect("rename");
}

#[test]
fn tls_client_certificates_basic_auth_and_headers() {
    let dir = tempfile::tempdir().expect("temp");
    let server_ca = Authority::new("oomwatch test server CA");
    let client_ca = Authority::new("oomwatch test client CA");
    let stranger_ca = Authority::new("somebody else's CA");
    let (cert, key) = server_ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.path().join("server.crt"), &cert).expect("write");
    std::fs::write(dir.path().join("server.key"), &key).expect("write");
    std::fs::write(dir.path().join("clients.crt"), client_ca.pem()).expect("write");
    let hash = bcrypt::hash("scrape-secret", 4).expect("hash");
    let web_config = dir.path().join("web.yml");
    std::fs::write(
        &web_config,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n  \
             client_allowed_sans: [prometheus.example]\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .expect("write");
    let state = tempfile::tempdir().expect("temp");
    let exporter = start(&web_config, state.path());

    // Plain HTTP to the TLS port: a 400 that says why, never metrics.
    let plain = common::request(exporter.addr, "GET", "/metrics", &[]);
    assert_eq!(plain.status, 400);
    assert!(plain.body.contains("HTTPS"), "{}", plain.body);

    let good_client = client_ca.leaf("prometheus.example", ExtendedKeyUsagePurpose::ClientAuth);
    let wrong_san = client_ca.leaf("laptop.example", ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = stranger_ca.leaf("prometheus.example", ExtendedKeyUsagePurpose::ClientAuth);
    let wildcard = client_ca.leaf("*.example", ExtendedKeyUsagePurpose::ClientAuth);
    let auth = basic("prometheus", "scrape-secret");
    let credentials = [("Authorization", auth.as_str())];

    // No client certificate, one from an untrusted CA, one without an allowed SAN, one
    // whose wildcard would match by hostname rules but is not an exact SAN: refused.
    for (what, identity) in [
        ("no client certificate", None),
        ("an untrusted client certificate", Some(&stranger)),
        (
            "a client certificate without an allowed SAN",
            Some(&wrong_san),
        ),
        ("a wildcard client certificate", Some(&wildcard)),
    ] {
        let result = https(
            &exporter,
            client_config(&server_ca, identity),
            "/metrics",
            &credentials,
        );
        assert!(
            result.is_err(),
            "{what} was served: {:?}",
            result.map(|r| r.status)
        );
    }

    let client = client_config(&server_ca, Some(&good_client));
    // The client certificate is fine; the credentials decide.
    let wrong_password = basic("prometheus", "guess");
    let unknown_user = basic("admin", "scrape-secret");
    for (what, headers) in [
        ("no credentials", vec![]),
        (
            "a wrong password",
            vec![("Authorization", wrong_password.as_str())],
        ),
        (
            "an unknown user",
            vec![("Authorization", unknown_user.as_str())],
        ),
    ] {
        for path in ["/metrics", "/", "/-/healthy"] {
            let response = https(&exporter, client.clone(), path, &headers).expect("https");
            assert_eq!(response.status, 401, "{what} on {path}");
            assert_eq!(
                response.header("WWW-Authenticate"),
                Some("Basic realm=\"oomwatch\", charset=\"UTF-8\""),
                "{what}"
            );
            assert_eq!(response.header("X-Frame-Options"), Some("deny"), "{what}");
            assert!(
                !response.body.contains("oomwatch_"),
                "{what} leaked metrics"
            );
        }
    }
    // Every method and path needs the credentials.
    for (method, path) in [
        ("HEAD", "/metrics"),
        ("POST", "/metrics"),
        ("GET", "/nowhere"),
    ] {
        let name = ServerName::try_from("localhost").expect("name");
        let connection = rustls::ClientConnection::new(client.clone(), name).expect("tls");
        let socket = TcpStream::connect(exporter.addr).expect("connect");
        let mut stream = rustls::StreamOwned::new(connection, socket);
        let response = exchange(&mut stream, "localhost", method, path, &[]).expect("https");
        assert_eq!(response.status, 401, "{method} {path}");
    }
    for _ in 0..3 {
        let response = https(&exporter, client.clone(), "/metrics", &credentials).expect("https");
        assert_eq!(response.status, 200);
        assert!(response.body.contains("oomwatch_build_info"));
        assert_eq!(response.header("X-Frame-Options"), Some("deny"));
        assert_eq!(
            response.header("Strict-Transport-Security"),
            Some("max-age=31536000")
        );
    }

    // Rotate the server certificate to one from another CA: served without a restart.
    let rotated_ca = Authority::new("oomwatch rotated server CA");
    let (cert, key) = rotated_ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    // A half-written rotation (new certificate, old key) keeps the old pair serving.
    replace(&dir.path().join("server.crt"), &cert);
    let during = https(&exporter, client.clone(), "/metrics", &credentials).expect("old pair");
    assert_eq!(during.status, 200);
    replace(&dir.path().join("server.key"), &key);
    let rotated = client_config(&rotated_ca, Some(&good_client));
    let response = https(&exporter, rotated, "/metrics", &credentials).expect("rotated");
    assert_eq!(response.status, 200);
    assert!(
        https(&exporter, client, "/metrics", &credentials).is_err(),
        "the old certificate is still served"
    );
    let log = exporter.log();
    assert!(log.contains("cannot be loaded"), "{log}");
    assert!(log.contains("reloaded"), "{log}");
    assert!(exporter.stop().success());
}

#[test]
fn optional_and_unverified_client_certificates_and_a_rate_limit() {
    let dir = tempfile::tempdir().expect("temp");
    let server_ca = Authority::new("server CA");
    let client_ca = Authority::new("client CA");
    let stranger_ca = Authority::new("stranger CA");
    let (cert, key) = server_ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.path().join("server.crt"), &cert).expect("write");
    std::fs::write(dir.path().join("server.key"), &key).expect("write");
    std::fs::write(dir.path().join("clients.crt"), client_ca.pem()).expect("write");
    let trusted = client_ca.leaf("prometheus.example", ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = stranger_ca.leaf("prometheus.example", ExtendedKeyUsagePurpose::ClientAuth);
    let status = |exporter: &Exporter, identity: Option<&(String, String)>| {
        https(
            exporter,
            client_config(&server_ca, identity),
            "/metrics",
            &[],
        )
        .map(|r| r.status)
    };

    // VerifyClientCertIfGiven: none is fine, a trusted one is fine, a stranger's is not.
    let web = dir.path().join("if-given.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: clients.crt\n",
    )
    .expect("write");
    let exporter = start(&web, &dir.path().join("state-1"));
    assert_eq!(status(&exporter, None).expect("no certificate"), 200);
    assert_eq!(status(&exporter, Some(&trusted)).expect("trusted"), 200);
    assert!(status(&exporter, Some(&stranger)).is_err());
    drop(exporter);

    // RequireAnyClientCert: any certificate, none refused.
    let web = dir.path().join("any.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAnyClientCert\n",
    )
    .expect("write");
    let exporter = start(&web, &dir.path().join("state-2"));
    assert_eq!(
        status(&exporter, Some(&stranger)).expect("any certificate"),
        200
    );
    assert!(status(&exporter, None).is_err());
    drop(exporter);

    // rate_limit: a burst of 3, then 429 until a token comes back (one a minute).
    let web = dir.path().join("limited.yml");
    std::fs::write(&web, "rate_limit:\n  interval: 1m\n  burst: 3\n").expect("write");
    let exporter = start(&web, &dir.path().join("state-3"));
    let statuses: Vec<u16> = (0..5)
        .map(|_| exporter.request("GET", "/-/healthy").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

#[test]
fn basic_auth_over_plain_http() {
    let dir = tempfile::tempdir().expect("temp");
    let hash = bcrypt::hash("pw", 4).expect("hash");
    let web_config = dir.path().join("web.yml");
    std::fs::write(&web_config, format!("basic_auth_users:\n  alice: {hash}\n")).expect("write");
    let exporter = start(&web_config, dir.path());
    // The warning found while the file was read is in the log, which did not exist yet.
    let log = exporter.log();
    let warning = log
        .lines()
        .find(|line| line.contains("basic_auth_users without tls_server_config"))
        .unwrap_or_else(|| panic!("no warning about clear-text passwords:\n{log}"));
    assert!(warning.contains("level=warn"), "{warning}");
    assert!(warning.contains("--web.config.file"), "{warning}");
    // The incident page and the event API are as protected as the metrics.
    let wrong = basic("alice", "guess");
    for path in [
        "/metrics",
        "/",
        "/api/v1/events",
        "/api/v1/events?type=oom_kill",
    ] {
        let denied = exporter.request("GET", path);
        assert_eq!(denied.status, 401, "{path}");
        assert!(denied.header("WWW-Authenticate").is_some(), "{path}");
        assert!(
            !denied.body.contains("oomwatch on"),
            "{path}: {}",
            denied.body
        );
        let guessed = common::request(
            exporter.addr,
            "GET",
            path,
            &[("Authorization", wrong.as_str())],
        );
        assert_eq!(guessed.status, 401, "{path} with a wrong password");
    }
    let auth = basic("alice", "pw");
    let allowed = |path: &str| {
        common::request(
            exporter.addr,
            "GET",
            path,
            &[("Authorization", auth.as_str())],
        )
    };
    let metrics = allowed("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("oomwatch_build_info"));
    let page = allowed("/");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<section id=\"timeline\">"),
        "{}",
        page.body
    );
    let api = allowed("/api/v1/events");
    assert_eq!(api.status, 200);
    assert!(api.body.starts_with("{\"events\":["), "{}", api.body);
}

#[test]
fn bad_web_configs_fail_the_start_naming_the_field() {
    let dir = tempfile::tempdir().expect("temp");
    let ca = Authority::new("ca");
    let (cert, key) = ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let (_, other_key) = ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.path().join("server.crt"), &cert).expect("write");
    std::fs::write(dir.path().join("server.key"), &key).expect("write");
    std::fs::write(dir.path().join("other.key"), &other_key).expect("write");
    std::fs::write(dir.path().join("garbage.crt"), "not a certificate\n").expect("write");
    let cases = [
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n", "tls_server_config.cert_file"),
        ("tls_server_config:\n  cert_file: garbage.crt\n  key_file: server.key\n", "no CERTIFICATE"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n", "does not fit"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS11\n", "tls_server_config.min_version"),
        ("basic_auth_users:\n  bob: hunter2\n", "basic_auth_users.bob"),
        ("http_server_config:\n  headers:\n    Server: nginx\n", "http_server_config.headers.Server"),
        ("tls_server_config:\n  certfile: server.crt\n", "certfile"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: server.crt\n  client_allowed_sans: [a.example]\n", "tls_server_config.client_allowed_sans"),
        ("basic_auth_users:\n  bob: $2y$31$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n", "cost 31"),
        ("basic_auth_users:\n  bob: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n  bob: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n", "basic_auth_users.bob: this user is listed more than once"),
        ("basic_auth_users:\n  bob:\n", "basic_auth_users.bob: not a bcrypt hash"),
        ("basic_auth_users: [bob]\n", "basic_auth_users: invalid type"),
    ];
    let deep = format!(
        "basic_auth_users: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases = cases
        .into_iter()
        .map(|(text, expected)| (text.to_owned(), expected))
        .chain([(
            deep,
            "basic_auth_users: nested deeper than 64 levels at line 1",
        )]);
    for (index, (text, expected)) in cases.enumerate() {
        let path = dir.path().join(format!("web-{index}.yml"));
        std::fs::write(&path, &text).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_oomwatch"))
            .args(["--web.listen-address", "127.0.0.1:0", "--state.dir"])
            .arg(dir.path().join("state"))
            .arg("--web.config.file")
            .arg(&path)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = &text[..text.len().min(200)];
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains("--web.config.file"), "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}

/// The median of `samples`, in milliseconds.
fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

#[test]
fn a_wrong_password_and_an_unknown_user_take_the_same_time_whatever_the_costs() {
    // Costs far apart (4, 9, 10), so bcrypt dominates each answer: without padding a
    // wrong password for `fast` would cost 1/64 of an unknown user's check.
    const HIGH: u32 = 10;
    let dir = tempfile::tempdir().expect("temp");
    let web_config = dir.path().join("web.yml");
    let hash = |password: &str, cost| bcrypt::hash(password, cost).expect("hash");
    std::fs::write(
        &web_config,
        format!(
            "basic_auth_users:\n  fast: '{}'\n  middle: '{}'\n  slow: '{}'\n",
            hash("fast-secret", 4),
            hash("middle-secret", HIGH - 1),
            hash("slow-secret", HIGH)
        ),
    )
    .expect("write");
    let exporter = start(&web_config, dir.path());
    let attempts = [
        ("wrong password, cost 4", basic("fast", "guess")),
        ("wrong password, cost 9", basic("middle", "guess")),
        ("wrong password, cost 10", basic("slow", "guess")),
        ("unknown user", basic("mallory", "guess")),
    ];
    let time = |authorization: &str| {
        let started = Instant::now();
        let response = common::request(
            exporter.addr,
            "GET",
            "/-/healthy",
            &[("Authorization", authorization)],
        );
        assert_eq!(response.status, 401);
        started.elapsed()
    };
    // Warm up, then interleave the kinds (in a rotating order), so that a busy moment on
    // the machine falls on all of them alike; each is compared with the unknown user's
    // check of the same round, which cancels slower drifts of the machine's load.
    for (_, authorization) in &attempts {
        time(authorization);
    }
    let unknown = attempts.len() - 1;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); attempts.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); attempts.len()];
    for round in 0..15 {
        let mut took = vec![Duration::ZERO; attempts.len()];
        for offset in 0..attempts.len() {
            let kind = (round + offset) % attempts.len();
            took[kind] = time(&attempts[kind].1);
        }
        for (kind, took_kind) in took.iter().enumerate() {
            samples[kind].push(*took_kind);
            ratios[kind].push(took_kind.as_secs_f64() / took[unknown].as_secs_f64());
        }
    }
    let no_credentials = {
        let started = Instant::now();
        assert_eq!(exporter.request("GET", "/-/healthy").status, 401);
        started.elapsed().as_secs_f64() * 1000.0
    };
    let mut report = Vec::new();
    for (kind, (name, _)) in attempts.iter().enumerate() {
        let median = median_ms(&mut samples[kind]);
        ratios[kind].sort_by(f64::total_cmp);
        let ratio = ratios[kind][ratios[kind].len() / 2];
        println!("{name}: median {median:.1} ms, median ratio to an unknown user {ratio:.3}");
        report.push((*name, median, ratio));
    }
    println!("no credentials (no bcrypt): {no_credentials:.1} ms");
    for (name, median, ratio) in &report {
        assert!(
            (ratio - 1.0).abs() < 0.2,
            "{name} takes {ratio:.2} times an unknown user's check (median {median:.1} ms): {report:?}"
        );
    }
    assert!(exporter.stop().success());
}
