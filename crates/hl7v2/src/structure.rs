//! Message structures: which definition a message follows, and its segments arranged into
//! the groups of that structure (e.g. ORU_R01's PATIENT_RESULT / ORDER_OBSERVATION /
//! OBSERVATION).
//!
//! ```
//! use hl7v2::Message;
//! use hl7v2::structure::{arrange, structure_for};
//!
//! let raw = b"MSH|^~\\&|LAB||EHR||20240101||ORU^R01^ORU_R01|1|P|2.5.1\r\
//! PID|1||42\rOBR|1\rOBX|1|NM|GLU||95\rOBX|2|NM|NA||140\rOBR|2\rOBX|1|ST|NOTE||ok\rZLB|x\r";
//! let msg = Message::parse(raw)?;
//! let (_, def) = structure_for(&msg).expect("ORU_R01 is known");
//! let tree = arrange(&msg, def);
//! assert!(tree.problems.is_empty());
//! let result = tree.root.groups("PATIENT_RESULT").next().expect("one patient result");
//! let orders: Vec<_> = result.groups("ORDER_OBSERVATION").collect();
//! assert_eq!(orders.len(), 2);
//! let values: Vec<String> = orders[0]
//!     .groups("OBSERVATION")
//!     .flat_map(|obs| obs.segments(&msg))
//!     .filter_map(|obx| obx.field(5)?.text().ok().map(|t| t.into_owned()))
//!     .collect();
//! assert_eq!(values, ["95", "140"]);
//! // the Z-segment is kept, in the group where it appeared
//! assert_eq!(tree.root.all_segments().len(), msg.segment_count());
//! # Ok::<(), hl7v2::ParseError>(())
//! ```

use crate::defs::{Item, StructureDef, VersionDefs};
use crate::generated::structures::VERSIONS;
use crate::generated::tables::EVENT_STRUCTURES;
use crate::message::{Message, Segment};

/// The definitions for a version: the newest exported version whose major.minor is not newer
/// than the message's (2.8 → 2.8.2, 2.7 → 2.5.1), or the oldest exported one for versions
/// before it (`2.1`, `2.2`, `2.3`).
pub fn definitions(version: &str) -> &'static VersionDefs {
    let mut key = version_key(version);
    key.truncate(2);
    VERSIONS
        .iter()
        .rev()
        .find(|v| version_key(v.version)[..2] <= key[..])
        .unwrap_or(&VERSIONS[0])
}

/// Orders versions numerically: `2.10` after `2.9`, `2.5.1` after `2.5`.
pub fn version_key(version: &str) -> Vec<u32> {
    version
        .trim()
        .split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .collect()
}

/// The structure id a message follows: MSH-9-3 when given, else the one table 0354 names for
/// MSH-9-1 + MSH-9-2 (ADT^A04 → ADT_A01), else `ACK` for acknowledgments.
pub fn structure_id(msg: &Message<'_>) -> Option<String> {
    if let Some(s) = msg.structure_id() {
        return Some(s.into_owned());
    }
    let ty = msg.message_type()?;
    if ty == "ACK" {
        return Some("ACK".into());
    }
    let key = format!("{ty}^{}", msg.trigger_event()?);
    EVENT_STRUCTURES
        .binary_search_by(|(k, _)| (*k).cmp(key.as_str()))
        .ok()
        .map(|i| EVENT_STRUCTURES[i].1.to_owned())
}

/// The version definitions and structure for a message, looking in other versions when its
/// own lacks the structure (e.g. ORM_O01, dropped after 2.5.1).
pub fn structure_for(msg: &Message<'_>) -> Option<(&'static VersionDefs, &'static StructureDef)> {
    let id = structure_id(msg)?;
    let own = definitions(msg.version().as_deref().unwrap_or(""));
    if let Some(s) = own.structure(&id) {
        return Some((own, s));
    }
    VERSIONS
        .iter()
        .rev()
        .find_map(|v| v.structure(&id).map(|s| (v, s)))
}

/// A node of the group tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A segment, by its 0-based index in the message.
    Segment(usize),
    /// A group occurrence.
    Group(Group),
}

/// One occurrence of a group (or the whole message, as the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name (`ORDER_OBSERVATION`), or the structure id for the root.
    pub name: &'static str,
    /// Segments and groups in message order.
    pub children: Vec<Node>,
}

