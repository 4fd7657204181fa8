//! Group → role + scope mapping, from configuration.
//!
//! A directory tells who a person is and which groups they are in; this
//! mapping turns those groups into [`Grant`]s. A person's grants are the
//! union of their groups'. Group names are compared case-insensitively;
//! an LDAP group is named by its full DN (compared attribute by attribute,
//! ignoring case and the spaces around `,` `=` `+`), a local group by its
//! name. The mapping must never grant anything to a group it does not name,
//! and never give a message-reading role a scope nobody wrote down.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::roles::{Grant, Principal, Role, Via};
use super::{AuthError, Identity};
use crate::search::{ChannelRef, Scope};

/// One `[[auth.groups]]` entry of the configuration, as written.
///
/// ```toml
/// [[auth.groups]]
/// group = "cn=compliance,ou=groups,dc=example,dc=com"
/// role = "compliance_officer"
/// teams = ["finance", "trading"]
/// channels = ["legal/general"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRuleConfig {
    /// A local group name, or an LDAP group's full DN.
    pub group: String,
    pub role: Role,
    /// Whole teams this grant sees.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Single channels, written `team/channel`.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Everything in the archive. Excludes `teams` and `channels`.
    #[serde(default)]
    pub all: bool,
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupRule {
    /// The group as configured (for messages).
    group: String,
    /// The comparison key (see [`normalize_group`]).
    key: String,
    grant: Grant,
}

/// The checked mapping from groups to grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMapping {
    rules: Vec<GroupRule>,
}

impl RoleMapping {
    /// Checks the configured rules. Errors name the rule (by position and
    /// group) and the field.
    pub fn from_config(rules: &[GroupRuleConfig]) -> Result<RoleMapping, AuthError> {
        let mut checked = Vec::with_capacity(rules.len());
        for (rule_idx, rule) in rules.iter().enumerate() {
            let invalid = |field: &str, problem: String| AuthError::Config {
                field: format!("auth.groups[{rule_idx}].{field} (group {:?})", rule.group),
                problem,
            };
            let key = normalize_group(&rule.group);
            if key.is_empty() {
                return Err(invalid("group", "must not be empty".to_owned()));
            }
            let scope = if rule.all {
                if !rule.teams.is_empty() || !rule.channels.is_empty() {
                    return Err(invalid(
                        "all",
                        "all = true cannot be combined with teams or channels".to_owned(),
                    ));
                }
                Scope::All
            } else {
                let mut teams = BTreeSet::new();
                for team in &rule.teams {
                    if team.trim().is_empty() {
                        return Err(invalid("teams", "a team name must not be empty".to_owned()));
                    }
                    teams.insert(team.clone());
                }
                let mut channels = BTreeSet::new();
                for channel in &rule.channels {
                    let Some((team, name)) = channel.split_once('/') else {
                        return Err(invalid(
                            "channels",
                            format!("{channel:?} is not of the form \"team/channel\""),
                        ));
                    };
                    if team.trim().is_empty() || name.trim().is_empty() {
                        return Err(invalid(
                            "channels",
                            format!("{channel:?} is not of the form \"team/channel\""),
                        ));
                    }
                    channels.insert(ChannelRef::new(team, name));
                }
                Scope::teams(teams).union(Scope::channels(channels))
            };
            if rule.role.reads_messages() && scope.is_empty() {
                return Err(invalid(
                    "role",
                    format!(
                        "role {} reads message data and needs a scope: set all = true, teams or channels",
                        rule.role
                    ),
                ));
            }
            checked.push(GroupRule {
                group: rule.group.clone(),
                key,
                grant: Grant {
                    role: rule.role,
                    scope,
                },
            });
        }
        Ok(RoleMapping { rules: checked })
    }

    /// The grants of a person in `groups`: one per matching rule, merged
    /// by role (the union of the scopes).
    pub fn grants_for<S: AsRef<str>>(&self, groups: &[S]) -> Vec<Grant> {
        let keys: BTreeSet<String> = groups
            .iter()
            .map(|group| normalize_group(group.as_ref()))
            .collect();
        let mut grants: Vec<Grant> = Vec::new();
        for rule in self.rules.iter().filter(|rule| keys.contains(&rule.key)) {
            match grants
                .iter_mut()
                .find(|grant| grant.role == rule.grant.role)
            {
                Some(grant) => {
                    let scope = std::mem::take(&mut grant.scope);
                    grant.scope = scope.union(rule.grant.scope.clone());
                }
                None => grants.push(rule.grant.clone()),
            }
        }
        grants.sort_by_key(|grant| grant.role);
        grants
    }

    /// The principal an authenticated identity runs as.
    pub fn principal(&self, identity: Identity, via: Via) -> Principal {
        let grants = self.grants_for(&identity.groups);
        Principal {
            username: identity.username,
            display_name: identity.display_name,
            email: identity.email,
            grants,
            via,
            must_change_password: identity.must_change_password,
        }
    }

    /// The groups the mapping names, as configured.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.group.as_str())
    }
}

