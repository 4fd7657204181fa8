//! LDAP logins against a real OpenLDAP `slapd` (started per test by
//! `slapd::Slapd`, with the directories of `tests/fixtures/ldap/`).

mod slapd;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use holdfast::auth::{
    AuthError, Authenticator, Capability, Directory, GroupMode, GroupRuleConfig, LdapConfig,
    LdapDirectory, LimiterConfig, LoginLimiter, Role, RoleMapping, Via,
};
use holdfast::search::ChannelRef;
use secrecy::SecretString;
use slapd::{Slapd, SlapdOptions};

const EXAMPLE: &str = "dc=example,dc=com";
const PEOPLE: &str = "ou=people,dc=example,dc=com";
const SERVICE_DN: &str = "cn=holdfast,ou=services,dc=example,dc=com";
const SERVICE_PASSWORD: &str = "svc-bind-Secret-42";
const ALLEN_PASSWORD: &str = "Gas-Desk-Houston-2001";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ldap")
        .join(name)
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn group(cn: &str) -> String {
    format!("cn={cn},ou=groups,{EXAMPLE}")
}

/// The example directory, plain ldap:// (explicitly allowed).
fn example_server() -> Slapd {
    let mut options = SlapdOptions::new(EXAMPLE);
    options.ldif.push(fixture("example.ldif"));
    Slapd::start(&options)
}

/// A configuration for the example directory; the service password comes
/// from a file in the server's scratch directory.
fn example_config(server: &Slapd) -> LdapConfig {
    let password_file = server.dir().join("bind-password");
    std::fs::write(&password_file, format!("{SERVICE_PASSWORD}\n")).expect("write");
    let mut config = LdapConfig::new(server.url(), PEOPLE);
    config.allow_plaintext = true;
    config.bind_dn = Some(SERVICE_DN.to_owned());
    config.bind_password_file = Some(password_file);
    config.disabled_filter = Some("(employeeType=disabled)".to_owned());
    config.connect_timeout_ms = 1_000;
    config.operation_timeout_ms = 1_000;
    config
}

fn directory(config: LdapConfig) -> LdapDirectory {
    LdapDirectory::new(config).expect("valid ldap config")
}

fn mapping() -> RoleMapping {
    let rule =
        |group: String, role: Role, teams: &[&str], channels: &[&str], all: bool| GroupRuleConfig {
            group,
            role,
            teams: teams.iter().map(|team| (*team).to_owned()).collect(),
            channels: channels
                .iter()
                .map(|channel| (*channel).to_owned())
                .collect(),
            all,
        };
    RoleMapping::from_config(&[
        // DNs written in another case and spacing than the server's.
        rule(
            "CN=Compliance, OU=Groups, DC=Example, DC=com".to_owned(),
            Role::ComplianceOfficer,
            &["gas-trading"],
            &[],
            false,
        ),
        rule(
            group("legal-hold"),
            Role::Legal,
            &[],
            &["power-trading/west-desk"],
            false,
        ),
        rule(group("auditors"), Role::Auditor, &[], &[], true),
        rule(group("legal"), Role::Legal, &["legal"], &[], false),
        rule(
            group("general-counsel"),
            Role::ComplianceOfficer,
            &[],
            &[],
            true,
        ),
    ])
    .expect("valid mapping")
}

async fn login_error(directory: &LdapDirectory, username: &str, password: &str) -> AuthError {
    directory
        .authenticate(username, &secret(password))
        .await
        .expect_err("login refused")
}

