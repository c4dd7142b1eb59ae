//! What an operator meets first: the `perch` command's refusals, the demo, and a server
//! that cannot start. The real binary, as an operator would run it.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::support::{temp_dir, tls_connect};

fn perch(args: &[&str], data: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perch"))
        .args(args)
        .arg("--data")
        .arg(data)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Exit status 1 and one `perch: ...` line on standard error containing `expected`.
fn refused(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("perch: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn admin_refuses_a_data_directory_without_a_store_and_creates_nothing() {
    let data = temp_dir("no-store");
    let out = perch(&["admin", "user", "list"], &data, &[]);
    refused(&out, &format!("no store in {}", data.display()));
    assert!(!data.exists(), "admin created {}", data.display());

    let out = perch(&["init"], &data, &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("store in {} created\n", data.display())
    );
    assert!(
        perch(&["admin", "user", "list"], &data, &[])
            .status
            .success()
    );
    let again = perch(&["init"], &data, &[]);
    assert!(String::from_utf8_lossy(&again.stdout).ends_with("is up to date\n"));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn usage_errors_are_one_line_with_status_1() {
    let data = temp_dir("usage");
    for args in [
        &["admin", "room", "frobnicate"][..],
        &["admin", "user", "add"],
        &["serve", "--trust-loopback"],
        &["admin", "--bogus"],
    ] {
        refused(&perch(args, &data, &[]), "--help");
    }
    let help = perch(&["admin", "--help"], &data, &[]);
    assert!(help.status.success());
    assert!(!data.exists());
}

#[test]
fn environment_variables_are_named_in_errors_and_unknown_ones_ignored() {
    let data = temp_dir("env");
    let out = perch(&["init"], &data, &[("PERCH_FOO", "1")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "perch: warning: ignoring environment variable PERCH_FOO: it names no setting\n"
    );
    let out = perch(
        &["admin", "user", "list"],
        &data,
        &[("PERCH_LIMITS__MAX_HEADERS", "many")],
    );
    refused(
        &out,
        "environment variable PERCH_LIMITS__MAX_HEADERS: invalid type",
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_server_that_cannot_start_touches_nothing_and_names_the_key() {
    let data = temp_dir("cannot-start");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = perch(
        &["serve"],
        &data,
        &[("PERCH_LISTEN__TLS", &port), ("RUST_LOG", "warn")],
    );
    refused(&out, &format!("key `listen.tls`: cannot listen on {port}"));
    assert!(!data.exists(), "serve created {}", data.display());

    let out = perch(
        &["serve"],
        &data,
        &[
            ("PERCH_LISTEN__TLS", "127.0.0.1:0"),
            ("PERCH_TLS__CERT", "/nonexistent/cert.pem"),
            ("PERCH_TLS__KEY", "/nonexistent/key.pem"),
            ("RUST_LOG", "warn"),
        ],
    );
    refused(
        &out,
        "keys `tls.cert` and `tls.key`: cannot read /nonexistent/cert.pem",
    );
    assert!(!data.exists(), "serve created {}", data.display());
}

/// A demo server on ports of its own, and its banner.
struct Demo {
    child: Child,
    banner: String,
    tls: SocketAddr,
}

impl Demo {
    fn start(data: &Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_perch"))
            .args(["serve", "--demo", "--data"])
            .arg(data)
            .envs([
                ("PERCH_DOMAIN", "demo.test"),
                ("PERCH_LISTEN__TLS", "127.0.0.1:0"),
                ("PERCH_LISTEN__TCP", "127.0.0.1:0"),
                ("PERCH_HTTP__LISTEN", "127.0.0.1:0"),
                ("PERCH_XMPP__LISTEN", "127.0.0.1:0"),
                ("PERCH_XMPP__LISTEN_TLS", "127.0.0.1:0"),
                ("RUST_LOG", "warn"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Stop with Ctrl-C") {
                break;
            }
        }
        let tls = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("SIP over TLS"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no TLS address in\n{banner}"));
        Demo { child, banner, tls }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Demo {
    /// A failed test leaves no server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A child process killed when dropped, so that a failed test leaves no server behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_honours_the_environment_and_keeps_what_an_administrator_changed() {
    let data = temp_dir("demo");
    let demo = Demo::start(&data);
    assert!(
        demo.banner.contains("alice@demo.test  password alice-demo"),
        "{}",
        demo.banner
    );
    assert!(!demo.banner.contains(":5061"), "{}", demo.banner);
    assert!(
        demo.banner.contains("HTTPS         127.0.0.1:"),
        "{}",
        demo.banner
    );
    // The certificate names the demo domain, and localhost, to a client that checks.
    let cert = data.join(perch::net::tls::DEV_CERT_FILE);
    for name in ["demo.test", "localhost"] {
        tls_connect(demo.tls, &cert, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(tls_connect(demo.tls, &cert, "other.test").await.is_err());
    demo.stop();

    let admin = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_perch"))
            .arg("admin")
            .arg("--data")
            .arg(&data)
            .args(args)
            .env("PERCH_DOMAIN", "demo.test")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    admin(&["user", "remove", "bob@demo.test"], "");
    admin(
        &["user", "set", "carol@demo.test", "--password-stdin"],
        "another\n",
    );

    let demo = Demo::start(&data);
    assert!(!demo.banner.contains("bob@"), "{}", demo.banner);
    assert!(
        demo.banner
            .contains("carol@demo.test  password changed by an administrator"),
        "{}",
        demo.banner
    );
    demo.stop();
    let users = perch(
        &["admin", "user", "list"],
        &data,
        &[("PERCH_DOMAIN", "demo.test")],
    );
    assert!(!String::from_utf8_lossy(&users.stdout).contains("bob@"));
    let _ = std::fs::remove_dir_all(&data);
}

/// The shell blocks of the README's sections "Users" and "Administration", in order.
fn readme_admin_examples() -> String {
    let readme = include_str!("../../README.md");
    let mut script = String::new();
    let mut section = "";
    let mut in_block = false;
    for line in readme.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title;
        } else if line == "```sh" && matches!(section, "Users" | "Administration") {
            in_block = true;
        } else if line == "```" {
            in_block = false;
        } else if in_block {
            script.push_str(line);
            script.push('\n');
        }
    }
    script
}

#[test]
fn the_readme_admin_examples_run_top_to_bottom_on_a_fresh_store() {
    let script = readme_admin_examples();
    assert!(script.contains("perch admin room create"), "{script}");
    let work = temp_dir("readme");
    std::fs::create_dir_all(&work).unwrap();
    let data = work.join("data");
    // The script's own `export PERCH_DATA_DIR=...` is pointed at the test's directory.
    let script = script.replace(
        "export PERCH_DATA_DIR=/var/lib/perch",
        &format!("export PERCH_DATA_DIR={}", data.display()),
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_perch")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-x", "-c", &script])
        .current_dir(&work)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "removed category Other",
        "removed group ops",
        "would update room Daily",
        "removed sip:bob@example.test",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from\n{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn manual_pages_and_completions_are_generated_from_the_commands() {
    let out = temp_dir("man");
    std::fs::create_dir_all(&out).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_perch"))
            .args(args)
            .output()
            .unwrap()
    };
    let man = run(&["generate", "man", "--out", out.to_str().unwrap()]);
    assert!(man.status.success(), "{man:?}");
    let page = std::fs::read_to_string(out.join("perch-admin-backup.1")).unwrap();
    assert!(page.contains("consistently"), "{page}");
    assert!(out.join("perch.1").exists() && out.join("perch-serve.1").exists());
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["generate", "completions", shell]);
        assert!(script.status.success());
        assert!(
            String::from_utf8_lossy(&script.stdout).contains("backup"),
            "{shell}"
        );
    }
    refused(
        &run(&["generate", "man", "--out", "/nonexistent/man"]),
        "cannot write manual pages to /nonexistent/man",
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// A self-signed certificate for localhost, written to `cert` and `key`; returns its DER.
fn write_certificate(cert: &Path, key: &Path) -> Vec<u8> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(cert, certified.cert.pem()).unwrap();
    std::fs::write(key, certified.signing_key.serialize_pem()).unwrap();
    certified.cert.der().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    use crate::support::{Client, status};
    let work = temp_dir("sighup");
    std::fs::create_dir_all(&work).unwrap();
    let (cert, key) = (work.join("cert.pem"), work.join("key.pem"));
    write_certificate(&cert, &key);
    let first = work.join("first.pem");
    std::fs::copy(&cert, &first).unwrap();
    let config = work.join("perch.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"example.test\"\ntrusted_networks = [\"127.0.0.0/8\"]\n[listen]\ntls = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let data = work.join("data");
    perch(&["init"], &data, &[]);
    let added = perch(
        &[
            "admin",
            "user",
            "add",
            "alice@example.test",
            "--no-password",
        ],
        &data,
        &[],
    );
    assert!(added.status.success(), "{added:?}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_perch"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(work.join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut child = Reaped(child);
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    let line = wait_for("listening for SIP over TLS");
    let addr: SocketAddr = line
        .rsplit("addr=")
        .next()
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));

    let tls = tls_connect(addr, &first, "localhost").await.unwrap();
    let mut old = Client::over(Box::new(tls), "tls");
    assert_eq!(status(&old.register_plain().await), 200);

    // A new certificate in place of the old, then SIGHUP.
    write_certificate(&cert, &key);
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(hup(child.0.id()).success());
    wait_for("TLS certificate reloaded");
    tls_connect(addr, &cert, "localhost").await.unwrap();
    assert!(tls_connect(addr, &first, "localhost").await.is_err());
    let second = work.join("second.pem");
    std::fs::copy(&cert, &second).unwrap();
    // The connection made before the reload goes on.
    assert_eq!(status(&old.register_plain().await), 200);

    // A certificate that does not load leaves the one in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(hup(child.0.id()).success());
    wait_for("certificate not reloaded");
    tls_connect(addr, &second, "localhost").await.unwrap();

    let _ = Command::new("kill").arg(child.0.id().to_string()).status();
    assert!(child.0.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&work);
}
