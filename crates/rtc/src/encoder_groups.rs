//! Which of a mesh's connections share an encoder.
//!
//! One encoder for every connection costs the least CPU, but it must aim at what the thinnest
//! link can carry, so one peer on a poor link makes everyone's picture poor. An encoder per
//! connection costs a full encode per peer. Between the two: connections whose links can carry
//! about the same share an encoder, at the rate the thinnest of them takes, and a link much
//! thinner than the others gets one of its own — at most [`MAX_GROUPS`] encoders per codec,
//! however many peers.
//!
//! Moving a connection to another encoder costs it a keyframe, so groups change reluctantly: a
//! new connection joins a group at once, but existing ones are regrouped only after the
//! grouping has been out of shape for [`REGROUP_AFTER`] (a congestion controller's estimate
//! saws up and down; a dip must not shuffle the peers), and "out of shape" has a margin:
//! a group splits when its thinnest link can carry less than [`KEEP_RATIO`] of its widest, two
//! groups merge when together they would be within [`JOIN_RATIO`]. The wait is for dips, and a
//! link in its first [`SETTLING`] has no rate to dip from: every link starts at the same start
//! estimate, so one that is thin is found so only as its estimate falls in the call's first
//! seconds, and it is split off as soon as it is found not to fit, by [`JOIN_RATIO`] (waiting
//! held every other peer's picture down to the thin link's for those 2 s).
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A connection (a binding of the track), by its number.
pub(crate) type LinkId = u64;

/// At most this many encoders per codec.
pub(crate) const MAX_GROUPS: usize = 3;
/// Links join a group when the thinnest would carry at least this share of the widest's rate.
const JOIN_RATIO: f64 = 0.5;
/// A group is kept until its thinnest link carries less than this share of its widest's.
const KEEP_RATIO: f64 = 0.35;
/// How long a grouping must have been out of shape before the links are regrouped.
const REGROUP_AFTER: Duration = Duration::from_secs(2);
/// A link this new is still finding its rate: a group it makes too wide is split at once.
const SETTLING: Duration = Duration::from_secs(5);

/// Which part of a new grouping keeps an old group's encoder first (see [`Groups::adopt`]).
#[derive(Debug, Clone, Copy)]
enum Heir {
    Thinnest,
    Widest,
}

/// Links that share one encoder. `id` stays the group's for as long as it exists, so that a
/// regrouping can tell which links keep their encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) id: u64,
    pub(crate) links: Vec<LinkId>,
}

#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: Vec<Group>,
    next_id: u64,
    /// Since when the grouping has been out of shape.
    out_of_shape_since: Option<Instant>,
    /// When each link was first grouped.
    joined: HashMap<LinkId, Instant>,
}

impl Groups {
    /// Groups `links`, each with the rate its link can carry (bits per second; rates above what
    /// the picture needs should be given as that, since they make no difference to it).
    pub(crate) fn follow(&mut self, now: Instant, links: &[(LinkId, u32)]) -> &[Group] {
        let rates: HashMap<LinkId, f64> = links
            .iter()
            .map(|&(link, rate)| (link, f64::from(rate.max(1))))
            .collect();
        for group in &mut self.groups {
            group.links.retain(|link| rates.contains_key(link));
        }
        self.groups.retain(|group| !group.links.is_empty());
        self.joined.retain(|link, _| rates.contains_key(link));
        let mut newcomers: Vec<LinkId> = links
            .iter()
            .map(|&(link, _)| link)
            .filter(|link| !self.groups.iter().any(|g| g.links.contains(link)))
            .collect();
        newcomers.sort_by(|a, b| rates[b].total_cmp(&rates[a]));
        for link in newcomers {
            self.joined.insert(link, now);
            self.place(link, &rates);
        }
        let ideal = ideal_partition(&rates);
        if self.in_shape(&rates) || same_partition(&self.groups, &ideal) {
            self.out_of_shape_since = None;
        } else {
            let since = *self.out_of_shape_since.get_or_insert(now);
            if now.duration_since(since) >= REGROUP_AFTER {
                self.adopt(ideal, &rates, Heir::Thinnest);
                self.out_of_shape_since = None;
            }
        }
        if self.settling_link_too_thin(now, &rates) {
            self.adopt(ideal_partition(&rates), &rates, Heir::Widest);
            self.out_of_shape_since = None;
        }
        &self.groups
    }

