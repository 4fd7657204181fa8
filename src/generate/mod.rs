//! Deterministic synthetic chat corpus generator, behind `holdfast generate --events N --seed S`.
//!
//! Writes a realistic stream of wire-format events (design brief, "The event wire format") for
//! tests, benchmarks and demos: teams with public, private and direct-message channels,
//! `channel_create` before a channel is first used, `member_join` before a user first acts in a
//! channel, threads, edits, deletes, reaction bursts on popular posts, file attachments, renames,
//! rare archives, and Zipf-distributed text with occasional long messages, code blocks, non-Latin
//! text and emoji, plus a few rare phrases ("wire transfer", "offshore", "raptor",
//! "mark-to-market") that tests can search for.
//!
//! It must never draw randomness that is not derived from the seed (no `thread_rng`, no wall
//! clock, no `HashMap` iteration order): the same options give byte-identical output. It must
//! never keep state that grows with the number of events: recent posts live in capped rings (a
//! few thousand in all). It never emits an event about a post, channel or membership it has not
//! created first, and nothing in a channel after archiving it.
//!
//! User names are the 148 custodians of the public Enron e-discovery corpus, from the
//! EnronData.org project (enrondata/enrondata on GitHub,
//! `data/misc/edo_enron-custodians-data.tsv`), licensed CC BY 3.0 US.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Zipf};
use serde_json::{Map, Value, json};

// The custodians of the Enron e-discovery corpus (id, email, full name, title). Source: the
// EnronData.org project (enrondata/enrondata on GitHub, data/misc/edo_enron-custodians-data.tsv),
// licensed CC BY 3.0 US; keep this attribution wherever the file is copied.
const CUSTODIANS_TSV: &str = include_str!("enron-custodians.tsv");

/// 2024-01-01T00:00:00Z in epoch milliseconds.
const DEFAULT_START_MS: i64 = 1_704_067_200_000;
/// Bodies stay well under the wire format's 64 KiB limit.
const MAX_TEXT_BYTES: usize = 60 * 1024;
/// Recent posts remembered across all channels (each channel keeps at least a few).
const RECENT_POSTS_TOTAL: usize = 4096;
const MIN_RECENT_PER_CHANNEL: usize = 8;
const MAX_REACTIONS_PER_POST: usize = 32;
const VOCABULARY_SIZE: usize = 3000;
/// Seed of the vocabulary's pseudo-words: fixed, so every corpus shares one vocabulary.
const VOCABULARY_SEED: u64 = 0x686f_6c64_6661_7374;
const BURST_PROBABILITY: f64 = 0.05;

/// What to generate. `users` is capped at the 148 custodians; zero counts are raised to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    pub events: u64,
    pub seed: u64,
    /// Epoch milliseconds of the first event.
    pub start_ms: i64,
    pub teams: usize,
    pub channels_per_team: usize,
    pub users: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            events: 1000,
            seed: 0,
            start_ms: DEFAULT_START_MS,
            teams: 3,
            channels_per_team: 8,
            users: 148,
        }
    }
}

/// What `generate` wrote: event count, bytes (newlines included) and events per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    pub events: u64,
    pub bytes: u64,
    pub by_kind: BTreeMap<String, u64>,
}

/// Writes exactly `options.events` events as NDJSON (one JSON object per line, '\n' terminated).
pub fn generate(options: &GenerateOptions, out: &mut impl Write) -> io::Result<GenerateSummary> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    let mut generator = EventGenerator::new(options);
    let mut summary = GenerateSummary::default();
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut line = Vec::with_capacity(1024);
    while let Some((kind, event)) = generator.next_event() {
        line.clear();
        serde_json::to_writer(&mut line, &event)?;
        line.push(b'\n');
        out.write_all(&line)?;
        summary.events += 1;
        summary.bytes += line.len() as u64;
        *by_kind.entry(kind).or_default() += 1;
    }
    out.flush()?;
    summary.by_kind = by_kind
        .into_iter()
        .map(|(kind, n)| (kind.to_owned(), n))
        .collect();
    Ok(summary)
}

/// One step of the simulation; prerequisites (channel creation, joins) are added around it.
#[derive(Clone, Copy)]
enum Action {
    Post,
    Reply,
    Edit,
    Delete,
    React,
    Unreact,
    File,
    Join,
    Leave,
    Rename,
    Archive,
}

/// Relative weights, tuned so that with bursts and prerequisites the mix lands near: posts 60%
/// (a quarter of them replies), reactions 20%, edits 5%, files 3%, deletes 2%, removals 2%.
const ACTION_WEIGHTS: [(Action, u32); 11] = [
    (Action::Post, 4400),
    (Action::Reply, 1600),
    (Action::Edit, 550),
    (Action::Delete, 220),
    (Action::React, 1000),
    (Action::Unreact, 230),
    (Action::File, 330),
    (Action::Join, 60),
    (Action::Leave, 50),
    (Action::Rename, 5),
    (Action::Archive, 2),
];

