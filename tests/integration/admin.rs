//! `perch admin` for the chat model: the real binary against a fresh data directory.

use std::path::PathBuf;
use std::process::{Command, Output};

use perch::core::ports::{HistoryQuery, InvitationStore, ModelStore, Store, read_blocking, wait};
use perch::store::SqliteStore;

use crate::support::{post_message, read_history, temp_dir};

const DOMAIN: &str = "chat.test";

/// A data directory with users alice, bob and carol at `chat.test` and out@elsewhere.test.
struct Admin {
    data: PathBuf,
}

impl Admin {
    fn new(label: &str) -> Self {
        let admin = Self {
            data: temp_dir(label),
        };
        let init = Command::new(env!("CARGO_BIN_EXE_perch"))
            .arg("init")
            .arg("--data")
            .arg(&admin.data)
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        for user in ["alice", "bob", "carol"] {
            admin.ok(&format!("user add {user}@{DOMAIN} --no-password"));
        }
        admin.ok("user add out@elsewhere.test --no-password");
        admin
    }

    /// Runs `perch admin --data DIR` with `line` split at whitespace.
    fn run(&self, line: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_perch"))
            .arg("admin")
            .arg("--data")
            .arg(&self.data)
            .args(line.split_whitespace())
            .env("PERCH_DOMAIN", DOMAIN)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, line: &str) -> String {
        let out = self.run(line);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{line}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with exit code 1 and one `perch: ...` line containing
    /// `expected`.
    fn fails(&self, line: &str, expected: &str) {
        let out = self.run(line);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{line}: {stderr}");
        assert!(stderr.starts_with("perch: "), "{line}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{line}: {stderr}");
        assert!(stderr.contains(expected), "{line}: {stderr}");
    }

    /// Whether a command's output has exactly this line.
    fn prints(&self, line: &str, expected: &str) -> bool {
        self.ok(line).lines().any(|l| l == expected)
    }

    /// The first field of each line a list command prints.
    fn names(&self, line: &str) -> Vec<String> {
        self.ok(line)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data).unwrap()
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[test]
fn admin_room_lifecycle() {
    let a = Admin::new("admin-rooms");
    a.ok("category create Eng --description Engineering");
    a.ok("category set Eng --add-allowed domain:chat.test");
    a.ok("category create Other --no-invitations");
    a.ok("category set Other --add-allowed domain:chat.test");
    let created = a.ok("room create Lobby --category Eng --privacy closed");
    assert!(
        created.starts_with("created room Lobby ma-chan://chat.test/"),
        "{created}"
    );
    a.ok("room create Coffee --category Other --privacy open --description Beanery");

    let added = a.ok("room set Lobby --add-members alice@chat.test sip:bob@chat.test");
    assert!(added.contains("invited 2 user(s)"), "{added}");
    let store = a.store();
    let model = store.load_model().unwrap();
    let lobby = model.rooms.into_iter().find(|r| r.name == "Lobby").unwrap();
    assert_eq!(
        read_blocking(store.invitations("bob@chat.test", 0))
            .unwrap()
            .len(),
        1
    );
    drop(store);

    a.fails(
        "room set Lobby --add-presenters alice@chat.test",
        "perch: a normal room has no presenters; make it an auditorium first",
    );
    let outside = "sip:out@elsewhere.test is outside the scope of category Eng";
    a.fails("room set Lobby --add-members out@elsewhere.test", outside);
    a.fails(
        "room set Lobby --add-members nobody",
        "\"nobody\" is not a principal",
    );
    let not_member = "presenter sip:carol@chat.test is not a member";
    a.fails(
        "room set Lobby --type auditorium --add-presenters carol@chat.test",
        not_member,
    );
    a.ok("room set Lobby --type auditorium --add-presenters alice@chat.test");

    let filters: &[(&str, &[&str])] = &[
        ("", &["Coffee", "Lobby"]),
        ("--privacy closed", &["Lobby"]),
        ("--type normal", &["Coffee"]),
        ("--category other", &["Coffee"]),
        ("--member bob@chat.test", &["Lobby"]),
        ("--member domain:chat.test", &[]),
        ("--invitations inherit --filter OBB", &["Lobby"]),
        ("--filter bean", &[]),
        ("--filter bean --search-description", &["Coffee"]),
        ("--result-size 1", &["Coffee"]),
    ];
    for (filter, expected) in filters {
        assert_eq!(
            a.names(&format!("room list {filter}")),
            *expected,
            "{filter}"
        );
    }
    a.fails("room list --category Nope", "category Nope does not exist");

    let uri = format!("uri: ma-chan://{DOMAIN}/{}", lobby.uid);
    let shown = a.ok("room show lobby");
    for line in [&uri, "type: auditorium", "privacy: closed", "category: Eng"] {
        assert!(
            shown.lines().any(|l| l == line),
            "{line} missing from\n{shown}"
        );
    }
    assert!(
        shown.contains("presenters: sip:alice@chat.test\n"),
        "{shown}"
    );

    a.ok("room disable Lobby");
    assert_eq!(a.names("room list --disabled"), ["Lobby"]);
    assert_eq!(a.names("room list --enabled"), ["Coffee"]);
    a.ok("room enable Lobby");
    assert!(a.prints("room show Lobby", "state: enabled"));

    // History at 2020-01-01 and 2030-01-01; clearing until 2025 deletes only the first.
    let store = a.store();
    for (seconds, body) in [(1_577_836_800_i64, "old"), (1_893_456_000, "new")] {
        let ts = seconds * 10_000_000;
        wait(post_message(&store, lobby.id, "alice@chat.test", ts, body)).unwrap();
    }
    store.close();
    // Not on a terminal and without --yes: refused, nothing deleted.
    a.fails(
        "room clear Lobby --until 2025-01-01T00:00:00Z",
        "not confirmed: delete messages up to the given time of room Lobby needs --yes",
    );
    let kept = read_history(&a.store(), lobby.id, HistoryQuery::Last(10));
    assert_eq!(kept.len(), 2);
    let cleared = a.ok("room clear Lobby --until 2025-01-01T00:00:00Z --yes");
    assert!(cleared.contains("deleted 1 message(s)"), "{cleared}");
    let left = read_history(&a.store(), lobby.id, HistoryQuery::Last(10));
    assert_eq!(
        left.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["new"]
    );
    a.fails(
        "room clear Lobby --until yesterday --yes",
        "\"yesterday\" is not an RFC 3339 time",
    );
    assert!(
        a.ok("room clear Lobby --yes")
            .contains("deleted 1 message(s)")
    );

    a.fails("category remove Eng", "category Eng still has 1 room(s)");
    a.fails("room remove Lobby", "not confirmed: remove room Lobby");
    a.ok("room remove Lobby --yes");
    a.fails("room remove Lobby", "room Lobby does not exist");
    assert!(a.ok("category remove Eng").contains("removed category Eng"));
    a.fails("category remove Eng", "category Eng does not exist");
    assert_eq!(a.names("category list"), ["Other"]);
}

#[test]
fn admin_room_names_and_categories_are_checked() {
    let a = Admin::new("admin-names");
    a.ok("category create Eng");
    a.ok("room create Lobby --category Eng");
    for (line, expected) in [
        ("category create eng", "category eng already exists"),
        (
            "room create LOBBY --category Eng",
            "room LOBBY already exists",
        ),
        (
            "room create Den --category Nope",
            "category Nope does not exist",
        ),
        ("room create Eng --category Eng", "the name of a category"),
        ("room set Den --privacy open", "room Den does not exist"),
        (
            "room create Den --category Eng --addin Nope",
            "add-in Nope does not exist",
        ),
    ] {
        a.fails(line, expected);
    }
    assert!(a.prints("category show Eng", "rooms: Lobby"));
}

#[test]
fn admin_group_cycles_are_refused() {
    let a = Admin::new("admin-groups");
    a.ok("group add ops --description Operations");
    a.ok("group add all");
    a.ok("group member add all group:ops alice@chat.test");
    a.ok("group member add ops bob@chat.test");
    a.ok("category create Eng");
    a.ok("category set Eng --add-denied group:OPS");
    a.ok("policy set group:ops --disable");
    for (line, expected) in [
        ("group add OPS", "group ops already exists"),
        ("group member add ops group:all", "would make a cycle"),
        ("group member add ops group:OPS", "would make a cycle"),
        (
            "group member add ops ghost@chat.test",
            "ghost@chat.test does not exist",
        ),
        (
            "group member add nope bob@chat.test",
            "group nope does not exist",
        ),
        (
            "group member remove ops carol@chat.test",
            "not a member of group ops",
        ),
        (
            "group remove ops",
            "named by group all, category Eng, a policy",
        ),
    ] {
        a.fails(line, expected);
    }
    assert!(a.prints("group list", "ops\tOperations\tsip:bob@chat.test"));
    a.ok("group member remove all group:ops");
    a.ok("category set Eng --remove-denied group:ops");
    a.ok("policy remove group:ops");
    a.ok("group remove ops");
    a.fails("group remove ops", "group ops does not exist");
    assert_eq!(a.ok("group list"), "all\t\tsip:alice@chat.test\n");
}

#[test]
fn admin_policy_set_and_list() {
    let a = Admin::new("admin-policy");
    a.ok("group add Ops");
    assert_eq!(a.ok("policy list"), "global\tenabled\t(default)\n");
    a.ok("policy set global --disable");
    a.ok("policy set group:ops --enable");
    a.ok("policy set bob@chat.test --disable");
    a.fails(
        "policy set group:nope --enable",
        "group:nope does not exist",
    );
    a.fails(
        "policy set domain:chat.test --enable",
        "policy scope \"domain:chat.test\"",
    );
    let expected = "global\tdisabled\ngroup:ops\tenabled\nsip:bob@chat.test\tdisabled\n";
    assert_eq!(a.ok("policy list"), expected);
    a.ok("policy remove group:OPS");
    a.fails(
        "policy remove group:ops",
        "a policy for group:ops does not exist",
    );
    a.ok("policy remove global");
    assert!(
        a.ok("policy list")
            .starts_with("global\tenabled\t(default)\n")
    );
}

#[test]
fn admin_config_ranges() {
    let a = Admin::new("admin-config");
    assert!(a.prints("config show", "DefaultChatHistory: 30"));
    for (line, expected) in [
        (
            "config set DefaultChatHistory 501",
            "DefaultChatHistory must be between 1 and 500",
        ),
        ("config set DefaultChatHistory 0", "between 1 and 500"),
        (
            "config set DefaultChatHistory lots",
            "must be a whole number",
        ),
        ("config set Colour 1", "unknown setting \"Colour\""),
    ] {
        a.fails(line, expected);
    }
    a.ok("config set defaultchathistory 500");
    assert!(a.prints("config show", "DefaultChatHistory: 500"));
}

#[test]
fn admin_addins() {
    let a = Admin::new("admin-addins");
    a.fails(
        "addin create Stocks ftp://stocks.test/",
        "must be an http or https URL",
    );
    a.ok("addin create Stocks https://stocks.test/app");
    a.fails(
        "addin create stocks https://x.test/",
        "add-in Stocks already exists",
    );
    a.fails(
        "addin set Stocks --url javascript:alert(1)",
        "http or https",
    );
    a.ok("addin set stocks --url https://stocks.test/v2");
    assert_eq!(a.ok("addin list"), "Stocks\thttps://stocks.test/v2\n");
    a.ok("category create Eng");
    a.ok("room create Ticker --category Eng --addin stocks");
    assert!(a.prints("room show Ticker", "addin: Stocks"));
    assert_eq!(a.names("room list --addin STOCKS"), ["Ticker"]);
    let removed = a.ok("addin remove Stocks");
    assert!(
        removed.contains("room Ticker has no add-in now"),
        "{removed}"
    );
    a.fails("addin remove Stocks", "add-in Stocks does not exist");
    assert!(a.prints("room show Ticker", "addin: "));
}

#[test]
fn admin_room_moves_say_whom_they_remove_and_a_dry_run_changes_nothing() {
    let a = Admin::new("admin-move");
    a.ok("category create Eng");
    a.ok("category set Eng --add-allowed domain:chat.test");
    a.ok("category create Small");
    a.ok("category set Small --add-allowed alice@chat.test");
    a.ok("room create Team --category Eng --add-members alice@chat.test bob@chat.test");

    let preview = a.ok("room set Team --category Small --dry-run");
    assert!(preview.starts_with("would update room Team "), "{preview}");
    assert!(
        preview.contains("would remove (outside the new category's scope): sip:bob@chat.test"),
        "{preview}"
    );
    assert!(a.prints("room show Team", "category: Eng"));
    assert!(a.prints(
        "room show Team",
        "members: sip:alice@chat.test, sip:bob@chat.test"
    ));

    let moved = a.ok("room set Team --category Small");
    assert!(
        moved.contains("removed (outside the new category's scope): sip:bob@chat.test"),
        "{moved}"
    );
    assert!(a.prints("room show Team", "members: sip:alice@chat.test"));

    let preview = a.ok("category set Small --remove-allowed alice@chat.test --dry-run");
    assert!(
        preview.contains(
            "would remove from room Team (outside the category's scope now): sip:alice@chat.test"
        ),
        "{preview}"
    );
    assert!(a.prints("room show Team", "members: sip:alice@chat.test"));
}

#[test]
fn admin_user_remove_takes_the_user_off_every_list() {
    let a = Admin::new("admin-user-remove");
    a.ok("group add crew");
    a.ok("group member add crew bob@chat.test carol@chat.test");
    a.ok("category create Eng");
    a.ok("category set Eng --add-allowed domain:chat.test --add-creators bob@chat.test");
    a.ok("room create Team --category Eng --add-members alice@chat.test bob@chat.test --add-managers bob@chat.test");

    let out = a.ok("user remove sip:BOB@chat.test");
    assert_eq!(
        out,
        "removed sip:bob@chat.test\nremoved from rooms: Team\nremoved from categories: Eng\nremoved from groups: crew\n"
    );
    let shown = a.ok("room show Team");
    assert!(!shown.contains("bob@"), "{shown}");
    assert!(!a.ok("category show Eng").contains("bob@"));
    assert!(!a.ok("group list").contains("bob@"));

    // A user of another domain is added, with a warning that they cannot sign in here.
    let out = a.run("user add eve@other.test --no-password");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "perch: warning: sip:eve@other.test is not in the server's domain chat.test: it cannot sign in to this server\n"
    );
}