#[tokio::test]
async fn good_and_bad_passwords_unknown_and_empty() {
    let server = example_server();
    let directory = directory(example_config(&server));

    let identity = directory
        .authenticate("allen-p", &secret(ALLEN_PASSWORD))
        .await
        .expect("right password");
    assert_eq!(identity.username, "allen-p");
    assert_eq!(identity.display_name.as_deref(), Some("Philip Allen"));
    assert_eq!(identity.email.as_deref(), Some("philip.allen@enron.com"));
    assert_eq!(identity.groups, vec![group("compliance")]);

    // The directory's spelling of the username, whatever was typed.
    let identity = directory
        .authenticate("ALLEN-P", &secret(ALLEN_PASSWORD))
        .await
        .expect("uid matches without case");
    assert_eq!(identity.username, "allen-p");

    for (username, password) in [
        ("allen-p", "gas-desk-houston-2001"),
        ("allen-p", "Gas-Desk-Houston-2001 "),
        ("allen-p", ""),
        ("lay-k", ALLEN_PASSWORD),
        ("", ALLEN_PASSWORD),
        // The service account is not a user (the filter wants a uid).
        ("holdfast", SERVICE_PASSWORD),
    ] {
        let error = login_error(&directory, username, password).await;
        assert!(
            matches!(error, AuthError::InvalidCredentials),
            "{username:?}: {error}"
        );
        assert!(!error.to_string().contains(password) || password.is_empty());
    }
}

#[tokio::test]
async fn disabled_user_is_refused_after_the_right_password_only() {
    let server = example_server();
    let directory = directory(example_config(&server));
    let error = login_error(&directory, "hain-m", "In-House-Lawyer-8").await;
    assert!(matches!(error, AuthError::Disabled), "{error}");
    let error = login_error(&directory, "hain-m", "wrong-password").await;
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");

    // Enabling the account in the directory takes effect at the next login.
    server.modify(
        "dn: uid=hain-m,ou=people,dc=example,dc=com\nchangetype: modify\ndelete: employeeType\n",
    );
    let identity = directory
        .authenticate("hain-m", &secret("In-House-Lawyer-8"))
        .await
        .expect("enabled");
    assert_eq!(identity.display_name.as_deref(), Some("Mary C. Hain"));
}

#[tokio::test]
async fn deleted_user_can_no_longer_log_in() {
    let server = example_server();
    let directory = directory(example_config(&server));
    directory
        .authenticate("beck-s", &secret("Ops-Risk-Control-7"))
        .await
        .expect("exists");
    server.delete("uid=beck-s,ou=people,dc=example,dc=com");
    let error = login_error(&directory, "beck-s", "Ops-Risk-Control-7").await;
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
}

#[tokio::test]
async fn member_of_groups_map_to_roles_and_two_groups_unite() {
    let server = example_server();
    let directory = Directory::Ldap(directory(example_config(&server)));
    let mapping = mapping();

    let allen = directory
        .login("allen-p", &secret(ALLEN_PASSWORD), &mapping)
        .await
        .expect("login");
    assert_eq!(allen.via, Via::Ldap);
    assert_eq!(
        allen.roles().into_iter().collect::<Vec<_>>(),
        vec![Role::ComplianceOfficer]
    );
    let scope = allen.scope_for(Capability::SearchMessages);
    assert!(scope.allows("gas-trading", "general"));
    assert!(!scope.allows("power-trading", "west-desk"));
    assert!(allen.can(Capability::ExportMessages));
    assert!(!allen.can(Capability::ManageHolds));
    assert!(!allen.can(Capability::ReadAudit));

    // arnold-j is in compliance and legal-hold: the union of both.
    let arnold = directory
        .login("arnold-j", &secret("Nat-Gas-Futures-99"), &mapping)
        .await
        .expect("login");
    assert_eq!(
        arnold.roles().into_iter().collect::<Vec<_>>(),
        vec![Role::ComplianceOfficer, Role::Legal]
    );
    let search = arnold.scope_for(Capability::SearchMessages);
    assert!(search.allows("gas-trading", "general"));
    assert!(search.allows("power-trading", "west-desk"));
    assert!(!search.allows("power-trading", "east-desk"));
    let holds = arnold.scope_for(Capability::ManageHolds);
    assert!(holds.allows("power-trading", "west-desk"));
    assert!(
        !holds.allows("gas-trading", "general"),
        "holds come from legal-hold only"
    );
    // Compliance officers and legal staff both export, each within the
    // scope of their grant: the union.
    let export = arnold.scope_for(Capability::ExportMessages);
    assert!(export.allows("gas-trading", "general"));
    assert!(export.allows("power-trading", "west-desk"));
    assert!(
        !export.allows("power-trading", "east-desk"),
        "export stays within the grants' scopes"
    );

    let buy = directory
        .login("buy-r", &secret("Risk-Audit-Trail-3"), &mapping)
        .await
        .expect("login");
    assert!(buy.can(Capability::ReadAudit));
    assert!(!buy.can(Capability::SearchMessages));
    assert!(buy.scope_for(Capability::ViewMessages).is_empty());

    // A user in no mapped group authenticates with no grants.
    let haedicke = directory
        .login("haedicke-m", &secret("Legal-Department-5"), &mapping)
        .await
        .expect("login");
    assert!(!haedicke.has_grants(), "{haedicke:?}");
}

