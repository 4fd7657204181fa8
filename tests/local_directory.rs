//! The local directory end to end: a users file on disk, managed and read
//! the way `holdfast user ...` and the login endpoint will.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use holdfast::auth::local::{NewUser, ensure_bootstrap_admin};
use holdfast::auth::{
    AuthError, Bootstrap, Capability, Directory, GroupRuleConfig, LocalDirectory,
    LocalDirectoryError, Role, RoleMapping, UsersFile, Via,
};
use secrecy::{ExposeSecret, SecretString};

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    directory: LocalDirectory,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.toml");
    Fixture {
        directory: LocalDirectory::new(&path),
        path,
        _dir: dir,
    }
}

fn allen() -> NewUser {
    NewUser {
        username: "Allen-P".to_owned(),
        display_name: Some("Philip Allen".to_owned()),
        email: Some("philip.allen@enron.com".to_owned()),
        groups: vec!["compliance".to_owned()],
    }
}

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn add_user_then_authenticate_good_and_bad() {
    let fixture = fixture();
    fixture
        .directory
        .modify(|file| file.add_user(allen(), &secret("Gas-Desk-Houston-2001")))
        .expect("user added");
    assert_eq!(mode_of(&fixture.path), 0o600);
    let text = std::fs::read_to_string(&fixture.path).expect("read");
    assert!(text.contains("$argon2id$"), "{text}");
    assert!(!text.contains("Gas-Desk-Houston-2001"));

    let identity = fixture
        .directory
        .authenticate("ALLEN-P", &secret("Gas-Desk-Houston-2001"))
        .await
        .expect("right password");
    assert_eq!(identity.username, "allen-p");
    assert_eq!(identity.display_name.as_deref(), Some("Philip Allen"));
    assert_eq!(identity.email.as_deref(), Some("philip.allen@enron.com"));
    assert_eq!(identity.groups, vec!["compliance".to_owned()]);

    for (username, password) in [
        ("allen-p", "gas-desk-houston-2001"),
        ("allen-p", ""),
        ("arnold-j", "Gas-Desk-Houston-2001"),
        ("*", "Gas-Desk-Houston-2001"),
    ] {
        let error = fixture
            .directory
            .authenticate(username, &secret(password))
            .await
            .expect_err("refused");
        assert!(
            matches!(error, AuthError::InvalidCredentials),
            "{username}: {error}"
        );
    }

    let error = fixture
        .directory
        .modify(|file| file.add_user(allen(), &secret("another-long-password")))
        .expect_err("duplicate");
    assert!(
        matches!(error, LocalDirectoryError::UserExists { .. }),
        "{error}"
    );
    let error = fixture
        .directory
        .modify(|file| {
            file.add_user(
                NewUser {
                    username: "arnold-j".to_owned(),
                    ..NewUser::default()
                },
                &secret("short"),
            )
        })
        .expect_err("weak password");
    assert!(
        matches!(error, LocalDirectoryError::WeakPassword { .. }),
        "{error}"
    );
    assert!(!error.to_string().contains("short"));
}

#[tokio::test]
async fn disable_enable_passwd_and_remove() {
    let fixture = fixture();
    let directory = &fixture.directory;
    directory
        .modify(|file| file.add_user(allen(), &secret("Gas-Desk-Houston-2001")))
        .expect("added");

    directory
        .modify(|file| file.disable("allen-p"))
        .expect("disabled");
    let error = directory
        .authenticate("allen-p", &secret("Gas-Desk-Houston-2001"))
        .await
        .expect_err("disabled");
    assert!(matches!(error, AuthError::Disabled), "{error}");
    // A wrong password does not learn that the account is disabled.
    let error = directory
        .authenticate("allen-p", &secret("wrong-password-here"))
        .await
        .expect_err("wrong");
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
    directory
        .modify(|file| file.enable("allen-p"))
        .expect("enabled");
    directory
        .authenticate("allen-p", &secret("Gas-Desk-Houston-2001"))
        .await
        .expect("enabled again");

    directory
        .modify(|file| file.set_password("allen-p", &secret("New-Trading-Password-2002")))
        .expect("passwd");
    let error = directory
        .authenticate("allen-p", &secret("Gas-Desk-Houston-2001"))
        .await
        .expect_err("old password");
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
    directory
        .authenticate("allen-p", &secret("New-Trading-Password-2002"))
        .await
        .expect("new password");

    directory
        .modify(|file| file.add_to_group("allen-p", "legal"))
        .expect("group add");
    directory
        .modify(|file| file.add_to_group("allen-p", "LEGAL"))
        .expect("already a member is fine");
    let file = directory.load().expect("load");
    assert_eq!(
        file.groups().get("legal"),
        Some(&vec!["allen-p".to_owned()])
    );
    assert_eq!(
        file.user("allen-p").expect("exists").groups,
        vec!["compliance".to_owned(), "legal".to_owned()]
    );
    let removed = directory
        .modify(|file| file.remove_from_group("allen-p", "compliance"))
        .expect("group remove");
    assert!(removed);
    let identity = directory
        .authenticate("allen-p", &secret("New-Trading-Password-2002"))
        .await
        .expect("login");
    assert_eq!(identity.groups, vec!["legal".to_owned()]);

    let removed = directory
        .modify(|file| file.remove_user("allen-p"))
        .expect("removed");
    assert_eq!(removed.username, "allen-p");
    let error = directory
        .authenticate("allen-p", &secret("New-Trading-Password-2002"))
        .await
        .expect_err("removed");
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
    let error = directory
        .modify(|file| file.disable("allen-p"))
        .expect_err("no such user");
    assert!(
        matches!(error, LocalDirectoryError::NoSuchUser { .. }),
        "{error}"
    );
    assert_eq!(mode_of(&fixture.path), 0o600);
}