    /// A new link goes into the group it fits best, or a group of its own while there is room
    /// for one, or else the group nearest its rate.
    fn place(&mut self, link: LinkId, rates: &HashMap<LinkId, f64>) {
        let rate = rates[&link];
        let distance = |group: &Group| {
            let (low, high) = span(group, rates);
            // How far, in octaves, the rate lies outside the group's span.
            (low / rate).log2().max(0.0) + (rate / high).log2().max(0.0)
        };
        let fits = |group: &Group| {
            let (low, high) = span(group, rates);
            close_enough((low.min(rate), high.max(rate)))
        };
        let room = self.groups.len() < MAX_GROUPS;
        let best = self
            .groups
            .iter_mut()
            .map(|group| (fits(group), distance(group), group))
            // Fitting groups first, then the nearest.
            .min_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)));
        match best {
            Some((true, _, group)) => group.links.push(link),
            Some((false, _, group)) if !room => group.links.push(link),
            _ => {
                let id = self.new_id();
                self.groups.push(Group {
                    id,
                    links: vec![link],
                });
            }
        }
    }

    /// Whether a group is spread wider than [`JOIN_RATIO`] by a thinnest link still in its
    /// first [`SETTLING`]. Such a link is judged as a newcomer is, not with the margin kept for
    /// dips: it has no rate to dip from yet, and all links started alike. Held to
    /// [`KEEP_RATIO`], a 300 kbit/s link's estimate had to fall under a third of the others'
    /// start to be split off; from a start of 521 kbit/s (a 640x480 source's) it seldom fell
    /// that far, and the wide link, sent the thin one's picture, carried too little to show
    /// its estimate was worth more: the two stayed on one encoder for the whole call.
    fn settling_link_too_thin(&self, now: Instant, rates: &HashMap<LinkId, f64>) -> bool {
        self.groups.len() < MAX_GROUPS
            && self.groups.iter().any(|group| {
                let (low, high) = span(group, rates);
                !close_enough((low, high))
                    && group.links.iter().any(|link| {
                        rates[link] == low
                            && self
                                .joined
                                .get(link)
                                .is_some_and(|&at| now.duration_since(at) < SETTLING)
                    })
            })
    }

    /// No group spread wider than [`KEEP_RATIO`] (unless the cap on groups forces it), and no
    /// two groups that could be one.
    fn in_shape(&self, rates: &HashMap<LinkId, f64>) -> bool {
        let spans: Vec<(f64, f64)> = self.groups.iter().map(|g| span(g, rates)).collect();
        let any_too_wide = spans.iter().copied().any(too_wide);
        let mergeable = spans.iter().enumerate().any(|(i, a)| {
            spans[i + 1..]
                .iter()
                .any(|b| close_enough((a.0.min(b.0), a.1.max(b.1))))
        });
        !mergeable && (!any_too_wide || self.groups.len() >= MAX_GROUPS)
    }

    /// Takes `partition` as the grouping. A link that moves needs a keyframe, so each part
    /// keeps the encoder one of its links was on, if no part before it took it first: with
    /// [`Heir::Thinnest`], the part with the thinnest links goes first, so when a thin link is
    /// split off the wide ones move to a new encoder (a keyframe is cheap on a wide link and
    /// costly on a thin one) and the thin one keeps its own, already aimed at its rate; when it
    /// rejoins them, they move to its encoder. A link in its first seconds is split off before
    /// the encoder has come down to its rate, and beside links whose estimates may still be
    /// falling too: there [`Heir::Widest`] keeps the encoder for the widest part, and the thin
    /// link moves to a new encoder, which starts at its rate with a keyframe it can carry.
    /// (Measured on `mesh-tiers`: with the thin part keeping it, the 100 kbit/s link, whose
    /// estimate fell a second after the 300 kbit/s one's, moved with the wide links at the first
    /// split and was sent their 640x480 keyframe.)
    fn adopt(&mut self, partition: Vec<Vec<LinkId>>, rates: &HashMap<LinkId, f64>, heir: Heir) {
        let mut old = std::mem::take(&mut self.groups);
        let by_rate = |a: &LinkId, b: &LinkId| rates[a].total_cmp(&rates[b]).then(a.cmp(b));
        let pick = |links: &[LinkId]| match heir {
            Heir::Thinnest => links.iter().copied().min_by(by_rate),
            Heir::Widest => links.iter().copied().max_by(by_rate),
        };
        let mut partition = partition;
        partition.sort_by(|a, b| {
            let (a, b) = (pick(a).unwrap_or_default(), pick(b).unwrap_or_default());
            match heir {
                Heir::Thinnest => by_rate(&a, &b),
                Heir::Widest => by_rate(&b, &a),
            }
        });
        for links in partition {
            let heir = pick(&links)
                .and_then(|link| old.iter().position(|group| group.links.contains(&link)));
            let id = match heir {
                Some(at) => old.swap_remove(at).id,
                None => self.new_id(),
            };
            self.groups.push(Group { id, links });
        }
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Whether a group's span (its thinnest and widest rates) is too wide to keep once its links
/// have settled (one in its first seconds is held to [`close_enough`]).
fn too_wide((low, high): (f64, f64)) -> bool {
    low < high * KEEP_RATIO
}

/// Whether links spanning these rates (thinnest, widest) are close enough to share an encoder:
/// the rule a newcomer joins a group by, two groups merge by, and a link in its first seconds
/// is kept by.
fn close_enough((low, high): (f64, f64)) -> bool {
    low >= high * JOIN_RATIO
}

/// The thinnest and the widest rate in a group.
fn span(group: &Group, rates: &HashMap<LinkId, f64>) -> (f64, f64) {
    group
        .links
        .iter()
        .map(|link| rates[link])
        .fold((f64::MAX, 0.0), |(low, high), rate| {
            (low.min(rate), high.max(rate))
        })
}

/// The grouping a fresh start would choose: from the widest link down, each group takes the
/// links within [`JOIN_RATIO`] of its widest; the last group allowed takes all that remain.
fn ideal_partition(rates: &HashMap<LinkId, f64>) -> Vec<Vec<LinkId>> {
    let mut links: Vec<LinkId> = rates.keys().copied().collect();
    links.sort_by(|a, b| rates[b].total_cmp(&rates[a]).then(a.cmp(b)));
    let mut partition: Vec<Vec<LinkId>> = Vec::new();
    for link in links {
        let full = partition.len() >= MAX_GROUPS;
        match partition.last_mut() {
            Some(group) if full || close_enough((rates[&link], rates[&group[0]])) => {
                group.push(link)
            }
            _ => partition.push(vec![link]),
        }
    }
    partition
}

fn same_partition(groups: &[Group], partition: &[Vec<LinkId>]) -> bool {
    groups.len() == partition.len()
        && partition.iter().all(|part| {
            groups.iter().any(|group| {
                group.links.len() == part.len() && part.iter().all(|l| group.links.contains(l))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    /// The groups as sets of links, widest group first, for comparing.
    fn shape(groups: &[Group]) -> Vec<Vec<LinkId>> {
        let mut parts: Vec<Vec<LinkId>> = groups
            .iter()
            .map(|g| {
                let mut links = g.links.clone();
                links.sort();
                links
            })
            .collect();
        parts.sort();
        parts
    }

    fn id_of(groups: &[Group], link: LinkId) -> u64 {
        groups
            .iter()
            .find(|g| g.links.contains(&link))
            .expect("every link is in a group")
            .id
    }

    #[test]
    fn links_that_carry_about_the_same_share_one_encoder() {
        let mut groups = Groups::default();
        let now = Instant::now();
        let got = groups.follow(now, &[(1, 900_000), (2, 700_000), (3, 500_000)]);
        assert_eq!(shape(got), vec![vec![1, 2, 3]]);
    }

    #[test]
    fn a_much_thinner_link_gets_an_encoder_of_its_own() {
        let mut groups = Groups::default();
        let now = Instant::now();
        let got = groups.follow(now, &[(1, 900_000), (2, 800_000), (3, 150_000)]);
        assert_eq!(shape(got), vec![vec![1, 2], vec![3]]);
    }

    #[test]
    fn however_spread_the_links_there_are_at_most_three_encoders() {
        let mut groups = Groups::default();
        let now = Instant::now();
        let links: Vec<(LinkId, u32)> = (0..6).map(|i| (i, 2_000_000 >> i)).collect();
        let got = groups.follow(now, &links);
        assert_eq!(got.len(), MAX_GROUPS, "{got:?}");
        assert_eq!(got.iter().map(|g| g.links.len()).sum::<usize>(), 6);
        // Settled: nothing moves later either.
        let before = shape(got);
        let later = groups.follow(at(now, 10_000), &links);
        assert_eq!(shape(later), before);
    }

    /// Links past their first [`SETTLING`], all sharing one encoder from `start`.
    fn settled(links: &[(LinkId, u32)]) -> (Groups, Instant) {
        let mut groups = Groups::default();
        let start = Instant::now();
        assert_eq!(groups.follow(start, links).len(), 1);
        assert_eq!(groups.follow(at(start, 10_000), links).len(), 1);
        (groups, at(start, 10_000))
    }

    #[test]
    fn a_link_that_thins_is_split_off_after_a_while_and_keeps_its_encoder() {
        let (mut groups, start) = settled(&[(1, 900_000), (2, 900_000), (3, 900_000)]);
        let shared = groups.follow(start, &[(1, 900_000), (2, 900_000), (3, 900_000)])[0].id;
        // Link 3 narrows; for a moment (a dip of the estimate) nothing changes.
        let thin = [(1, 900_000), (2, 900_000), (3, 200_000)];
        assert_eq!(groups.follow(at(start, 1000), &thin).len(), 1);
        assert_eq!(groups.follow(at(start, 2500), &thin).len(), 1);
        // Out of shape for 2 s: link 3 is split off. It keeps the encoder that was already
        // following its rate (a keyframe would cost it most); 1 and 2 move to a new one.
        let got = groups.follow(at(start, 3000), &thin);
        assert_eq!(shape(got), vec![vec![1, 2], vec![3]]);
        assert_eq!(id_of(got, 3), shared);
        assert_ne!(id_of(got, 1), shared);
        assert_eq!(id_of(got, 1), id_of(got, 2));
    }

    #[test]
    fn a_link_found_thin_in_its_first_seconds_is_split_off_at_once() {
        let mut groups = Groups::default();
        let start = Instant::now();
        // Every link starts at the same estimate; link 3's falls as its path is found thin.
        let got = groups.follow(start, &[(1, 1_000_000), (2, 1_000_000), (3, 1_000_000)]);
        assert_eq!(got.len(), 1);
        let shared = got[0].id;
        let thin = [(1, 1_000_000), (2, 1_000_000), (3, 300_000)];
        let got = groups.follow(at(start, 1500), &thin);
        assert_eq!(shape(got), vec![vec![1, 2], vec![3]]);
        assert_eq!(id_of(got, 1), shared, "the wide links keep the encoder");
        assert_eq!(id_of(got, 2), shared);
        assert_ne!(
            id_of(got, 3),
            shared,
            "the thin link moves to one at its rate"
        );
        // A link that joins later is young while the others are not.
        let got = groups.follow(
            at(start, 20_000),
            &[(1, 1_000_000), (2, 1_000_000), (3, 300_000), (4, 1_000_000)],
        );
        assert_eq!(shape(got), vec![vec![1, 2, 4], vec![3]]);
        let got = groups.follow(
            at(start, 21_000),
            &[(1, 1_000_000), (2, 1_000_000), (3, 300_000), (4, 250_000)],
        );
        assert_eq!(shape(got), vec![vec![1, 2], vec![3, 4]]);
        // Found at under half the others' rate, between the thresholds where a settled
        // grouping stays as it is: split off all the same.
        let mut groups = Groups::default();
        groups.follow(start, &[(1, 521_000), (2, 521_000)]);
        let got = groups.follow(at(start, 1000), &[(1, 555_000), (2, 250_000)]);
        assert_eq!(shape(got), vec![vec![1], vec![2]]);
    }

    #[test]
    fn a_dip_shorter_than_the_wait_changes_nothing() {
        let wide = [(1, 900_000), (2, 900_000)];
        let thin = [(1, 900_000), (2, 200_000)];
        let (mut groups, start) = settled(&wide);
        for ms in (0..20_000).step_by(500) {
            // Thin for 1.5 s of every 3 s: never out of shape for 2 s on end.
            let links = if ms % 3000 < 1500 { &thin } else { &wide };
            assert_eq!(groups.follow(at(start, ms), links).len(), 1, "at {ms} ms");
        }
    }

    #[test]
    fn between_the_thresholds_a_grouping_stays_as_it_is() {
        let start = Instant::now();
        // Together, 0.4 apart: kept together (a split needs under 0.35).
        let mut together = Groups::default();
        together.follow(start, &[(1, 1_000_000), (2, 1_000_000)]);
        let got = together.follow(at(start, 30_000), &[(1, 1_000_000), (2, 400_000)]);
        assert_eq!(got.len(), 1);
        // Apart, 0.4 apart: kept apart (a merge needs 0.5).
        let mut apart = Groups::default();
        apart.follow(start, &[(1, 1_000_000), (2, 200_000)]);
        let got = apart.follow(at(start, 30_000), &[(1, 1_000_000), (2, 400_000)]);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_link_that_recovers_rejoins_the_others_after_a_while_on_its_own_encoder() {
        let mut groups = Groups::default();
        let start = Instant::now();
        let got = groups.follow(start, &[(1, 900_000), (2, 900_000), (3, 150_000)]);
        assert_eq!(got.len(), 2);
        let thin = id_of(got, 3);
        let wide = [(1, 900_000), (2, 900_000), (3, 800_000)];
        assert_eq!(groups.follow(at(start, 1000), &wide).len(), 2);
        let got = groups.follow(at(start, 3000), &wide);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].id, thin,
            "the wide links, which can afford a keyframe, moved"
        );
    }

    #[test]
    fn a_newcomer_joins_the_group_it_fits_at_once() {
        let mut groups = Groups::default();
        let start = Instant::now();
        groups.follow(start, &[(1, 900_000), (2, 150_000)]);
        let got = groups.follow(
            at(start, 100),
            &[(1, 900_000), (2, 150_000), (3, 120_000), (4, 800_000)],
        );
        assert_eq!(shape(got), vec![vec![1, 4], vec![2, 3]]);
    }

    #[test]
    fn links_that_leave_leave_their_group_and_empty_groups_go() {
        let mut groups = Groups::default();
        let start = Instant::now();
        groups.follow(start, &[(1, 900_000), (2, 150_000)]);
        let got = groups.follow(at(start, 100), &[(1, 900_000)]);
        assert_eq!(shape(got), vec![vec![1]]);
        assert!(groups.follow(at(start, 200), &[]).is_empty());
    }
}