struct RecentPost {
    id: String,
    author: usize,
    thread_root: Option<String>,
    reactions: Vec<(usize, &'static str)>,
}

struct Channel {
    team: usize,
    id: String,
    display_name: String,
    /// "O" public, "P" private, "D" direct (Mattermost's codes).
    channel_type: &'static str,
    /// Who may speak here, most active first (speakers are drawn by Zipf over this order).
    audience: Vec<usize>,
    speaker_zipf: Zipf<f64>,
    created: bool,
    archived: bool,
    /// Indexed by user.
    members: Vec<bool>,
    recent: VecDeque<RecentPost>,
}

/// Many reactions in a row on one popular post.
struct Burst {
    channel: usize,
    post_id: String,
    remaining: u32,
}

/// Iterator form used by benchmarks: yields each event as a `serde_json::Value`, same sequence
/// as [`generate`].
pub struct EventGenerator {
    rng: ChaCha8Rng,
    seed: u64,
    total: u64,
    yielded: u64,
    /// Events built so far; event and post ids are numbered by it.
    built: u64,
    events_in_step: u32,
    now_ms: i64,
    users: Vec<&'static str>,
    teams: Vec<String>,
    channels: Vec<Channel>,
    /// Channels by popularity, drawn by Zipf.
    channel_order: Vec<usize>,
    channel_zipf: Zipf<f64>,
    recent_cap: usize,
    vocabulary: Vec<String>,
    word_zipf: Zipf<f64>,
    gap_seconds: Exp<f64>,
    queue: VecDeque<(&'static str, Value)>,
    burst: Option<Burst>,
}

impl EventGenerator {
    pub fn new(options: &GenerateOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let custodians: Vec<&'static str> = CUSTODIANS_TSV
            .lines()
            .filter_map(|line| line.split('\t').next())
            .collect();
        let n_users = options.users.clamp(1, custodians.len());
        let users: Vec<&'static str> = custodians.into_iter().take(n_users).collect();
        let n_teams = options.teams.max(1);
        let per_team = options.channels_per_team.max(1);
        let mut channels = Vec::with_capacity(n_teams * per_team);
        let mut used_ids = BTreeSet::new();
        let (mut n_open, mut n_private) = (0, 0);
        for team in 0..n_teams {
            // Each user has a home team; some also belong to others.
            let mut roster: Vec<usize> = (0..n_users)
                .filter(|&user| user % n_teams == team || rng.gen_bool(0.15))
                .collect();
            while roster.len() < n_users.min(2) {
                let user = rng.gen_range(0..n_users);
                if !roster.contains(&user) {
                    roster.push(user);
                }
            }
            for k in 0..per_team {
                let mut audience = roster.clone();
                audience.shuffle(&mut rng);
                let (channel_type, mut id, display_name) =
                    if per_team >= 4 && k == per_team - 1 && audience.len() >= 2 {
                        audience.truncate(2);
                        let mut pair = [users[audience[0]], users[audience[1]]];
                        pair.sort_unstable();
                        ("D", format!("{}__{}", pair[0], pair[1]), pair.join(", "))
                    } else if k % 4 == 3 {
                        audience.truncate((audience.len() / 3).max(2));
                        n_private += 1;
                        let id = pool_name(PRIVATE_CHANNELS, n_private - 1);
                        ("P", id.clone(), title_case(&id))
                    } else {
                        n_open += 1;
                        let id = pool_name(OPEN_CHANNELS, n_open - 1);
                        ("O", id.clone(), title_case(&id))
                    };
                if used_ids.contains(&id) {
                    id = format!("{id}-{team}");
                }
                used_ids.insert(id.clone());
                channels.push(Channel {
                    team,
                    id,
                    display_name,
                    channel_type,
                    speaker_zipf: Zipf::new(audience.len() as u64, 1.5)
                        .expect("every audience has a user"),
                    audience,
                    created: false,
                    archived: false,
                    members: vec![false; n_users],
                    recent: VecDeque::new(),
                });
            }
        }
        let mut channel_order: Vec<usize> = (0..channels.len()).collect();
        channel_order.shuffle(&mut rng);
        let vocabulary = build_vocabulary();
        Self {
            rng,
            seed: options.seed,
            total: options.events,
            yielded: 0,
            built: 0,
            events_in_step: 0,
            now_ms: options.start_ms,
            users,
            teams: (0..n_teams).map(|team| pool_name(TEAMS, team)).collect(),
            channel_zipf: Zipf::new(channels.len() as u64, 0.8).expect("there is a channel"),
            recent_cap: (RECENT_POSTS_TOTAL / channels.len()).max(MIN_RECENT_PER_CHANNEL),
            channels,
            channel_order,
            word_zipf: Zipf::new(vocabulary.len() as u64, 1.1)
                .expect("the vocabulary is not empty"),
            vocabulary,
            gap_seconds: Exp::new(1.0 / 15.0).expect("a positive rate is valid"),
            queue: VecDeque::new(),
            burst: None,
        }
    }

    fn next_event(&mut self) -> Option<(&'static str, Value)> {
        if self.yielded >= self.total {
            return None;
        }
        while self.queue.is_empty() {
            self.step();
        }
        self.yielded += 1;
        self.queue.pop_front()
    }

    /// Runs one action; always queues at least one event (a failed action becomes a post).
    fn step(&mut self) {
        self.events_in_step = 0;
        if let Some(burst) = self.burst.take() {
            self.events_in_step = 1;
            if self.react_to(burst.channel, &burst.post_id) {
                if burst.remaining > 1 {
                    self.burst = Some(Burst {
                        remaining: burst.remaining - 1,
                        ..burst
                    });
                }
                return;
            }
            self.events_in_step = 0;
        }
        self.advance(false);
        let total: u32 = ACTION_WEIGHTS.iter().map(|(_, weight)| weight).sum();
        let mut roll = self.rng.gen_range(0..total);
        let mut action = Action::Post;
        for (candidate, weight) in ACTION_WEIGHTS {
            if roll < weight {
                action = candidate;
                break;
            }
            roll -= weight;
        }
        let done = match action {
            Action::Post => self.do_post(false),
            Action::Reply => self.do_post(true),
            Action::Edit => self.do_about_post("edit"),
            Action::Delete => self.do_about_post("delete"),
            Action::File => self.do_about_post("file"),
            Action::React => self.do_react(),
            Action::Unreact => self.do_unreact(),
            Action::Join => self.do_join(),
            Action::Leave => self.do_leave(),
            Action::Rename => self.do_rename(),
            Action::Archive => self.do_archive(),
        };
        if !done {
            self.do_post(false);
        }
    }