#[tokio::test]
async fn bootstrap_admin_with_a_generated_password() {
    let fixture = fixture();
    let Bootstrap::CreatedWithGeneratedPassword(password) =
        ensure_bootstrap_admin(&fixture.path, None).expect("bootstrap")
    else {
        panic!("an empty directory gets an admin with a generated password");
    };
    assert!(password.expose_secret().len() >= 20);
    let text = std::fs::read_to_string(&fixture.path).expect("read");
    assert!(!text.contains(password.expose_secret()));
    assert_eq!(mode_of(&fixture.path), 0o600);
    let file = UsersFile::load(&fixture.path).expect("load");
    let admin = file.user("admin").expect("admin exists");
    assert!(admin.must_change_password);
    assert_eq!(admin.groups, vec!["admins".to_owned()]);

    let mapping = RoleMapping::from_config(&[GroupRuleConfig {
        group: "admins".to_owned(),
        role: Role::Admin,
        teams: Vec::new(),
        channels: Vec::new(),
        all: false,
    }])
    .expect("mapping");
    let principal = Directory::Local(fixture.directory.clone())
        .login("admin", &password, &mapping)
        .await
        .expect("the one-time password works");
    assert_eq!(principal.via, Via::Local);
    assert!(
        principal.must_change_password,
        "a one-time password must be changed"
    );
    assert!(principal.can(Capability::ManageUsers));
    assert!(!principal.can(Capability::SearchMessages));

    // Second start: nothing changes, nothing is printed.
    assert!(matches!(
        ensure_bootstrap_admin(&fixture.path, None).expect("second start"),
        Bootstrap::Existing
    ));
    assert!(matches!(
        ensure_bootstrap_admin(&fixture.path, Some(secret("Another-Admin-Password")))
            .expect("third"),
        Bootstrap::Existing
    ));
    fixture
        .directory
        .authenticate("admin", &password)
        .await
        .expect("password unchanged");
    // Choosing a password ends the one-time state.
    fixture
        .directory
        .modify(|file| file.set_password("admin", &secret("Chosen-Admin-Password-1")))
        .expect("passwd");
    let identity = fixture
        .directory
        .authenticate("admin", &secret("Chosen-Admin-Password-1"))
        .await
        .expect("new password");
    assert!(!identity.must_change_password);
}

#[tokio::test]
async fn bootstrap_admin_with_the_given_password() {
    let fixture = fixture();
    let outcome = ensure_bootstrap_admin(&fixture.path, Some(secret("From-The-Environment-1")))
        .expect("bootstrap");
    assert!(matches!(outcome, Bootstrap::CreatedWithGivenPassword));
    let identity = fixture
        .directory
        .authenticate("admin", &secret("From-The-Environment-1"))
        .await
        .expect("login");
    assert_eq!(identity.groups, vec!["admins".to_owned()]);
    assert!(!identity.must_change_password);
    let file = UsersFile::load(&fixture.path).expect("load");
    assert!(!file.user("admin").expect("admin").must_change_password);

    let other = fixture_path_with_empty_users();
    let error = ensure_bootstrap_admin(&other.path, Some(secret("short"))).expect_err("weak");
    assert!(
        matches!(error, LocalDirectoryError::WeakPassword { .. }),
        "{error}"
    );
}

fn fixture_path_with_empty_users() -> Fixture {
    let fixture = fixture();
    std::fs::write(&fixture.path, "version = 1\nusers = []\n").expect("write");
    fixture
}

