//! Roles, the capabilities they carry, and the principal a request runs as.
//!
//! A [`Principal`] is the checked outcome of authentication: who, through
//! which directory, and which grants (role + scope). Code that touches
//! message data asks [`Principal::scope_for`] for the scope of the
//! capability it needs and passes that [`Scope`] on; it must never widen a
//! scope or treat a missing grant as "everything".

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::search::Scope;

/// What a person or service account is to the archive. A person may hold
/// several roles (through several groups); their rights are the union.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Configuration, users, tokens, keys, policies, legal holds (over the
    /// whole archive: holds answer with counts, never message data), the
    /// audit log, and exports of the whole archive (for an auditor or a
    /// court; each one audited).
    Admin,
    /// Search, view and export message data within scope.
    ComplianceOfficer,
    /// Legal holds within scope, plus search, view and export.
    Legal,
    /// The audit log, read-only.
    Auditor,
    /// Posts events, nothing else (the chat system's connector).
    Ingest,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::ComplianceOfficer,
        Role::Legal,
        Role::Auditor,
        Role::Ingest,
    ];

    /// The stable name used in configuration, tokens and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ComplianceOfficer => "compliance_officer",
            Role::Legal => "legal",
            Role::Auditor => "auditor",
            Role::Ingest => "ingest",
        }
    }

    /// The capabilities this role carries.
    pub fn capabilities(self) -> &'static [Capability] {
        use Capability::*;
        match self {
            Role::Admin => &[
                Administer,
                ManageUsers,
                ManageTokens,
                ManageKeys,
                ManagePolicies,
                ManageHolds,
                ReadAudit,
                ExportMessages,
            ],
            Role::ComplianceOfficer => &[SearchMessages, ViewMessages, ExportMessages],
            Role::Legal => &[SearchMessages, ViewMessages, ManageHolds, ExportMessages],
            Role::Auditor => &[ReadAudit],
            Role::Ingest => &[IngestEvents],
        }
    }

    pub fn has(self, capability: Capability) -> bool {
        self.capabilities().contains(&capability)
    }

    /// Whether the role reads message data (search, view, export), so that
    /// a grant of it means nothing without a scope.
    /// An admin's grant carries no scope: it exports (and manages holds
    /// over) the whole archive, and is not a message-reading role.
    pub fn reads_messages(self) -> bool {
        self != Role::Admin
            && self
                .capabilities()
                .iter()
                .any(|capability| capability.reads_messages())
    }

    /// Whether a grant of this role reaches `capability` only within the
    /// grant's scope: capabilities over message data, for roles that read
    /// messages. An admin's grant carries no scope; it manages legal holds
    /// over the whole archive.
    pub fn scoped_for(self, capability: Capability) -> bool {
        capability.is_scoped() && self.reads_messages()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(name: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "unknown role {name:?} (expected one of: admin, compliance_officer, legal, auditor, ingest)"
                )
            })
    }
}

/// What an endpoint or a library call needs. Every endpoint declares one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Post events (ingest, imports).
    IngestEvents,
    /// Run searches over message data (scoped).
    SearchMessages,
    /// Read events and posts by id, thread context (scoped).
    ViewMessages,
    /// Produce exports of message data (scoped).
    ExportMessages,
    /// Create, change and release legal holds (scoped).
    ManageHolds,
    /// Read and export the audit trail.
    ReadAudit,
    /// Local users and groups.
    ManageUsers,
    /// API tokens of service accounts.
    ManageTokens,
    /// Master key rotation.
    ManageKeys,
    /// Retention policies and their runs.
    ManagePolicies,
    /// Everything else about the service's configuration.
    Administer,
}

impl Capability {
    /// Whether the capability reaches message data, and so is limited by
    /// the scope of the grant that carries it.
    pub fn is_scoped(self) -> bool {
        matches!(
            self,
            Capability::SearchMessages
                | Capability::ViewMessages
                | Capability::ExportMessages
                | Capability::ManageHolds
        )
    }

    /// Whether the capability returns message data itself.
    pub fn reads_messages(self) -> bool {
        matches!(
            self,
            Capability::SearchMessages | Capability::ViewMessages | Capability::ExportMessages
        )
    }
}

/// One role, limited to a scope of message data. Roles that never touch
/// message data (admin, auditor, ingest) are not limited by the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

/// Which way a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The local directory file (password).
    Local,
    /// An LDAP / Active Directory server (password).
    Ldap,
    /// An API token (service accounts) or a session token.
    Token,
}

/// Who a request runs as, with everything it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub grants: Vec<Grant>,
    pub via: Via,
    /// Logged in with a one-time password: may only change it.
    pub must_change_password: bool,
}

impl Principal {
    /// The principal of an API or session token: no directory lookup,
    /// the grants stored with the token.
    pub fn token(username: impl Into<String>, grants: Vec<Grant>) -> Principal {
        Principal {
            username: username.into(),
            display_name: None,
            email: None,
            grants,
            via: Via::Token,
            must_change_password: false,
        }
    }

    /// Whether any grant carries `capability` (with a scope that sees
    /// something, when the grant is limited by its scope).
    pub fn can(&self, capability: Capability) -> bool {
        self.grants.iter().any(|grant| {
            grant.role.has(capability)
                && (!grant.role.scoped_for(capability) || !grant.scope.is_empty())
        })
    }

    /// The union of the scopes of the grants whose role carries
    /// `capability` (everything for a grant not limited by its scope, see
    /// [`Role::scoped_for`]); `Scope::Nothing` when none does.
    pub fn scope_for(&self, capability: Capability) -> Scope {
        self.grants
            .iter()
            .filter(|grant| grant.role.has(capability))
            .fold(Scope::Nothing, |scope, grant| {
                scope.union(if grant.role.scoped_for(capability) {
                    grant.scope.clone()
                } else {
                    Scope::All
                })
            })
    }