#[tokio::test]
async fn nested_member_of_groups_follow_the_configured_depth() {
    let server = example_server();
    let mut config = example_config(&server);
    let direct = directory(config.clone());
    let identity = direct
        .authenticate("bass-e", &secret("*)(uid=*\\ok"))
        .await
        .expect("a password of filter metacharacters is checked literally");
    assert_eq!(identity.groups, vec![group("trading-desk")]);
    config.nested_group_depth = 2;
    let nested = directory(config);
    let identity = nested
        .authenticate("bass-e", &secret("*)(uid=*\\ok"))
        .await
        .expect("login");
    assert_eq!(
        identity.groups,
        vec![group("trading-desk"), group("compliance")]
    );
}

#[tokio::test]
async fn group_search_finds_group_of_unique_names_and_nests() {
    let server = example_server();
    let mut config = example_config(&server);
    config.group_mode = GroupMode::Search;
    config.group_base_dn = Some(format!("ou=groups,{EXAMPLE}"));
    let search = directory(config.clone());
    let mapping = mapping();

    let identity = search
        .authenticate("haedicke-m", &secret("Legal-Department-5"))
        .await
        .expect("login");
    assert_eq!(identity.groups, vec![group("legal")]);
    let principal = mapping.principal(identity, Via::Ldap);
    assert_eq!(
        principal.roles().into_iter().collect::<Vec<_>>(),
        vec![Role::Legal]
    );
    assert!(
        principal
            .scope_for(Capability::ManageHolds)
            .allows("legal", "any")
    );

    // groupOfNames groups are found by the same default filter.
    let identity = search
        .authenticate("arnold-j", &secret("Nat-Gas-Futures-99"))
        .await
        .expect("login");
    let mut groups = identity.groups.clone();
    groups.sort();
    assert_eq!(groups, vec![group("compliance"), group("legal-hold")]);

    // derrick-j is in general-counsel, which is a member of legal.
    let identity = search
        .authenticate("derrick-j", &secret("General-Counsel-1"))
        .await
        .expect("login");
    assert_eq!(identity.groups, vec![group("general-counsel")]);
    config.nested_group_depth = 1;
    config.group_filter = Some("(&(objectClass=groupOfUniqueNames)(uniqueMember={dn}))".to_owned());
    let nested = directory(config);
    let identity = nested
        .authenticate("derrick-j", &secret("General-Counsel-1"))
        .await
        .expect("login");
    assert_eq!(
        identity.groups,
        vec![group("general-counsel"), group("legal")]
    );
    let principal = mapping.principal(identity, Via::Ldap);
    assert_eq!(
        principal.roles().into_iter().collect::<Vec<_>>(),
        vec![Role::ComplianceOfficer, Role::Legal]
    );
    assert_eq!(
        principal.scope_for(Capability::SearchMessages),
        holdfast::search::Scope::All
    );
    assert!(
        !principal
            .scope_for(Capability::ManageHolds)
            .allows("finance", "x")
    );
}

