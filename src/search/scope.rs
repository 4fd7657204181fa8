//! What a searcher may see: every team and channel, or a set of teams and
//! channels.
//!
//! A scope is part of every index query (never a filter applied to results
//! afterwards), so no code path can return a hit outside it. Team and
//! channel values are compared **exactly** as the events carry them (no case
//! folding): `Legal` and `legal` are different teams to a scope, whatever
//! the case-insensitive `team:` filter of the query language does.

use std::collections::BTreeSet;
use std::fmt;

/// One channel of one team. Channel names repeat across teams
/// (`general`), so a scope always names the team too.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ChannelRef {
    pub team: String,
    pub channel: String,
}

impl ChannelRef {
    pub fn new(team: impl Into<String>, channel: impl Into<String>) -> ChannelRef {
        ChannelRef {
            team: team.into(),
            channel: channel.into(),
        }
    }
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.team, self.channel)
    }
}

/// The teams and channels a search may see.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Everything in the archive.
    All,
    /// Events of these teams, plus events of these channels. Empty sets see
    /// nothing (the default: a person without a grant sees nothing).
    Limited {
        teams: BTreeSet<String>,
        channels: BTreeSet<ChannelRef>,
    },
    #[default]
    Nothing,
}

impl Scope {
    /// A scope of whole teams.
    pub fn teams<I, S>(teams: I) -> Scope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Scope::Limited {
            teams: teams.into_iter().map(Into::into).collect(),
            channels: BTreeSet::new(),
        }
        .normalized()
    }

    /// A scope of single channels.
    pub fn channels<I>(channels: I) -> Scope
    where
        I: IntoIterator<Item = ChannelRef>,
    {
        Scope::Limited {
            teams: BTreeSet::new(),
            channels: channels.into_iter().collect(),
        }
        .normalized()
    }

    /// Whether an event of `team` / `channel` is in the scope.
    pub fn allows(&self, team: &str, channel: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Nothing => false,
            Scope::Limited { teams, channels } => {
                teams.contains(team)
                    || channels.contains(&ChannelRef::new(team.to_owned(), channel.to_owned()))
            }
        }
    }

    /// Whether the scope sees nothing at all.
    pub fn is_empty(&self) -> bool {
        matches!(self, Scope::Nothing)
    }

    /// The union of two scopes (a person's rights are the union of their
    /// groups').
    pub fn union(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::All, _) | (_, Scope::All) => Scope::All,
            (Scope::Nothing, other) | (other, Scope::Nothing) => other,
            (
                Scope::Limited {
                    mut teams,
                    mut channels,
                },
                Scope::Limited {
                    teams: more_teams,
                    channels: more_channels,
                },
            ) => {
                teams.extend(more_teams);
                channels.extend(more_channels);
                Scope::Limited { teams, channels }.normalized()
            }
        }
    }

    /// Drops channels of teams the scope already holds whole; an empty
    /// limited scope becomes `Nothing`.
    fn normalized(self) -> Scope {
        match self {
            Scope::Limited { teams, channels } => {
                let channels: BTreeSet<ChannelRef> = channels
                    .into_iter()
                    .filter(|channel| !teams.contains(&channel.team))
                    .collect();
                if teams.is_empty() && channels.is_empty() {
                    Scope::Nothing
                } else {
                    Scope::Limited { teams, channels }
                }
            }
            other => other,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Nothing => f.write_str("nothing"),
            Scope::Limited { teams, channels } => {
                let mut first = true;
                for team in teams {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "team {team}")?;
                }
                for channel in channels {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "channel {channel}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_scope_compares_exactly() {
        let scope = Scope::teams(["Legal"]);
        assert!(scope.allows("Legal", "general"));
        assert!(!scope.allows("legal", "general"));
        assert!(!scope.allows("Legal2", "general"));
        let scope = Scope::channels([ChannelRef::new("eng", "general")]);
        assert!(scope.allows("eng", "general"));
        assert!(!scope.allows("sales", "general"));
        assert!(!scope.allows("eng", "random"));
    }

    #[test]
    fn empty_scopes_see_nothing_and_union_widens() {
        assert_eq!(Scope::teams(Vec::<String>::new()), Scope::Nothing);
        assert!(!Scope::Nothing.allows("a", "b"));
        assert!(Scope::default().is_empty());
        let union = Scope::teams(["a"]).union(Scope::channels([
            ChannelRef::new("a", "x"),
            ChannelRef::new("b", "y"),
        ]));
        assert_eq!(
            union,
            Scope::Limited {
                teams: ["a".to_owned()].into(),
                channels: [ChannelRef::new("b", "y")].into(),
            }
        );
        assert!(union.allows("a", "anything"));
        assert!(union.allows("b", "y"));
        assert!(!union.allows("b", "z"));
        assert_eq!(union.clone().union(Scope::All), Scope::All);
        assert_eq!(Scope::Nothing.union(union.clone()), union);
        assert_eq!(union.to_string(), "team a, channel b/y");
    }
}