    /// Moves the clock: a step waits a few hundred ms to minutes (sometimes not at all, a
    /// burst); events that follow within a step wait at most a second or two.
    fn advance(&mut self, follow_up: bool) {
        let delta_ms = if follow_up {
            if self.rng.gen_bool(0.4) {
                0
            } else {
                self.rng.gen_range(1..1500)
            }
        } else if self.rng.gen_bool(0.06) {
            0
        } else {
            let seconds = self.gap_seconds.sample(&mut self.rng);
            ((seconds * 1000.0) as i64).clamp(150, 20 * 60 * 1000)
        };
        self.now_ms = self.now_ms.saturating_add(delta_ms);
    }

    /// Starts an event with the fields every kind has; returns it and its sequence number.
    fn begin(
        &mut self,
        kind: &'static str,
        channel: usize,
        user: usize,
    ) -> (Map<String, Value>, u64) {
        if self.events_in_step > 0 {
            self.advance(true);
        }
        self.events_in_step += 1;
        let n = self.built;
        self.built += 1;
        // Mostly RFC 3339 with milliseconds in UTC, sometimes integer epoch milliseconds.
        let at = match DateTime::from_timestamp_millis(self.now_ms) {
            Some(time) if self.rng.gen_bool(0.85) => {
                Value::from(time.to_rfc3339_opts(SecondsFormat::Millis, true))
            }
            _ => Value::from(self.now_ms),
        };
        let channel = &self.channels[channel];
        let mut event = Map::new();
        event.insert("id".into(), Value::from(format!("gen-{}-{n}", self.seed)));
        event.insert("kind".into(), Value::from(kind));
        event.insert("at".into(), at);
        event.insert(
            "team".into(),
            Value::from(self.teams[channel.team].as_str()),
        );
        event.insert("channel".into(), Value::from(channel.id.as_str()));
        event.insert("user".into(), Value::from(self.users[user]));
        (event, n)
    }

    /// Queues the event, first giving some a `{"client": ...}` props.
    fn push(&mut self, kind: &'static str, mut event: Map<String, Value>) {
        if !event.contains_key("props") && !kind.starts_with("member") && self.rng.gen_bool(0.3) {
            event.insert(
                "props".into(),
                json!({ "client": pick(&mut self.rng, CLIENTS) }),
            );
        }
        self.queue.push_back((kind, Value::Object(event)));
    }

    /// Queues `channel_create` (first use) and `member_join` (first time, or after leaving).
    fn ensure_member(&mut self, channel: usize, user: usize) {
        if !self.channels[channel].created {
            self.channels[channel].created = true;
            let (mut event, _) = self.begin("channel_create", channel, user);
            let created = &self.channels[channel];
            let props = json!({ "name": created.id, "display_name": created.display_name, "channel_type": created.channel_type });
            event.insert("props".into(), props);
            self.push("channel_create", event);
        }
        if !self.channels[channel].members[user] {
            self.channels[channel].members[user] = true;
            let (event, _) = self.begin("member_join", channel, user);
            self.push("member_join", event);
        }
    }

    /// A channel that is not archived, popular ones more often.
    fn pick_channel(&mut self) -> usize {
        for _ in 0..8 {
            let channel = self.channel_order
                [sample_rank(&self.channel_zipf, self.channel_order.len(), &mut self.rng)];
            if !self.channels[channel].archived {
                return channel;
            }
        }
        // Archiving always leaves each team active channels, so this finds one.
        self.channel_order
            .iter()
            .copied()
            .find(|&channel| !self.channels[channel].archived)
            .unwrap_or(0)
    }

    fn pick_speaker(&mut self, channel: usize) -> usize {
        let channel = &self.channels[channel];
        channel.audience[sample_rank(&channel.speaker_zipf, channel.audience.len(), &mut self.rng)]
    }

    /// Mostly someone already in the channel (reactions, leaves); else a likely speaker.
    fn pick_member(&mut self, channel: usize) -> usize {
        let state = &self.channels[channel];
        let is_member = |user: &usize| state.members[*user];
        let n_members = state.audience.iter().filter(|user| is_member(user)).count();
        if n_members > 0 && self.rng.gen_bool(0.85) {
            let k = self.rng.gen_range(0..n_members);
            if let Some(&user) = state.audience.iter().filter(|user| is_member(user)).nth(k) {
                return user;
            }
        }
        self.pick_speaker(channel)
    }

    /// A recent post of some channel, the latest few most often: (channel, ring index).
    fn pick_post(&mut self) -> Option<(usize, usize)> {
        let channel = self.pick_channel();
        let len = self.channels[channel].recent.len();
        if len == 0 {
            return None;
        }
        let window = if self.rng.gen_bool(0.7) {
            len.min(12)
        } else {
            len
        };
        Some((channel, len - 1 - self.rng.gen_range(0..window)))
    }