impl Group {
    /// Child groups with this name, in order.
    pub fn groups<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Group> + 's {
        self.children.iter().filter_map(move |n| match n {
            Node::Group(g) if g.name == name => Some(g),
            _ => None,
        })
    }

    /// The segments directly in this group (not in child groups), from the message.
    pub fn segments<'s, 'a: 's>(
        &'s self,
        msg: &'s Message<'a>,
    ) -> impl Iterator<Item = Segment<'a>> + 's {
        self.children.iter().filter_map(|n| match n {
            Node::Segment(i) => msg.segment_at(*i),
            Node::Group(_) => None,
        })
    }

    /// Every segment index in this group and below, in message order.
    pub fn all_segments(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<usize>) {
        for n in &self.children {
            match n {
                Node::Segment(i) => out.push(*i),
                Node::Group(g) => g.collect(out),
            }
        }
    }
}

/// Something in the segment order that does not fit the structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A required segment (or group, named by its first segment) is missing before the
    /// segment at `before` (or at the end when `None`).
    Missing {
        /// The missing segment id or group name.
        what: String,
        /// Index of the segment where it was expected.
        before: Option<usize>,
    },
    /// A segment the structure defines, in a place it cannot be.
    OutOfOrder(usize),
    /// A segment the structure does not define (Z-segments are allowed and not reported).
    Unexpected(usize),
}

/// The message arranged into the groups of its structure, with the problems found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The root group, named after the structure.
    pub root: Group,
    /// Order problems, in message order.
    pub problems: Vec<Problem>,
}

/// Arranges a message's segments into the structure's groups. Every segment ends up in the
/// tree exactly once: Z-segments and unknown segments stay where they appear.
pub fn arrange(msg: &Message<'_>, def: &'static StructureDef) -> Tree {
    let ids: Vec<&str> = msg.segments().map(|s| s.id()).collect();
    let mut m = Matcher {
        ids: &ids,
        pos: 0,
        problems: Vec::new(),
        root: def.items,
    };
    let mut root = Group {
        name: def.id,
        children: Vec::new(),
    };
    m.group(def.items, &mut root, &mut Vec::new());
    while m.pos < ids.len() {
        // only reached when a segment fits nowhere: keep it at the top level
        m.problems.push(Problem::OutOfOrder(m.pos));
        root.children.push(Node::Segment(m.pos));
        m.pos += 1;
    }
    Tree {
        root,
        problems: m.problems,
    }
}

struct Matcher<'i> {
    ids: &'i [&'i str],
    pos: usize,
    problems: Vec<Problem>,
    root: &'static [Item],
}