    /// The distinct roles of the principal's grants.
    pub fn roles(&self) -> BTreeSet<Role> {
        self.grants.iter().map(|grant| grant.role).collect()
    }

    /// Whether the principal holds any grant at all. A directory user
    /// whose groups map to nothing authenticates but may do nothing.
    pub fn has_grants(&self) -> bool {
        !self.grants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::ChannelRef;

    fn principal(grants: Vec<Grant>) -> Principal {
        Principal {
            via: Via::Local,
            ..Principal::token("allen-p", grants)
        }
    }

    #[test]
    fn role_names_are_snake_case_and_round_trip() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).expect("serializes");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!(
            serde_json::to_string(&Role::ComplianceOfficer).expect("serializes"),
            "\"compliance_officer\""
        );
        let error = "officer".parse::<Role>().expect_err("unknown role");
        assert!(error.contains("officer"), "{error}");
    }

    #[test]
    fn roles_carry_what_the_issue_says_and_nothing_more() {
        assert!(Role::Ingest.has(Capability::IngestEvents));
        assert_eq!(Role::Ingest.capabilities().len(), 1);
        assert!(!Role::Admin.has(Capability::SearchMessages));
        assert!(!Role::Admin.has(Capability::ViewMessages));
        assert!(Role::Admin.has(Capability::ReadAudit));
        assert_eq!(Role::Auditor.capabilities(), &[Capability::ReadAudit]);
        assert!(Role::Legal.has(Capability::ManageHolds));
        assert!(Role::Legal.has(Capability::ExportMessages));
        assert!(Role::Admin.has(Capability::ExportMessages));
        assert!(!Role::Admin.scoped_for(Capability::ExportMessages));
        assert!(!Role::Auditor.has(Capability::ExportMessages));
        assert!(Role::ComplianceOfficer.has(Capability::ExportMessages));
        assert!(!Role::ComplianceOfficer.has(Capability::ManageHolds));
        assert!(Role::Legal.reads_messages());
        assert!(!Role::Auditor.reads_messages());
        // Legal holds: legal within scope, admin everywhere.
        assert!(Role::Admin.has(Capability::ManageHolds));
        assert!(!Role::Admin.reads_messages());
        assert!(Role::Legal.scoped_for(Capability::ManageHolds));
        assert!(!Role::Admin.scoped_for(Capability::ManageHolds));
    }

    #[test]
    fn an_admin_manages_holds_everywhere_and_legal_within_scope() {
        let admin = principal(vec![Grant {
            role: Role::Admin,
            scope: Scope::Nothing,
        }]);
        assert!(admin.can(Capability::ManageHolds));
        assert_eq!(admin.scope_for(Capability::ManageHolds), Scope::All);
        assert!(!admin.can(Capability::SearchMessages));
        assert_eq!(admin.scope_for(Capability::SearchMessages), Scope::Nothing);
        let legal = principal(vec![Grant {
            role: Role::Legal,
            scope: Scope::teams(["legal"]),
        }]);
        assert_eq!(
            legal.scope_for(Capability::ManageHolds),
            Scope::teams(["legal"])
        );
        let unscoped_legal = principal(vec![Grant {
            role: Role::Legal,
            scope: Scope::Nothing,
        }]);
        assert!(!unscoped_legal.can(Capability::ManageHolds));
    }

    #[test]
    fn scope_for_is_the_union_of_matching_grants_only() {
        let officer = principal(vec![
            Grant {
                role: Role::ComplianceOfficer,
                scope: Scope::teams(["finance"]),
            },
            Grant {
                role: Role::Legal,
                scope: Scope::channels([ChannelRef::new("trading", "desk")]),
            },
            Grant {
                role: Role::Auditor,
                scope: Scope::All,
            },
        ]);
        let search = officer.scope_for(Capability::SearchMessages);
        assert!(search.allows("finance", "general"));
        assert!(search.allows("trading", "desk"));
        assert!(!search.allows("trading", "floor"));
        // Export comes from the officer and legal grants, each in its scope.
        let export = officer.scope_for(Capability::ExportMessages);
        assert!(export.allows("finance", "x"));
        assert!(export.allows("trading", "desk"));
        assert!(!export.allows("trading", "floor"));
        // The auditor's `all` does not leak into message capabilities.
        assert_eq!(officer.scope_for(Capability::IngestEvents), Scope::Nothing);
        assert!(officer.can(Capability::ReadAudit));
        assert!(!officer.can(Capability::IngestEvents));
        assert!(!officer.can(Capability::Administer));
        assert_eq!(
            officer.roles().into_iter().collect::<Vec<_>>(),
            vec![Role::ComplianceOfficer, Role::Legal, Role::Auditor]
        );
    }

    #[test]
    fn no_grant_or_an_empty_scope_sees_nothing() {
        let nobody = principal(Vec::new());
        assert!(!nobody.has_grants());
        for capability in [
            Capability::SearchMessages,
            Capability::ViewMessages,
            Capability::ExportMessages,
            Capability::ManageHolds,
        ] {
            assert!(!nobody.can(capability));
            assert_eq!(nobody.scope_for(capability), Scope::Nothing);
        }
        let empty = principal(vec![Grant {
            role: Role::ComplianceOfficer,
            scope: Scope::Nothing,
        }]);
        assert!(!empty.can(Capability::SearchMessages));
        let ingest = principal(vec![Grant {
            role: Role::Ingest,
            scope: Scope::Nothing,
        }]);
        assert!(ingest.can(Capability::IngestEvents));
        assert!(!ingest.can(Capability::ViewMessages));
        assert_eq!(ingest.scope_for(Capability::ViewMessages), Scope::Nothing);
    }
}