    fn do_post(&mut self, reply: bool) -> bool {
        let (channel, parent) = if reply {
            let Some((channel, index)) = self.pick_post() else {
                return false;
            };
            let post = &self.channels[channel].recent[index];
            (
                channel,
                Some(post.thread_root.clone().unwrap_or_else(|| post.id.clone())),
            )
        } else {
            (self.pick_channel(), None)
        };
        let user = self.pick_speaker(channel);
        self.ensure_member(channel, user);
        let (mut event, n) = self.begin("post", channel, user);
        let post_id = format!("p-{}-{n}", self.seed);
        event.insert("post".into(), Value::from(post_id.as_str()));
        if let Some(parent) = &parent {
            event.insert("parent".into(), Value::from(parent.as_str()));
        }
        event.insert("text".into(), Value::from(self.text()));
        if self.rng.gen_bool(0.04) {
            event.insert("files".into(), self.files());
        }
        self.push("post", event);
        let recent = &mut self.channels[channel].recent;
        recent.push_back(RecentPost {
            id: post_id,
            author: user,
            thread_root: parent,
            reactions: Vec::new(),
        });
        if recent.len() > self.recent_cap {
            recent.pop_front();
        }
        true
    }

    /// An edit, delete or file event by the author of a recent post.
    fn do_about_post(&mut self, kind: &'static str) -> bool {
        let Some((channel, index)) = self.pick_post() else {
            return false;
        };
        let post = &self.channels[channel].recent[index];
        let (post_id, author) = (post.id.clone(), post.author);
        self.ensure_member(channel, author);
        let (mut event, _) = self.begin(kind, channel, author);
        event.insert("post".into(), Value::from(post_id.as_str()));
        match kind {
            "edit" => {
                event.insert("text".into(), Value::from(self.text()));
            }
            "file" => {
                event.insert("files".into(), self.files());
            }
            _ => {
                // A deleted post (and a deleted thread root's replies) is never referenced again.
                let recent = &mut self.channels[channel].recent;
                recent.remove(index);
                recent.retain(|post| post.thread_root.as_deref() != Some(post_id.as_str()));
            }
        }
        self.push(kind, event);
        true
    }

    fn do_react(&mut self) -> bool {
        let Some((channel, index)) = self.pick_post() else {
            return false;
        };
        let post_id = self.channels[channel].recent[index].id.clone();
        if self.react_to(channel, &post_id) && self.rng.gen_bool(BURST_PROBABILITY) {
            let remaining = self.rng.gen_range(5..40);
            self.burst = Some(Burst {
                channel,
                post_id,
                remaining,
            });
        }
        true
    }

    fn react_to(&mut self, channel: usize, post_id: &str) -> bool {
        let Some(index) = self.channels[channel]
            .recent
            .iter()
            .position(|post| post.id == post_id)
        else {
            return false;
        };
        let user = self.pick_member(channel);
        let emoji = *pick(&mut self.rng, EMOJI);
        self.ensure_member(channel, user);
        let (mut event, _) = self.begin("reaction_add", channel, user);
        event.insert("post".into(), Value::from(post_id));
        event.insert("emoji".into(), Value::from(emoji));
        self.push("reaction_add", event);
        let reactions = &mut self.channels[channel].recent[index].reactions;
        if reactions.len() < MAX_REACTIONS_PER_POST && !reactions.contains(&(user, emoji)) {
            reactions.push((user, emoji));
        }
        true
    }

    fn do_unreact(&mut self) -> bool {
        let channel = self.pick_channel();
        let recent = &self.channels[channel].recent;
        let reacted: Vec<usize> = (0..recent.len())
            .filter(|&i| !recent[i].reactions.is_empty())
            .collect();
        if reacted.is_empty() {
            return false;
        }
        let post = &mut self.channels[channel].recent[*pick(&mut self.rng, &reacted)];
        let (user, emoji) = post
            .reactions
            .swap_remove(self.rng.gen_range(0..post.reactions.len()));
        let post_id = post.id.clone();
        self.ensure_member(channel, user);
        let (mut event, _) = self.begin("reaction_remove", channel, user);
        event.insert("post".into(), Value::from(post_id));
        event.insert("emoji".into(), Value::from(emoji));
        self.push("reaction_remove", event);
        true
    }

    fn do_join(&mut self) -> bool {
        let channel = self.pick_channel();
        let state = &self.channels[channel];
        let user = state.audience[self.rng.gen_range(0..state.audience.len())];
        if state.channel_type == "D" || state.members[user] {
            return false;
        }
        self.ensure_member(channel, user);
        true
    }

    fn do_leave(&mut self) -> bool {
        let channel = self.pick_channel();
        let state = &self.channels[channel];
        let n_members = state.members.iter().filter(|&&member| member).count();
        if state.channel_type == "D" || n_members < 2 {
            return false;
        }
        let user = self.pick_member(channel);
        if !self.channels[channel].members[user] {
            return false;
        }
        self.channels[channel].members[user] = false;
        let (event, _) = self.begin("member_leave", channel, user);
        self.push("member_leave", event);
        true
    }

    fn do_rename(&mut self) -> bool {
        let channel = self.pick_channel();
        if !self.channels[channel].created || self.channels[channel].channel_type == "D" {
            return false;
        }
        let user = self.pick_speaker(channel);
        self.ensure_member(channel, user);
        let suffix = *pick(&mut self.rng, RENAME_SUFFIXES);
        let state = &mut self.channels[channel];
        let display_name = format!("{} {suffix}", title_case(&state.id));
        let previous = std::mem::replace(&mut state.display_name, display_name);
        let props = json!({
            "name": state.id,
            "display_name": state.display_name,
            "previous_display_name": previous,
            "channel_type": state.channel_type,
        });
        let (mut event, _) = self.begin("channel_rename", channel, user);
        event.insert("props".into(), props);
        self.push("channel_rename", event);
        true
    }

