//! What a scope holds, for the console's filters: the teams, channels and
//! people with events in it, and how many events each. Counted by tantivy
//! terms aggregations over the fast fields, inside the scope's query, so a
//! scoped reader learns nothing of the names outside their scope.

use serde::Serialize;
use serde_json::{Value, json};
use tantivy::aggregation::{AggContextParams, AggregationCollector, agg_req::Aggregations};

use super::{IndexError, SearchIndex, query};
use crate::search::Scope;

/// At most this many names of each kind (the busiest first).
pub const MAX_FACETS: usize = 2000;

/// One name and its number of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FacetCount {
    pub name: String,
    pub events: u64,
}

/// One channel (within its team) and its number of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelCount {
    pub team: String,
    pub channel: String,
    pub events: u64,
}

/// The teams, channels and people of a scope, busiest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    pub teams: Vec<FacetCount>,
    pub channels: Vec<ChannelCount>,
    pub people: Vec<FacetCount>,
    /// More names exist than [`MAX_FACETS`] of a kind.
    pub truncated: bool,
}

impl SearchIndex {
    /// The facets of `scope` at the reader's last reload. Blocking.
    pub fn facets(&self, scope: &Scope) -> Result<Facets, IndexError> {
        let Some(scope_query) = query::scope_query(self, scope) else {
            return Ok(Facets::default());
        };
        let request: Aggregations = serde_json::from_value(json!({
            "teams": {
                "terms": {"field": "team_exact", "size": MAX_FACETS},
                "aggs": {"channels": {"terms": {"field": "channel_exact", "size": MAX_FACETS}}}
            },
            "people": {"terms": {"field": "user", "size": MAX_FACETS}}
        }))
        .expect("the aggregation request is well formed");
        let collector = AggregationCollector::from_aggs(request, AggContextParams::default());
        let searcher = self.reader.searcher();
        let results = searcher
            .search(&*scope_query, &collector)
            .map_err(|source| self.tantivy_error(source))?;
        let results = serde_json::to_value(&results).expect("aggregation results serialize");
        let mut facets = Facets::default();
        let (teams, mut truncated) = buckets(&results["teams"]);
        for (team, events, bucket) in teams {
            let (channels, channels_truncated) = buckets(&bucket["channels"]);
            truncated |= channels_truncated;
            facets.channels.extend(
                channels
                    .into_iter()
                    .map(|(channel, events, _)| ChannelCount {
                        team: team.clone(),
                        channel,
                        events,
                    }),
            );
            facets.teams.push(FacetCount { name: team, events });
        }
        facets
            .channels
            .sort_by(|a, b| b.events.cmp(&a.events).then(a.channel.cmp(&b.channel)));
        let (people, people_truncated) = buckets(&results["people"]);
        facets.people = people
            .into_iter()
            .map(|(name, events, _)| FacetCount { name, events })
            .collect();
        facets.truncated = truncated || people_truncated;
        Ok(facets)
    }
}

/// The (key, count, bucket) of a terms aggregation's result, and whether
/// names were left out.
fn buckets(result: &Value) -> (Vec<(String, u64, &Value)>, bool) {
    let entries = result["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|bucket| {
                    let key = match &bucket["key"] {
                        Value::String(key) => key.clone(),
                        other => other.to_string(),
                    };
                    Some((key, bucket["doc_count"].as_u64()?, bucket))
                })
                .collect()
        })
        .unwrap_or_default();
    let truncated = result["sum_other_doc_count"].as_u64().unwrap_or(0) > 0;
    (entries, truncated)
}
