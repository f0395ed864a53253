//! Building a snapshot's [`Interactions`]: texts and entries added in any order (a response's,
//! the store's), then hashed, sorted and de-duplicated once.

use std::cmp::Ordering;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{
    cmp_in, key_bytes, order_of, ActiveInteraction, Entry, InteractionKey, Interactions, Span,
    TooLarge, INLINE,
};

/// Builds [`Interactions`] from texts and entries in any order.
#[derive(Default)]
pub struct Builder {
    text: String,
    entries: Vec<Entry>,
}

impl Builder {
    /// Room for `entries` interactions and `text` bytes of text (a snapshot's size is usually
    /// close to the previous one's: no regrowing, no copies).
    pub fn with_capacity(entries: usize, text: usize) -> Self {
        if let Some((e, t)) = super::spare::SPARE.take(entries, text) {
            return Builder {
                text: t,
                entries: e,
            };
        }
        Builder {
            text: String::with_capacity(text),
            entries: Vec::with_capacity(entries),
        }
    }

    /// Keep `s`; where it is kept.
    pub fn text(&mut self, s: &str) -> Result<Span, TooLarge> {
        let at = u32::try_from(self.text.len()).map_err(|_| TooLarge)?;
        let len = u32::try_from(s.len()).map_err(|_| TooLarge)?;
        if at.checked_add(len).is_none_or(|end| end == u32::MAX) {
            return Err(TooLarge);
        }
        self.text.push_str(s);
        Ok(Span { at, len })
    }

    /// A text kept by [`Builder::text`].
    pub fn str(&self, s: Span) -> &str {
        let (at, len) = (s.at as usize, s.len as usize);
        self.text.get(at..at.saturating_add(len)).unwrap_or("")
    }

    /// Keep `s` if present.
    pub fn opt_text(&mut self, s: Option<&str>) -> Result<Span, TooLarge> {
        s.map_or(Ok(Span::NONE), |s| self.text(s))
    }