    /// Rare; keeps at least two active channels per team, never archives a direct channel.
    fn do_archive(&mut self) -> bool {
        let channel = self.pick_channel();
        let state = &self.channels[channel];
        let team = state.team;
        let active_in_team = self
            .channels
            .iter()
            .filter(|other| other.team == team && !other.archived && other.channel_type != "D")
            .count();
        if !state.created || state.channel_type == "D" || active_in_team <= 2 {
            return false;
        }
        let user = self.pick_speaker(channel);
        self.ensure_member(channel, user);
        let (mut event, _) = self.begin("channel_archive", channel, user);
        event.insert(
            "props".into(),
            json!({ "channel_type": self.channels[channel].channel_type }),
        );
        self.push("channel_archive", event);
        self.channels[channel].archived = true;
        self.channels[channel].recent = VecDeque::new();
        true
    }

    fn push_sentence(&mut self, out: &mut String) {
        let n_words = match self.rng.gen_range(0..100) {
            0..75 => self.rng.gen_range(3..=12),
            75..95 => self.rng.gen_range(13..=25),
            _ => self.rng.gen_range(26..=40),
        };
        for word_idx in 0..n_words {
            let word = &self.vocabulary
                [sample_rank(&self.word_zipf, self.vocabulary.len(), &mut self.rng)];
            if word_idx == 0 {
                let mut chars = word.chars();
                out.extend(chars.next().into_iter().flat_map(char::to_uppercase));
                out.push_str(chars.as_str());
            } else {
                out.push_str(if self.rng.gen_bool(0.08) { ", " } else { " " });
                out.push_str(word);
            }
        }
        out.push(*pick(&mut self.rng, &['.', '.', '.', '.', '?', '!']));
    }