/// The comparison key of a group name. A DN (anything with `=`) becomes its
/// RDNs with attribute types and values lowercased and trimmed, joined by
/// `,`; escaped separators (`\,`) stay escaped. Anything else is lowercased
/// and trimmed.
pub fn normalize_group(group: &str) -> String {
    let group = group.trim();
    if !group.contains('=') {
        return group.to_lowercase();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for ch in group.chars() {
        if escaped {
            current.push(ch);
            escaped = false;
            continue;
        }
        match ch {
            '\\' => {
                current.push(ch);
                escaped = true;
            }
            ',' | '+' => {
                parts.push(normalize_ava(&current));
                parts.push(ch.to_string());
                current.clear();
            }
            _ => current.push(ch),
        }
    }
    parts.push(normalize_ava(&current));
    parts.concat()
}

/// One `type=value` of a DN, lowercased, spaces around `=` dropped.
fn normalize_ava(ava: &str) -> String {
    match ava.split_once('=') {
        Some((attribute, value)) => {
            format!(
                "{}={}",
                attribute.trim().to_lowercase(),
                value.trim().to_lowercase()
            )
        }
        None => ava.trim().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_text: &str) -> Vec<GroupRuleConfig> {
        #[derive(Deserialize)]
        struct Wrapper {
            groups: Vec<GroupRuleConfig>,
        }
        toml::from_str::<Wrapper>(toml_text)
            .expect("test TOML parses")
            .groups
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_group("CN=Compliance , OU=Groups,DC=Example,DC=com"),
            "cn=compliance,ou=groups,dc=example,dc=com"
        );
        assert_eq!(
            normalize_group("cn=Smith\\, John,ou=x"),
            "cn=smith\\, john,ou=x"
        );
        assert_eq!(normalize_group("  Admins "), "admins");
    }

    #[test]
    fn grants_are_the_union_of_groups() {
        let mapping = RoleMapping::from_config(&rules(
            r#"
            [[groups]]
            group = "cn=compliance,ou=groups,dc=example,dc=com"
            role = "compliance_officer"
            teams = ["finance"]

            [[groups]]
            group = "cn=trading-review,ou=groups,dc=example,dc=com"
            role = "compliance_officer"
            channels = ["trading/desk", "finance/general"]

            [[groups]]
            group = "auditors"
            role = "auditor"
            all = true
            "#,
        ))
        .expect("valid mapping");
        let grants = mapping.grants_for(&[
            "CN=Compliance,OU=Groups,DC=example,DC=com",
            "cn=trading-review, ou=groups, dc=example, dc=com",
            "cn=unrelated,ou=groups,dc=example,dc=com",
        ]);
        assert_eq!(grants.len(), 1, "{grants:?}");
        assert_eq!(grants[0].role, Role::ComplianceOfficer);
        assert!(grants[0].scope.allows("finance", "anything"));
        assert!(grants[0].scope.allows("trading", "desk"));
        assert!(!grants[0].scope.allows("trading", "floor"));
        let grants = mapping.grants_for(&["AUDITORS"]);
        assert_eq!(
            grants,
            vec![Grant {
                role: Role::Auditor,
                scope: Scope::All
            }]
        );
        assert!(mapping.grants_for(&["compliance"]).is_empty());
        assert!(mapping.grants_for::<&str>(&[]).is_empty());
    }

    #[test]
    fn bad_rules_name_the_group_and_field() {
        let cases = [
            (
                "[[groups]]\ngroup = \"legal\"\nrole = \"legal\"\n",
                "auth.groups[0].role (group \"legal\")",
            ),
            (
                "[[groups]]\ngroup = \"x\"\nrole = \"admin\"\nall = true\nteams = [\"a\"]\n",
                "auth.groups[0].all",
            ),
            (
                "[[groups]]\ngroup = \"a\"\nrole = \"auditor\"\n[[groups]]\ngroup = \"x\"\nrole = \"legal\"\nchannels = [\"general\"]\n",
                "auth.groups[1].channels (group \"x\")",
            ),
            (
                "[[groups]]\ngroup = \" \"\nrole = \"auditor\"\n",
                "auth.groups[0].group",
            ),
        ];
        for (text, expected) in cases {
            let error = RoleMapping::from_config(&rules(text)).expect_err(text);
            let message = error.to_string();
            assert!(
                message.contains(expected),
                "{message} should name {expected}"
            );
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code, reason = "only the parse error matters")]
        struct Wrapper {
            groups: Vec<GroupRuleConfig>,
        }
        let error = toml::from_str::<Wrapper>(
            "[[groups]]\ngroup = \"x\"\nrole = \"superuser\"\nall = true\n",
        )
        .expect_err("unknown role");
        assert!(error.to_string().contains("superuser"), "{error}");
        let error = toml::from_str::<Wrapper>(
            "[[groups]]\ngroup = \"x\"\nrole = \"admin\"\nteam = [\"a\"]\n",
        )
        .expect_err("unknown field");
        assert!(error.to_string().contains("team"), "{error}");
    }

    #[test]
    fn principal_carries_identity_and_grants() {
        let mapping =
            RoleMapping::from_config(&rules("[[groups]]\ngroup = \"admins\"\nrole = \"admin\"\n"))
                .expect("valid");
        let principal = mapping.principal(
            Identity {
                username: "lay-k".to_owned(),
                display_name: Some("Kenneth Lay".to_owned()),
                email: Some("kenneth.lay@enron.com".to_owned()),
                groups: vec!["admins".to_owned()],
                must_change_password: false,
            },
            Via::Local,
        );
        assert_eq!(principal.username, "lay-k");
        assert!(principal.can(super::super::Capability::ManageUsers));
        assert!(!principal.can(super::super::Capability::SearchMessages));
        assert_eq!(principal.grants[0].scope, Scope::Nothing);
    }
}