    /// Room for interactions, and for bytes of text.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    pub fn text_capacity(&self) -> usize {
        self.text.capacity()
    }

    /// Interactions added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Add an interaction (no dates read yet, not settled). Its agent may be set later
    /// ([`Builder::set_agent`]).
    pub fn push(
        &mut self,
        interaction: Span,
        agent: Span,
        subject: Span,
        from_name: Span,
        date_raw: Span,
    ) {
        self.entries.push(Entry {
            order: 0,
            key: [0; INLINE / 8],
            values: 0,
            interaction,
            agent,
            subject,
            from_name,
            date_raw,
            vendor_timestamp: None,
            first_seen: None,
            seen_after: None,
        });
    }

    /// Set the times of the interaction added last (one read from the store).
    pub fn set_times(
        &mut self,
        vendor_timestamp: Option<i64>,
        first_seen: Option<i64>,
        seen_after: Option<i64>,
    ) {
        if let Some(e) = self.entries.last_mut() {
            (e.vendor_timestamp, e.first_seen, e.seen_after) =
                (vendor_timestamp, first_seen, seen_after);
        }
    }

    /// Set the agent of the interactions added from position `from` on.
    pub fn set_agent(&mut self, from: usize, agent: Span) {
        for e in self.entries.iter_mut().skip(from) {
            e.agent = agent;
        }
    }

    /// Remove the interactions added from position `from` on; answers their `conn_id`s (their
    /// texts stay in the buffer, unused).
    pub fn take_from(&mut self, from: usize) -> Vec<Span> {
        let from = from.min(self.entries.len());
        self.entries.drain(from..).map(|e| e.interaction).collect()
    }

    /// Add a whole interaction, its times included.
    pub fn add(&mut self, k: &InteractionKey, v: &ActiveInteraction) -> Result<(), TooLarge> {
        let (i, a) = (self.text(&k.interaction_id)?, self.text(&k.agent_id)?);
        let s = self.opt_text(v.subject.as_deref())?;
        let f = self.opt_text(v.from_name.as_deref())?;
        let d = self.opt_text(v.vendor_timestamp_raw.as_deref())?;
        self.push(i, a, s, f, d);
        self.set_times(v.vendor_timestamp, v.first_seen, v.seen_after);
        Ok(())
    }

    /// The interactions in order, of equal keys the first added, and how many were dropped.
    pub fn finish(self) -> (Interactions, usize) {
        let mut out = Interactions {
            text: self.text,
            entries: self.entries,
            stored: Default::default(),
        };
        // In the order they were added, so the texts are read front to back.
        for i in 0..out.entries.len() {
            let e = out.entries[i];
            let (order, key) = order_and_key(out.str(e.interaction), out.str(e.agent));
            let values = value_hash([
                out.opt(e.subject),
                out.opt(e.from_name),
                out.opt(e.date_raw),
            ]);
            let e = &mut out.entries[i];
            (e.order, e.key, e.values) = (order, key, values);
        }
        let mut sorted: Vec<(u64, usize)> = out
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.order, i))
            .collect();
        sorted.sort_unstable();
        // Equal hashes (the same key, or rarely a collision): by key, then as added.
        let mut from = 0;
        while from < sorted.len() {
            let run = sorted[from..]
                .iter()
                .take_while(|(o, _)| *o == sorted[from].0)
                .count();
            if run > 1 {
                sorted[from..from + run].sort_by(|(_, a), (_, b)| {
                    let (ea, eb) = (&out.entries[*a], &out.entries[*b]);
                    out.cmp_entries(ea, &out, eb).then(a.cmp(b))
                });
            }
            from += run;
        }
        // Move every entry to its place in the order, in place (following each cycle of the
        // permutation: `sorted[k].1` is the entry position `k` takes; a second list of entries
        // would hold the snapshot twice at the cycle's peak), then drop repeated keys.
        let entries = &mut out.entries;
        for k in 0..sorted.len() {
            if sorted[k].1 == usize::MAX {
                continue;
            }
            let first = entries[k];
            let mut at = k;
            loop {
                let from = std::mem::replace(&mut sorted[at].1, usize::MAX);
                if from == k {
                    entries[at] = first;
                    break;
                }
                entries[at] = entries[from];
                at = from;
            }
        }
        drop(sorted);
        let (before, text) = (entries.len(), &out.text);
        entries.dedup_by(|later, kept| cmp_in(text, kept, text, later) == Ordering::Equal);
        let dropped = before - entries.len();
        (out, dropped)
    }
}

/// A key's order ([`order_of`] its FNV-1a hash) and its first [`INLINE`] bytes (as big-endian
/// words), in one pass.
fn order_and_key(interaction_id: &str, agent_id: &str) -> (u64, [u64; INLINE / 8]) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut bytes = [0; INLINE];
    for (n, b) in key_bytes(interaction_id, agent_id).enumerate() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        if let Some(slot) = bytes.get_mut(n) {
            *slot = b;
        }
    }
    let mut key = [0; INLINE / 8];
    for (word, chunk) in key.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut w = [0; 8];
        w.copy_from_slice(chunk);
        *word = u64::from_be_bytes(w);
    }
    (order_of(h), key)
}

/// XXH3 of the value texts, seeded by which are present (an absent text and an empty one differ).
fn value_hash(texts: [Option<&str>; 3]) -> u64 {
    let present = texts
        .iter()
        .enumerate()
        .fold(0u64, |f, (n, t)| f | (u64::from(t.is_some()) << n));
    texts.iter().fold(present, |h, t| {
        xxh3_64_with_seed(t.unwrap_or_default().as_bytes(), h)
    })
}

#[cfg(test)]
mod tests {
    use super::super::{key_hash, walk_at, At};
    use super::*;