#[tokio::test]
async fn bad_files_name_the_line_and_field() {
    let fixture = fixture();
    let hash = {
        let mut file = UsersFile::default();
        file.add_user(allen(), &secret("Gas-Desk-Houston-2001"))
            .expect("add");
        file.users[0].password_hash.clone()
    };
    let cases = [
        (
            "version = 1\n\n[[users]]\nusername = \"allen-p\"\npassword_hash = \"x\"\ngroups = [\"a\"\n",
            "line 6",
        ),
        (
            "version = 1\n[[users]]\nusername = \"allen-p\"\npasword_hash = \"x\"\n",
            "line 4",
        ),
        (
            "version = 1\n[[users]]\nusername = \"allen-p\"\npassword_hash = \"$2b$12$abc\"\n",
            "field password_hash",
        ),
        ("version = 2\n", "version 2"),
    ];
    for (text, expected) in cases {
        std::fs::write(&fixture.path, text).expect("write");
        let error = fixture.directory.load().expect_err(text);
        let message = error.to_string();
        assert!(
            message.contains(expected),
            "{message} should say {expected}"
        );
        assert!(message.contains("users.toml"), "{message}");
        let error = fixture
            .directory
            .authenticate("allen-p", &secret("Gas-Desk-Houston-2001"))
            .await
            .expect_err("a broken file logs nobody in");
        assert!(matches!(error, AuthError::LocalDirectory(_)), "{error}");
    }
    let duplicate = format!(
        "version = 1\n[[users]]\nusername = \"allen-p\"\npassword_hash = \"{hash}\"\n\n\
         [[users]]\nusername = \"arnold-j\"\npassword_hash = \"{hash}\"\n\n\
         [[users]]\nusername = \"Arnold-J\"\npassword_hash = \"{hash}\"\n"
    );
    std::fs::write(&fixture.path, duplicate).expect("write");
    let message = fixture.directory.load().expect_err("invalid").to_string();
    assert!(
        message.contains("line 11") && message.contains("Arnold-J") && message.contains("username"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_file_is_an_empty_directory_and_saves_replace_atomically() {
    let fixture = fixture();
    let error = fixture
        .directory
        .authenticate("admin", &secret("whatever-password"))
        .await
        .expect_err("nobody");
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
    // A leftover temporary file from a crash with a loose mode is replaced.
    let temporary = fixture
        .path
        .with_file_name(format!(".users.toml.tmp.{}", std::process::id()));
    std::fs::write(&temporary, "junk").expect("write");
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    fixture
        .directory
        .modify(|file| file.add_user(allen(), &secret("Gas-Desk-Houston-2001")))
        .expect("added");
    assert!(!temporary.exists());
    assert_eq!(mode_of(&fixture.path), 0o600);
    // A failed change writes nothing.
    let before = std::fs::read(&fixture.path).expect("read");
    let _ = fixture
        .directory
        .modify(|file| {
            file.disable("allen-p")?;
            file.remove_user("nobody")
        })
        .expect_err("fails");
    assert_eq!(std::fs::read(&fixture.path).expect("read"), before);
}

#[derive(Debug)]
struct ManualClock(std::sync::Mutex<std::time::Instant>);

impl holdfast::auth::Clock for ManualClock {
    fn now(&self) -> std::time::Instant {
        *self.0.lock().expect("clock")
    }
}

#[tokio::test]
async fn authenticator_locks_out_after_failures_without_checking_the_password() {
    use holdfast::auth::{Authenticator, LimiterConfig};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let fixture = fixture();
    fixture
        .directory
        .modify(|file| file.add_user(allen(), &secret("Gas-Desk-Houston-2001")))
        .expect("added");
    let clock = Arc::new(ManualClock(std::sync::Mutex::new(Instant::now())));
    let mapping = RoleMapping::from_config(&[GroupRuleConfig {
        group: "compliance".to_owned(),
        role: Role::ComplianceOfficer,
        teams: vec!["gas-trading".to_owned()],
        channels: Vec::new(),
        all: false,
    }])
    .expect("mapping");
    let authenticator = Authenticator::with_clock(
        Directory::Local(fixture.directory.clone()),
        mapping,
        LimiterConfig {
            max_failures_per_user: 3,
            max_failures_per_ip: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
            max_lockout: Duration::from_secs(600),
            max_entries: 100,
        },
        clock.clone(),
    );
    let address = Some("198.51.100.4".parse().expect("address"));
    for _ in 0..3 {
        let error = authenticator
            .login("allen-p", &secret("wrong-password-guess"), address)
            .await
            .expect_err("wrong");
        assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
    }
    // Locked: even the right password is not checked.
    let error = authenticator
        .login("allen-p", &secret("Gas-Desk-Houston-2001"), address)
        .await
        .expect_err("locked");
    let AuthError::RateLimited { retry_after } = error else {
        panic!("expected a rate limit, got {error}");
    };
    assert_eq!(retry_after.0, Duration::from_secs(120));
    *clock.0.lock().expect("clock") += Duration::from_secs(120);
    let principal = authenticator
        .login("allen-p", &secret("Gas-Desk-Houston-2001"), address)
        .await
        .expect("unlocked");
    assert!(
        principal
            .scope_for(Capability::SearchMessages)
            .allows("gas-trading", "desk")
    );
    // Success cleared the user's count: two more failures do not lock.
    for _ in 0..2 {
        let _ = authenticator
            .login("allen-p", &secret("wrong-password-guess"), address)
            .await;
    }
    authenticator
        .login("allen-p", &secret("Gas-Desk-Houston-2001"), address)
        .await
        .expect("not locked");
}