impl Matcher<'_> {
    /// Matches the entries of one group occurrence; `open` holds, for each enclosing group,
    /// its entries and the index of the entry being matched.
    fn group(
        &mut self,
        items: &'static [Item],
        node: &mut Group,
        open: &mut Vec<(&'static [Item], usize)>,
    ) {
        let mut counts = vec![0u16; items.len()];
        let mut at = 0;
        while let Some(&id) = self.ids.get(self.pos) {
            let fits = |j: usize, counts: &[u16]| {
                let it = &items[j];
                it.can_start_with(id) && it.card().max.is_none_or(|m| counts[j] < m)
            };
            if let Some(j) = (at..items.len()).find(|&j| fits(j, &counts)) {
                // Entering a new group only by skipping its optional first entries (OML_O21's
                // PRIOR_RESULT for an ORC) loses to an enclosing repeating group that starts
                // with this very segment (a new ORDER).
                let indirect =
                    matches!(items[j], Item::Group { .. }) && !items[j].starts_directly_with(id);
                if indirect
                    && open.iter().any(|(its, i)| {
                        its[*i].card().repeats() && its[*i].starts_directly_with(id)
                    })
                {
                    break;
                }
                self.missing_between(items, &counts, at, j);
                at = j;
                counts[j] += 1;
                match &items[j] {
                    Item::Segment { .. } => {
                        node.children.push(Node::Segment(self.pos));
                        self.pos += 1;
                    }
                    Item::Group {
                        name,
                        items: inner,
                        choice,
                        ..
                    } => {
                        let mut child = Group {
                            name,
                            children: Vec::new(),
                        };
                        open.push((items, j));
                        if *choice {
                            self.choice(inner, &mut child, open);
                        } else {
                            self.group(inner, &mut child, open);
                        }
                        open.pop();
                        node.children.push(Node::Group(child));
                    }
                }
                continue;
            }
            if open.iter().rev().any(|(its, i)| {
                its[*i].can_start_with(id) || its[i + 1..].iter().any(|it| it.can_start_with(id))
            }) {
                break;
            }
            // Out of place here and nowhere later: keep it in this group, where it appears, so
            // that the segments after it still land in the groups they belong to.
            if self.root.iter().any(|it| it.contains(id)) {
                self.problems.push(Problem::OutOfOrder(self.pos));
            } else if !id.starts_with('Z') {
                self.problems.push(Problem::Unexpected(self.pos));
            }
            node.children.push(Node::Segment(self.pos));
            self.pos += 1;
        }
        self.missing_between(items, &counts, at, items.len());
    }

    /// Matches one occurrence of a choice: the first alternative that can start with the
    /// current segment (the caller checked that one can).
    fn choice(
        &mut self,
        items: &'static [Item],
        node: &mut Group,
        open: &mut Vec<(&'static [Item], usize)>,
    ) {
        let Some(&id) = self.ids.get(self.pos) else {
            return;
        };
        let Some(j) = items.iter().position(|it| it.can_start_with(id)) else {
            return;
        };
        // the chosen alternative alone, as a one-entry sequence
        self.group(std::slice::from_ref(&items[j]), node, open);
    }

    /// Reports required entries in `from..to` that were not matched (entry `from` itself only
    /// if below its minimum).
    fn missing_between(&mut self, items: &[Item], counts: &[u16], from: usize, to: usize) {
        let before = (self.pos < self.ids.len()).then_some(self.pos);
        for j in from..to {
            let it = &items[j];
            if counts[j] < it.card().min {
                let what = match it {
                    Item::Segment { id, .. } => (*id).to_owned(),
                    Item::Group {
                        items,
                        choice: true,
                        ..
                    } => format!(
                        "one of {}",
                        items
                            .iter()
                            .map(first_segment)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Item::Group { name, .. } => format!("group {name}"),
                };
                self.problems.push(Problem::Missing { what, before });
            }
        }
    }
}

/// The first segment an entry names (for messages about a missing choice).
fn first_segment(item: &Item) -> &'static str {
    match item {
        Item::Segment { id, .. } => id,
        Item::Group { items, .. } => items.first().map_or("?", first_segment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(raw: &str) -> (Message<'_>, Tree) {
        let m = Message::parse(raw.as_bytes()).unwrap();
        let (_, def) = structure_for(&m).unwrap();
        let t = arrange(&m, def);
        (m, t)
    }

    #[test]
    fn walks_oru_groups() {
        let raw = "MSH|^~\\&|||||||ORU^R01|1|P|2.5.1\rPID|1\rOBR|1\rOBX|1\rOBX|2\rNTE|1\rOBR|2\rOBX|3\rZZZ|x\r";
        let (m, t) = tree(raw);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        let pr = t.root.groups("PATIENT_RESULT").next().unwrap();
        let orders: Vec<_> = pr.groups("ORDER_OBSERVATION").collect();
        assert_eq!(orders.len(), 2);
        let obs: Vec<_> = orders[0].groups("OBSERVATION").collect();
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[1].all_segments(), vec![4, 5]);
        // the Z-segment is kept where it appears
        assert_eq!(
            t.root.all_segments(),
            (0..m.segment_count()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn reports_order_problems() {
        let raw = "MSH|^~\\&|||||||ADT^A01|1|P|2.5.1\rPID|1\rEVN|A01\rXYZ|1\r";
        let (m, t) = tree(raw);
        assert!(
            t.problems.contains(&Problem::OutOfOrder(2)),
            "{:?}",
            t.problems
        );
        assert!(
            t.problems.contains(&Problem::Unexpected(3)),
            "{:?}",
            t.problems
        );
        assert!(
            t.problems
                .iter()
                .any(|p| matches!(p, Problem::Missing { what, .. } if what == "PV1")),
            "{:?}",
            t.problems
        );
        assert_eq!(t.root.all_segments().len(), m.segment_count());
    }

    #[test]
    fn finds_structures_by_event() {
        let m = Message::parse(b"MSH|^~\\&|||||||ADT^A04|1|P|2.3").unwrap();
        assert_eq!(structure_id(&m).as_deref(), Some("ADT_A01"));
        assert_eq!(definitions("2.3").version, "2.3.1");
        assert_eq!(definitions("2.6").version, "2.5.1");
        assert_eq!(definitions("2.8").version, "2.8.2");
        assert_eq!(definitions("2.7.1").version, "2.5.1");
        assert_eq!(definitions("2.9").version, "2.8.2");
    }
}