    fn build(keys: &[(&str, &str)]) -> (Interactions, usize) {
        let mut b = Builder::default();
        for (n, (i, a)) in keys.iter().enumerate() {
            let k = InteractionKey {
                interaction_id: i.to_string(),
                agent_id: a.to_string(),
            };
            let v = ActiveInteraction {
                subject: Some(format!("#{n}")),
                ..Default::default()
            };
            b.add(&k, &v).unwrap();
        }
        b.finish()
    }

    #[test]
    fn the_order_hash_is_fnv_1a_of_the_separated_key() {
        // FNV-1a 64 of "c1\xffa1", computed by hand from the algorithm's definition.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"c1\xffa1" {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(key_hash("c1", "a1"), h);
        assert_eq!(order_and_key("c1", "a1").0, h.rotate_right(12));
    }

    #[test]
    fn of_equal_keys_the_first_is_kept_and_every_key_is_found() {
        let (it, dropped) = build(&[("c1", "a"), ("c2", "a"), ("c1", "a"), ("c1", "b")]);
        assert_eq!((it.len(), dropped), (3, 1));
        assert_eq!(it.get("c1", "a").unwrap().subject, Some("#0"));
        assert_eq!(it.get("c1", "b").unwrap().subject, Some("#3"));
        assert!(it.get("c3", "a").is_none());
    }

    /// Keys longer than the inline bytes, equal in them, and keys that are prefixes of others.
    fn tricky_keys() -> Vec<(String, String)> {
        let long = "x".repeat(INLINE + 5);
        let mut keys = vec![];
        for i in [
            "",
            "a",
            "a\0",
            "ab",
            &long,
            &format!("{long}1"),
            &format!("{long}2"),
        ] {
            for a in ["", "1", "12", &long] {
                if !i.is_empty() {
                    keys.push((i.to_string(), a.to_string()));
                }
            }
        }
        keys
    }

    #[test]
    fn the_order_is_the_same_whatever_order_keys_come_in_and_walks_match_them_exactly() {
        let keys = tricky_keys();
        let refs: Vec<(&str, &str)> = keys.iter().map(|(i, a)| (i.as_str(), a.as_str())).collect();
        let (fwd, _) = build(&refs);
        let rev: Vec<(&str, &str)> = refs.iter().rev().copied().collect();
        let (back, _) = build(&rev);
        let order = |it: &Interactions| -> Vec<(String, String)> {
            it.iter()
                .map(|v| (v.interaction_id.into(), v.agent_id.into()))
                .collect()
        };
        assert_eq!(order(&fwd), order(&back));
        assert_eq!(fwd.len(), keys.len(), "every key is distinct");
        // Every key matches itself, and only itself.
        let steps: Vec<At> = walk_at(&fwd, &back).collect();
        assert!(steps.iter().all(|s| matches!(s, At::Both(i, j) if i == j)));
        // Half the keys: the others are only on the left.
        let half: Vec<(&str, &str)> = refs.iter().step_by(2).copied().collect();
        let (some, _) = build(&half);
        let (mut both, mut left) = (0, 0);
        for s in walk_at(&fwd, &some) {
            match s {
                At::Both(i, j) => {
                    assert_eq!(fwd.at(i).unwrap().key(), some.at(j).unwrap().key());
                    both += 1;
                }
                At::Left(_) => left += 1,
                At::Right(_) => panic!("every key of the half is in the whole"),
            }
        }
        assert_eq!((both, left), (half.len(), keys.len() - half.len()));
    }

    #[test]
    fn values_differ_when_any_text_differs_or_is_absent() {
        let h = |s: Option<&str>, f: Option<&str>, d: Option<&str>| value_hash([s, f, d]);
        let base = h(Some("a"), Some("b"), Some("c"));
        assert_eq!(base, h(Some("a"), Some("b"), Some("c")));
        for other in [
            h(Some("a"), Some("b"), Some("d")),
            h(Some("ab"), Some(""), Some("c")),
            h(None, Some("b"), Some("c")),
            h(Some("a"), Some("b"), None),
            h(Some(""), Some("b"), Some("c")),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(h(None, None, None), h(Some(""), None, None));
    }
}