#[tokio::test]
async fn injection_in_username_or_password_logs_nobody_in() {
    let server = example_server();
    let directory = directory(example_config(&server));
    // Each of these, unescaped, would turn the filter into one that
    // matches allen-p (or everybody), and allen-p's password would work.
    for username in [
        "*)(uid=*",
        "admin)(|(uid=*",
        "*",
        "allen-*",
        "*)(|(uid=allen-p",
        "allen-p)(uid=allen-p",
        "allen-p\0",
        "allen-p)",
        "(uid=allen-p)",
        "allen-p\\",
    ] {
        let error = login_error(&directory, username, ALLEN_PASSWORD).await;
        assert!(
            matches!(error, AuthError::InvalidCredentials),
            "{username:?}: {error}"
        );
    }
    for password in ["*", "*)(uid=*", "\\2a", "Gas-Desk-Houston-2001*", " "] {
        let error = login_error(&directory, "allen-p", password).await;
        assert!(
            matches!(error, AuthError::InvalidCredentials),
            "{password:?}: {error}"
        );
    }
}

#[tokio::test]
async fn directory_going_down_fails_fast_and_recovers() {
    let mut server = example_server();
    let mut config = example_config(&server);
    config.operation_timeout_ms = 400;
    config.connect_timeout_ms = 400;
    let directory = directory(config);
    directory
        .authenticate("allen-p", &secret(ALLEN_PASSWORD))
        .await
        .expect("up");

    // Hung: connections are accepted but never answered.
    server.pause();
    let started = Instant::now();
    let error = login_error(&directory, "allen-p", ALLEN_PASSWORD).await;
    let took = started.elapsed();
    assert!(
        matches!(error, AuthError::DirectoryUnavailable { .. }),
        "{error}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    server.resume();
    directory
        .authenticate("allen-p", &secret(ALLEN_PASSWORD))
        .await
        .expect("answers again");

    // Down: connections are refused.
    server.stop();
    let started = Instant::now();
    let error = login_error(&directory, "allen-p", ALLEN_PASSWORD).await;
    assert!(
        matches!(error, AuthError::DirectoryUnavailable { .. }),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(!error.to_string().contains(ALLEN_PASSWORD));
    assert!(!error.to_string().contains(SERVICE_PASSWORD));

    // An outage is not a wrong password: it never locks anybody out.
    let authenticator = Authenticator::new(
        Directory::Ldap(directory),
        mapping(),
        LoginLimiter::with_system_clock(LimiterConfig {
            max_failures_per_user: 1,
            max_failures_per_ip: 1,
            ..LimiterConfig::default()
        }),
    );
    for _ in 0..3 {
        let error = authenticator
            .login(
                "allen-p",
                &secret(ALLEN_PASSWORD),
                Some([192, 0, 2, 1].into()),
            )
            .await
            .expect_err("down");
        assert!(
            matches!(error, AuthError::DirectoryUnavailable { .. }),
            "{error}"
        );
    }
}

#[tokio::test]
async fn wrong_service_password_or_base_is_unavailable_not_invalid() {
    let server = example_server();
    let mut config = example_config(&server);
    config.bind_password_file = None;
    config.bind_password_env = Some("HOLDFAST_TEST_LDAP_BIND_WRONG".to_owned());
    let wrong_bind = LdapDirectory::with_env(config, |_| Some("not-the-password".to_owned()))
        .expect("valid config");
    let error = login_error(&wrong_bind, "allen-p", ALLEN_PASSWORD).await;
    assert!(
        matches!(error, AuthError::DirectoryUnavailable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("service bind"), "{error}");
    assert!(!error.to_string().contains("not-the-password"));

    let mut config = example_config(&server);
    config.user_base_dn = "ou=staff,dc=example,dc=com".to_owned();
    let wrong_base = directory(config);
    let error = login_error(&wrong_base, "allen-p", ALLEN_PASSWORD).await;
    assert!(
        matches!(error, AuthError::DirectoryUnavailable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("ou=staff"), "{error}");
}

#[tokio::test]
async fn concurrent_logins_share_a_bounded_number_of_connections() {
    let server = example_server();
    let mut config = example_config(&server);
    config.max_connections = 2;
    config.operation_timeout_ms = 5_000;
    let directory = directory(config);
    let mut logins = Vec::new();
    for round in 0..12 {
        let directory = directory.clone();
        logins.push(tokio::spawn(async move {
            let (username, password) = if round % 2 == 0 {
                ("allen-p", ALLEN_PASSWORD)
            } else {
                ("arnold-j", "Nat-Gas-Futures-99")
            };
            directory.authenticate(username, &secret(password)).await
        }));
    }
    for login in logins {
        login.await.expect("task").expect("login");
    }
}

#[tokio::test]
async fn active_directory_shape_with_other_base_and_attributes() {
    let mut options = SlapdOptions::new("o=studio");
    options.extra_schemas.push(fixture("studio.schema"));
    options.ldif.push(fixture("studio.ldif"));
    let server = Slapd::start(&options);
    let mut config = LdapConfig::new(server.url(), "ou=Staff,o=studio");
    config.allow_plaintext = true;
    config.bind_dn = Some("cn=svc-holdfast,ou=Service Accounts,o=studio".to_owned());
    config.bind_password_env = Some("HOLDFAST_STUDIO_BIND".to_owned());
    config.user_filter = "(&(objectClass=inetOrgPerson)(sAMAccountName={username}))".to_owned();
    config.username_attribute = "sAMAccountName".to_owned();
    config.display_name_attribute = "displayName".to_owned();
    config.disabled_filter = Some("(userAccountControl:1.2.840.113556.1.4.803:=2)".to_owned());
    let directory = LdapDirectory::with_env(config, |name| {
        (name == "HOLDFAST_STUDIO_BIND").then(|| "Studio-Service-Bind-9".to_owned())
    })
    .expect("valid");

    let identity = directory
        .authenticate("SKILLING-J", &secret("Studio-Skilling-1"))
        .await
        .expect("login by sAMAccountName");
    assert_eq!(identity.username, "skilling-j");
    assert_eq!(
        identity.display_name.as_deref(),
        Some("Jeffery Skilling (CEO)")
    );
    assert_eq!(
        identity.email.as_deref(),
        Some("jeffery.skilling@enron.com")
    );
    assert_eq!(
        identity.groups,
        vec!["cn=Archive Admins,ou=Groups,o=studio".to_owned()]
    );

    let mapping = RoleMapping::from_config(&[
        GroupRuleConfig {
            group: "CN=Archive Admins,OU=Groups,O=Studio".to_owned(),
            role: Role::Admin,
            teams: Vec::new(),
            channels: Vec::new(),
            all: false,
        },
        GroupRuleConfig {
            group: "cn=compliance team,ou=groups,o=studio".to_owned(),
            role: Role::ComplianceOfficer,
            teams: Vec::new(),
            channels: vec!["board/minutes".to_owned()],
            all: false,
        },
    ])
    .expect("mapping");
    let admin = mapping.principal(identity, Via::Ldap);
    assert!(admin.can(Capability::Administer));
    assert!(!admin.can(Capability::SearchMessages));

    let lay = Directory::Ldap(directory.clone())
        .login("lay-k", &secret("Studio-Lay-2"), &mapping)
        .await
        .expect("login");
    assert_eq!(
        lay.scope_for(Capability::SearchMessages),
        holdfast::search::Scope::channels([ChannelRef::new("board", "minutes")])
    );

    // userAccountControl bit 2: disabled.
    let error = login_error(&directory, "kitchen-l", "Studio-Kitchen-3").await;
    assert!(matches!(error, AuthError::Disabled), "{error}");
    // The uid attribute of the other directory's filter means nothing here.
    let error = login_error(&directory, "Jeffery Skilling", "Studio-Skilling-1").await;
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
}

#[tokio::test]
async fn starttls_and_ldaps_with_the_test_ca() {
    let mut options = SlapdOptions::new(EXAMPLE);
    options.ldif.push(fixture("example.ldif"));
    options.tls = true;
    let server = Slapd::start(&options);
    let ca_file = server.ca.as_ref().expect("tls server").ca_file.clone();

    let mut starttls = example_config(&server);
    starttls.allow_plaintext = false;
    starttls.starttls = true;
    starttls.ca_file = Some(ca_file.clone());
    directory(starttls.clone())
        .authenticate("allen-p", &secret(ALLEN_PASSWORD))
        .await
        .expect("StartTLS login");

    let mut ldaps = starttls.clone();
    ldaps.url = server.ldaps_url();
    ldaps.starttls = false;
    let identity = directory(ldaps.clone())
        .authenticate("arnold-j", &secret("Nat-Gas-Futures-99"))
        .await
        .expect("ldaps login");
    assert_eq!(identity.username, "arnold-j");

    // A CA that did not sign the server's certificate: no login.
    let other_ca = slapd::make_test_ca(server.dir(), "other");
    let mut untrusted = ldaps.clone();
    untrusted.ca_file = Some(other_ca.ca_file.clone());
    let error = login_error(&directory(untrusted), "allen-p", ALLEN_PASSWORD).await;
    assert!(
        matches!(error, AuthError::DirectoryUnavailable { .. }),
        "{error}"
    );
    let mut untrusted = starttls.clone();
    untrusted.ca_file = Some(other_ca.ca_file);
    let error = login_error(&directory(untrusted), "allen-p", ALLEN_PASSWORD).await;
    assert!(
        matches!(error, AuthError::DirectoryUnavailable { .. }),
        "{error}"
    );

    // Without a CA file, the system's roots: they do not know the test CA.
    let mut system_roots = ldaps.clone();
    system_roots.ca_file = None;
    let error = login_error(&directory(system_roots), "allen-p", ALLEN_PASSWORD).await;
    assert!(
        matches!(error, AuthError::DirectoryUnavailable { .. }),
        "{error}"
    );

    // Plain ldap:// is a configuration error unless allowed explicitly.
    let mut plain = starttls;
    plain.starttls = false;
    plain.ca_file = None;
    let error = LdapDirectory::new(plain).expect_err("plaintext refused");
    assert!(
        matches!(&error, AuthError::Config { field, .. } if field == "auth.ldap.url"),
        "{error}"
    );
}

#[tokio::test]
async fn a_username_found_twice_is_refused() {
    let server = example_server();
    let mut config = example_config(&server);
    config.user_base_dn = EXAMPLE.to_owned();
    let whole_tree = directory(config);
    // Same password on both entries: the refusal is the ambiguity's.
    let error = login_error(&whole_tree, "allen-p", ALLEN_PASSWORD).await;
    assert!(matches!(error, AuthError::InvalidCredentials), "{error}");
    whole_tree
        .authenticate("arnold-j", &secret("Nat-Gas-Futures-99"))
        .await
        .expect("a unique user is fine from the top");
}

/// Collects everything logged, to look for passwords in it.
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_password_reaches_the_logs_or_errors() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded: the connection tasks log here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = example_server();
    let mut config = example_config(&server);
    let mut errors = Vec::new();
    let good = directory(config.clone());
    good.authenticate("allen-p", &secret(ALLEN_PASSWORD))
        .await
        .expect("login");
    errors.push(login_error(&good, "allen-p", "Wrong-Password-Typed").await);
    errors.push(login_error(&good, "hain-m", "In-House-Lawyer-8").await);
    config.user_base_dn = EXAMPLE.to_owned();
    let ambiguous = directory(config.clone());
    errors.push(login_error(&ambiguous, "allen-p", ALLEN_PASSWORD).await);
    config.bind_password_file = None;
    config.bind_password_env = Some("HOLDFAST_TEST_BIND_ENV".to_owned());
    let wrong_bind = LdapDirectory::with_env(config, |_| Some("Wrong-Service-Password".to_owned()))
        .expect("valid");
    errors.push(login_error(&wrong_bind, "allen-p", ALLEN_PASSWORD).await);
    server.stop();
    errors.push(login_error(&good, "allen-p", ALLEN_PASSWORD).await);

    let logged = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert!(
        logged.contains("more than one entry"),
        "the capture works: {logged}"
    );
    let written: Vec<String> = errors
        .iter()
        .flat_map(|error| [error.to_string(), format!("{error:?}")])
        .chain([logged, format!("{good:?}"), format!("{wrong_bind:?}")])
        .collect();
    for text in written {
        for password in [
            ALLEN_PASSWORD,
            "Wrong-Password-Typed",
            "In-House-Lawyer-8",
            SERVICE_PASSWORD,
            "Wrong-Service-Password",
        ] {
            assert!(!text.contains(password), "{password} in {text}");
        }
    }
}