    /// A message body: mostly one to three sentences, sometimes long (a few KB) or with code,
    /// non-Latin text or a searchable phrase.
    fn text(&mut self) -> String {
        let mut text = String::new();
        let roll: f64 = self.rng.r#gen();
        let n_sentences = if roll < 0.015 {
            self.rng.gen_range(20..=80)
        } else {
            *pick(&mut self.rng, &[1, 1, 1, 1, 1, 1, 2, 2, 2, 3])
        };
        for sentence_idx in 0..n_sentences {
            if sentence_idx > 0 {
                text.push_str(if self.rng.gen_bool(0.15) { "\n\n" } else { " " });
            }
            self.push_sentence(&mut text);
        }
        if (0.015..0.035).contains(&roll) {
            let (language, code) = *pick(&mut self.rng, CODE_SNIPPETS);
            text.push_str(&format!("\n```{language}\n{code}\n```"));
        }
        if self.rng.gen_bool(0.07) {
            text.push(' ');
            text.push_str(pick::<&str>(&mut self.rng, NON_LATIN));
        }
        if self.rng.gen_bool(0.04) {
            let (before, after) = *pick(&mut self.rng, PHRASE_TEMPLATES);
            let phrase = *pick(&mut self.rng, SEARCHABLE_PHRASES);
            text.push_str(&format!(" {before}{phrase}{after}"));
        }
        if text.len() > MAX_TEXT_BYTES {
            let mut cut = MAX_TEXT_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }

    fn files(&mut self) -> Value {
        let n_files = *pick(&mut self.rng, &[1, 1, 1, 1, 1, 1, 1, 2, 2, 3]);
        let files = (0..n_files).map(|_| {
            let (stem, extension, mime) = *pick(&mut self.rng, FILE_TYPES);
            let number = self.rng.gen_range(1..1000);
            let size = 10_f64.powf(self.rng.gen_range(2.5..7.7)) as u64;
            let sha256: String = (0..4).map(|_| format!("{:016x}", self.rng.r#gen::<u64>())).collect();
            json!({ "name": format!("{stem}-{number}.{extension}"), "size": size, "sha256": sha256, "mime": mime })
        });
        Value::Array(files.collect())
    }
}

impl Iterator for EventGenerator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        self.next_event().map(|(_, event)| event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.total - self.yielded).unwrap_or(usize::MAX);
        (remaining, Some(remaining))
    }
}

/// A 0-based rank drawn from a Zipf over `len` items.
fn sample_rank(zipf: &Zipf<f64>, len: usize, rng: &mut ChaCha8Rng) -> usize {
    (zipf.sample(rng) as usize)
        .saturating_sub(1)
        .min(len.saturating_sub(1))
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// The `index`th name of a pool, suffixed `-2`, `-3`, ... once the pool is used up.
fn pool_name(pool: &[&str], index: usize) -> String {
    let base = pool[index % pool.len()];
    if index < pool.len() {
        base.to_owned()
    } else {
        format!("{base}-{}", index / pool.len() + 1)
    }
}

fn title_case(slug: &str) -> String {
    let words: Vec<String> = slug
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .into_iter()
                .flat_map(char::to_uppercase)
                .chain(chars)
                .collect()
        })
        .collect();
    words.join(" ")
}

/// Real words first (the most frequent ranks), then pronounceable pseudo-words from a fixed
/// seed, up to `VOCABULARY_SIZE`. The searchable phrases' words are kept out.
fn build_vocabulary() -> Vec<String> {
    let reserved = ["wire", "transfer", "offshore", "raptor", "mark"];
    let mut seen = BTreeSet::new();
    let mut vocabulary = Vec::with_capacity(VOCABULARY_SIZE);
    let mut rng = ChaCha8Rng::seed_from_u64(VOCABULARY_SEED);
    let mut real_words = REAL_WORDS.split_whitespace();
    while vocabulary.len() < VOCABULARY_SIZE {
        let word = match real_words.next() {
            Some(word) => word.to_owned(),
            None => (0..rng.gen_range(2..=4))
                .map(|_| *pick(&mut rng, SYLLABLES))
                .collect(),
        };
        if !reserved.contains(&word.as_str()) && seen.insert(word.clone()) {
            vocabulary.push(word);
        }
    }
    vocabulary
}

const REAL_WORDS: &str = "the to and of a in we for is on that it this with be at by from are as will \
    have can not you our i they or if but about all so what up out do get just need please there when \
    who how new more some was has let me know thanks today tomorrow yesterday morning afternoon \
    gas power price prices deal deals trade trading desk book position positions curve forward swap \
    swaps option options hedge hedges volatility spread basis index contract contracts counterparty \
    counterparties credit risk exposure limit limits margin collateral settlement invoice pipeline \
    capacity storage injection withdrawal megawatt mmbtu peak offpeak load demand supply generation \
    transmission grid california iso ferc tariff regulatory filing legal counsel memo review approval \
    schedule nomination volume volumes delivery hub henry ercot pjm nymex futures strike premium put \
    expiry term month quarter year daily weekly monthly report reports model desk spreadsheet numbers \
    variance pnl earnings revenue cost costs budget forecast plan meeting agenda update status issue \
    question answer team manager director analyst trader traders scheduler structuring origination \
    accounting audit auditors board committee policy compliance document documents draft final signed \
    attached email office houston portland london calgary omaha customer customers utility utilities \
    broker brokers exchange online platform system systems server outage weather temperature heat cold \
    winter summer hydro wind coal nuclear plant plants unit ramp maintenance accrual reserve reserves \
    valuation liquidity cash flow financing equity debt partnership vehicle structure entity vendor \
    purchase sale buy sell bid offer ask close open high low settle fixed floating physical financial \
    notional quantity rate rates interest bank banks fund payment payments account wells dabhol india \
    brazil mexico canada texas oregon nevada arizona sacramento sierra pacific northwest southwest east \
    west north south midwest gulf permian basin rockies chicago citygate transco tennessee el paso \
    northern natural kern river socal pge edison sempra duke dynegy reliant williams aquila mirant \
    enron broadband metals pulp paper weather derivatives portal eol ticket confirm confirms confirmed \
    booked rebook cancel cancelled correct error fix check review approve approved pending signed \
    deadline friday monday tuesday wednesday thursday weekend asap eod fyi attached below above call \
    discuss conference room floor building tower lunch dinner flight trip visit";

#[rustfmt::skip]
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ter", "van", "sol", "dra", "pel", "quin", "ro", "sta", "ne", "bri", "tor", "gal", "ve",
    "lin", "mor", "sen", "da", "ri", "ox", "tel", "bu", "cor", "fen", "gri", "hal", "jo", "ku", "las", "nu",
];
#[rustfmt::skip]
const TEAMS: &[&str] = &[
    "energy-trading", "legal", "west-desk", "gas-structuring", "risk-management", "enron-online",
    "regulatory-affairs", "executive",
];
#[rustfmt::skip]
const OPEN_CHANNELS: &[&str] = &[
    "town-square", "off-topic", "gas-daily", "power-west", "california-iso", "deal-flow", "credit-risk",
    "contracts", "weather", "it-help", "announcements", "nymex-close", "pipeline-capacity", "broadband",
    "scheduling", "origination",
];
#[rustfmt::skip]
const PRIVATE_CHANNELS: &[&str] = &[
    "ljm-structures", "board-prep", "hr-confidential", "audit-committee", "legal-privileged", "special-projects",
];
const RENAME_SUFFIXES: &[&str] = &["2024", "Archive", "Q3", "Old", "Team", "Ops", "Restricted"];
const CLIENTS: &[&str] = &["desktop", "web", "ios", "android"];
#[rustfmt::skip]
const EMOJI: &[&str] = &[
    "+1", "heart", "laughing", "eyes", "fire", "white_check_mark", "money_with_wings", "chart_with_upwards_trend",
    "zap", "100", "rocket", "thinking_face", "pray", "tada", "-1",
];
#[rustfmt::skip]
const FILE_TYPES: &[(&str, &str, &str)] = &[
    ("forward-curve", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("isda-master-draft", "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("deal-ticket", "pdf", "application/pdf"), ("position-report", "pdf", "application/pdf"),
    ("gas-daily", "csv", "text/csv"), ("screenshot", "png", "image/png"),
    ("site-photo", "jpg", "image/jpeg"), ("notes", "txt", "text/plain"),
];
#[rustfmt::skip]
const NON_LATIN: &[&str] = &[
    "café résumé Zürich Ångström naïve façade", "Привет, когда будет отчёт по газу?",
    "Σας ευχαριστώ για την ενημέρωση", "東京の電力価格は上昇しています", "天然气价格今天上涨了",
    "전력 거래 보고서 확인 부탁드립니다", "🚀🔥👍", "📈 up again 💰", "✅ done, merci beaucoup",
    "São Paulo contrato assinado ✍️",
];
const SEARCHABLE_PHRASES: &[&str] = &["wire transfer", "offshore", "raptor", "mark-to-market"];
#[rustfmt::skip]
const PHRASE_TEMPLATES: &[(&str, &str)] = &[
    ("Can someone check the ", " numbers?"), ("Need sign-off on the ", " before noon."),
    ("Heads up on ", " for the Q3 book."), ("Who owns the ", " follow-up?"),
    ("Keep the ", " details off email."),
];
#[rustfmt::skip]
const CODE_SNIPPETS: &[(&str, &str)] = &[
    ("sql", "SELECT deal_id, counterparty, SUM(volume) AS mmbtu\nFROM deals\nWHERE trade_date = CURRENT_DATE\nGROUP BY deal_id, counterparty;"),
    ("python", "def mtm(position, curve):\n    return sum(q * (curve[m] - p) for m, q, p in position)"),
    ("rust", "fn spread(a: f64, b: f64) -> f64 {\n    (a - b).abs()\n}"),
    ("", "ERROR 2001-10-16 09:14:02 eol-gateway: timeout talking to risk engine (retry 3/3)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    type Event = Map<String, Value>;

    fn corpus(events: u64, seed: u64) -> (Vec<u8>, GenerateSummary) {
        corpus_with(&GenerateOptions {
            events,
            seed,
            ..GenerateOptions::default()
        })
    }

    fn corpus_with(options: &GenerateOptions) -> (Vec<u8>, GenerateSummary) {
        let mut out = Vec::new();
        let summary = generate(options, &mut out).expect("writing to a Vec cannot fail");
        (out, summary)
    }

    fn parse(bytes: &[u8]) -> Vec<Event> {
        let text = std::str::from_utf8(bytes).expect("output is UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'));
        let parse_line = |line: &str| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            other => panic!("not a JSON object: {other:?} in {line}"),
        };
        text.lines().map(parse_line).collect()
    }

    fn field(event: &Event, name: &str) -> String {
        let value = event.get(name).and_then(Value::as_str);
        value
            .unwrap_or_else(|| panic!("{name} missing in {event:?}"))
            .to_owned()
    }

    fn at_ms(event: &Event) -> i64 {
        match &event["at"] {
            Value::Number(number) => number.as_i64().expect("integer epoch ms"),
            Value::String(text) => {
                assert!(
                    text.ends_with('Z') && text.len() == 24,
                    "not ms-precision UTC: {text}"
                );
                DateTime::parse_from_rfc3339(text)
                    .expect("RFC 3339")
                    .timestamp_millis()
            }
            other => panic!("bad at: {other:?}"),
        }
    }

    /// Checks every wire-format, reference and ordering invariant the generator promises.
    fn check_invariants(events: &[Event]) {
        let (mut ids, mut live_posts, mut created, mut archived) = (
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
        );
        let (mut members, mut reactions) = (BTreeSet::new(), BTreeSet::new());
        let mut last_at = i64::MIN;
        for event in events {
            let (id, kind, user) = (
                field(event, "id"),
                field(event, "kind"),
                field(event, "user"),
            );
            assert!(
                !id.is_empty() && id.len() <= 256 && ids.insert(id.clone()),
                "bad or duplicate id {id}"
            );
            assert!(at_ms(event) >= last_at, "time went backwards at {id}");
            last_at = at_ms(event);
            let scope = (field(event, "team"), field(event, "channel"));
            let membership = (scope.clone(), user.clone());
            assert!(!archived.contains(&scope), "{id} in an archived channel");
            assert!(
                kind == "channel_create" || created.contains(&scope),
                "{id} before channel_create"
            );
            match kind.as_str() {
                "channel_create" => assert!(created.insert(scope.clone()), "{id} creates twice"),
                "member_join" => assert!(members.insert(membership), "{id} joins twice"),
                "member_leave" => {
                    assert!(members.remove(&membership), "{id} leaves without joining")
                }
                _ => assert!(
                    members.contains(&membership),
                    "{id}: {user} acts without joining"
                ),
            }
            for file in event
                .get("files")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let sha = file["sha256"].as_str().expect("sha256");
                assert!(sha.len() == 64 && sha.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
                assert!(
                    file["name"].is_string() && file["size"].is_u64() && file["mime"].is_string()
                );
            }
            if matches!(kind.as_str(), "post" | "edit") {
                let text = field(event, "text");
                assert!(!text.is_empty() && text.len() <= 64 * 1024);
            }
            if kind == "post" {
                if let Some(parent) = event.get("parent").and_then(Value::as_str) {
                    assert!(live_posts.contains(parent), "{id}: unknown parent {parent}");
                }
                assert!(live_posts.insert(field(event, "post")));
                continue;
            }
            if !event.contains_key("post") {
                assert!(
                    kind.starts_with("channel_") || kind.starts_with("member_"),
                    "{id}: unknown kind {kind}"
                );
                if kind == "channel_archive" {
                    archived.insert(scope);
                }
                continue;
            }
            let post = field(event, "post");
            assert!(
                live_posts.contains(&post),
                "{id}: {kind} of unknown or deleted post {post}"
            );
            match kind.as_str() {
                "edit" => {}
                "delete" => assert!(live_posts.remove(&post)),
                "file" => assert!(!event["files"].as_array().expect("files").is_empty()),
                "reaction_add" => {
                    reactions.insert((post, user, field(event, "emoji")));
                }
                "reaction_remove" => {
                    assert!(
                        reactions.remove(&(post, user, field(event, "emoji"))),
                        "{id}: never added"
                    )
                }
                other => panic!("{id}: unknown kind {other}"),
            }
        }
    }

    #[test]
    fn same_options_give_identical_bytes_and_another_seed_differs() {
        let (first, _) = corpus(2000, 7);
        assert_eq!(first, corpus(2000, 7).0);
        assert_ne!(first, corpus(2000, 8).0);
    }

    #[test]
    fn writes_exactly_the_requested_number_of_events() {
        for n_events in [0, 1, 2, 3, 17, 1000] {
            let (bytes, summary) = corpus(n_events, 3);
            assert_eq!(parse(&bytes).len() as u64, n_events);
            assert_eq!(summary.events, n_events);
            assert_eq!(summary.bytes, bytes.len() as u64);
            assert_eq!(summary.by_kind.values().sum::<u64>(), n_events);
        }
    }

    #[test]
    fn iterator_yields_the_same_sequence_as_generate() {
        let options = GenerateOptions {
            events: 1500,
            seed: 11,
            ..GenerateOptions::default()
        };
        let generator = EventGenerator::new(&options);
        assert_eq!(generator.size_hint(), (1500, Some(1500)));
        let mut lines = Vec::new();
        for event in generator {
            serde_json::to_writer(&mut lines, &event).expect("serialize");
            lines.push(b'\n');
        }
        assert_eq!(lines, corpus_with(&options).0);
    }

    #[test]
    fn every_event_is_valid_ordered_and_references_what_came_before() {
        let events = parse(&corpus(5000, 42).0);
        check_invariants(&events);
        let times: Vec<i64> = events.iter().map(at_ms).collect();
        assert!(
            times.windows(2).any(|pair| pair[0] == pair[1]),
            "no identical timestamps"
        );
        let n_strings = events
            .iter()
            .filter(|event| event["at"].is_string())
            .count();
        let n_integers = events.len() - n_strings;
        assert!(
            (events.len() / 20..events.len() * 3 / 10).contains(&n_integers),
            "mostly RFC 3339, some integers"
        );
    }

    #[test]
    fn small_and_odd_configurations_stay_valid() {
        for (teams, channels_per_team, users) in
            [(1, 1, 1), (5, 1, 2), (2, 4, 3), (0, 0, 0), (9, 20, 500)]
        {
            let options = GenerateOptions {
                events: 3000,
                seed: 5,
                teams,
                channels_per_team,
                users,
                ..Default::default()
            };
            check_invariants(&parse(&corpus_with(&options).0));
        }
    }

    #[test]
    fn kind_mix_is_roughly_as_specified() {
        let (bytes, summary) = corpus(20_000, 1);
        let events = parse(&bytes);
        check_invariants(&events);
        let share = |kind: &str| summary.by_kind.get(kind).copied().unwrap_or(0) as f64 / 20_000.0;
        for (kind, low, high) in [
            ("post", 0.50, 0.70),
            ("reaction_add", 0.12, 0.28),
            ("edit", 0.03, 0.07),
            ("delete", 0.01, 0.03),
            ("reaction_remove", 0.005, 0.03),
            ("file", 0.015, 0.045),
            ("member_join", 0.001, 0.10),
            ("member_leave", 0.0005, 0.01),
            ("channel_create", 0.0001, 0.01),
            ("channel_rename", 0.0001, 0.01),
        ] {
            assert!((low..high).contains(&share(kind)), "{kind}: {summary:?}");
        }
        let posts: Vec<&Event> = events
            .iter()
            .filter(|event| event["kind"] == "post")
            .collect();
        let replies = posts
            .iter()
            .filter(|event| event.contains_key("parent"))
            .count() as f64;
        assert!(
            (0.15..0.35).contains(&(replies / posts.len() as f64)),
            "reply share"
        );
        let mut reactions_per_post: BTreeMap<String, u32> = BTreeMap::new();
        for event in events
            .iter()
            .filter(|event| event["kind"] == "reaction_add")
        {
            *reactions_per_post.entry(field(event, "post")).or_default() += 1;
        }
        assert!(
            reactions_per_post.values().any(|&count| count >= 10),
            "no reaction burst"
        );
        let channel_types: BTreeSet<&str> = events
            .iter()
            .filter(|event| event["kind"] == "channel_create")
            .filter_map(|event| event["props"]["channel_type"].as_str())
            .collect();
        assert_eq!(channel_types, BTreeSet::from(["D", "O", "P"]));
    }

    #[test]
    fn text_has_non_latin_long_messages_code_and_rare_searchable_phrases() {
        let texts: Vec<String> = parse(&corpus(5000, 42).0)
            .iter()
            .filter_map(|event| event.get("text").and_then(Value::as_str).map(str::to_owned))
            .collect();
        assert!(texts.iter().any(|text| !text.is_ascii()));
        assert!(
            texts.iter().any(|text| text.len() > 2000),
            "no long message"
        );
        for needle in [
            "Привет",
            "Zürich",
            "Σας",
            "東京",
            "🚀",
            "```",
            "wire transfer",
            "offshore",
            "raptor",
            "mark-to-market",
        ] {
            assert!(
                texts.iter().any(|text| text.contains(needle)),
                "{needle} never appears"
            );
        }
        let n_with_phrase = texts
            .iter()
            .filter(|text| text.contains("wire transfer"))
            .count();
        assert!(
            n_with_phrase < texts.len() / 50,
            "searchable phrases should be rare"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let mut generator = EventGenerator::new(&GenerateOptions {
            events: 30_000,
            ..Default::default()
        });
        generator.by_ref().for_each(drop);
        let remembered: usize = generator
            .channels
            .iter()
            .map(|channel| channel.recent.len())
            .sum();
        assert!(
            remembered <= RECENT_POSTS_TOTAL + MIN_RECENT_PER_CHANNEL * generator.channels.len()
        );
        assert!(generator.queue.len() < 64);
    }

    #[test]
    fn custodians_and_vocabulary_are_complete() {
        let generator = EventGenerator::new(&GenerateOptions::default());
        assert_eq!(
            (generator.users.len(), generator.users[0]),
            (148, "allen-p")
        );
        assert_eq!(generator.vocabulary.len(), VOCABULARY_SIZE);
        assert!(
            !generator
                .vocabulary
                .iter()
                .any(|word| word == "raptor" || word == "offshore")
        );
    }
}
