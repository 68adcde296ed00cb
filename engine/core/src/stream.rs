//! Streamed sequences: which nodes run once per chunk.
//!
//! A node with a stream output (`SG_PORT_STREAM`) is a *producer*. Its *region* is everything
//! downstream of it, where the walk stops at *consumers*: region nodes with a stream input fed
//! from the region (a video writer, say). Nodes of the region run once per chunk; the
//! consumers' outputs are complete after the last chunk, so what is downstream of a consumer runs
//! after the stream, as an ordinary node.
//!
//! Three shapes cannot be run that way and are refused (by validation, with the node names): a
//! node inside two regions, a producer inside another producer's region (nested streams), and a
//! region node that also needs, directly or not, the output of one of the region's consumers.

/// One node as the analysis sees it.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamNode {
    /// Sources of the node's inputs: (source node, true when the input is a stream input).
    pub sources: Vec<(usize, bool)>,
    /// The node has a stream output.
    pub producer: bool,
}

/// The nodes a producer's chunks flow through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub producer: usize,
    /// Every node of the region but the producer, in dependency order.
    pub members: Vec<usize>,
    /// `consumer[i]` for `members[i]`: a stream consumer (its outputs leave the region).
    pub consumer: Vec<bool>,
}

impl Region {
    /// The producer and the members, in dependency order.
    pub fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.producer).chain(self.members.iter().copied())
    }
    /// True if `node` is the producer or a member.
    pub fn contains(&self, node: usize) -> bool {
        node == self.producer || self.members.contains(&node)
    }
}

/// A shape of streams that cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StreamProblem {
    /// `node` is downstream of two producers.
    TwoStreams {
        node: usize,
        first: usize,
        second: usize,
    },
    /// The producer `node` is inside the region of `outer`.
    Nested { node: usize, outer: usize },
    /// `node` is in the region of `producer` but depends on the final output of `consumer`.
    AfterEnd {
        node: usize,
        producer: usize,
        consumer: usize,
    },
}

/// Finds every producer's region, and the shapes that cannot run.
pub(crate) fn analyse(nodes: &[StreamNode]) -> (Vec<Region>, Vec<StreamProblem>) {
    let n = nodes.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in nodes.iter().enumerate() {
        for &(s, _) in &node.sources {
            if s < n && !dependents[s].contains(&i) {
                dependents[s].push(i);
            }
        }
    }
    let order = crate::order::dependency_order(
        n,
        |i| nodes[i].sources.iter().map(|&(s, _)| s),
        |i| dependents[i].as_slice(),
    );
    let mut regions = Vec::new();
    let mut problems = Vec::new();
    // Which region (index into `regions`) each node belongs to, first come.
    let mut owner: Vec<Option<usize>> = vec![None; n];
    // Nodes in two regions; only the first node where two streams meet is reported.
    let mut double = vec![false; n];

    for &p in order.iter().filter(|&&i| nodes[i].producer) {
        // In dependency order every source is decided before the node: a node is in the region
        // when a source is the producer or a member that is not a consumer (whose outputs are
        // only final after the stream).
        let mut inside = vec![false; n];
        let mut consumer = vec![false; n];
        inside[p] = true;
        let mut members = Vec::new();
        for &v in order.iter().skip_while(|&&i| i != p).skip(1) {
            let expands = |s: usize| inside[s] && !consumer[s];
            if !nodes[v].sources.iter().any(|&(s, _)| expands(s)) {
                continue;
            }
            consumer[v] = nodes[v]
                .sources
                .iter()
                .any(|&(s, stream_in)| stream_in && expands(s));
            inside[v] = true;
            members.push(v);
        }
        let region_index = regions.len();
        for &m in &members {
            // A producer that also consumes this stream would have to chain two sequences.
            if nodes[m].producer {
                problems.push(StreamProblem::Nested { node: m, outer: p });
            }
        }
        // A region node that needs a consumer's final output could only run after the stream.
        for &c in members.iter().filter(|&&m| consumer[m]) {
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = dependents[c].clone();
            while let Some(d) = stack.pop() {
                if std::mem::replace(&mut seen[d], true) {
                    continue;
                }
                if inside[d] {
                    problems.push(StreamProblem::AfterEnd {
                        node: d,
                        producer: p,
                        consumer: c,
                    });
                }
                stack.extend(dependents[d].iter().copied());
            }
        }
        for v in std::iter::once(p).chain(members.iter().copied()) {
            match owner[v] {
                None => owner[v] = Some(region_index),
                Some(other) => {
                    let first: &Region = &regions[other];
                    let first_producer = first.producer;
                    // Everything downstream of a nested producer is in both regions; the nested
                    // stream is the one problem to report there.
                    let nested = first.contains(p);
                    let met_upstream = nodes[v].sources.iter().any(|&(s, _)| double[s]);
                    double[v] = true;
                    if !nested && v != p && !met_upstream {
                        problems.push(StreamProblem::TwoStreams {
                            node: v,
                            first: first_producer,
                            second: p,
                        });
                    }
                }
            }
        }
        let consumer_flags = members.iter().map(|&m| consumer[m]).collect();
        regions.push(Region {
            producer: p,
            members,
            consumer: consumer_flags,
        });
    }
    (regions, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(sources: &[(usize, bool)], producer: bool) -> StreamNode {
        StreamNode {
            sources: sources.to_vec(),
            producer,
        }
    }

    #[test]
    fn the_region_stops_at_consumers() {
        // 0 model, 1 keys, 2 walk (producer), 3 synth (model + walk), 4 video (consumer),
        // 5 after (uses video's output), 6 a stream input fed by an ordinary value.
        let nodes = vec![
            node(&[], false),
            node(&[], false),
            node(&[(1, false)], true),
            node(&[(0, false), (2, false)], false),
            node(&[(3, true)], false),
            node(&[(4, false)], false),
            node(&[(0, true)], false),
        ];
        let (regions, problems) = analyse(&nodes);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            regions,
            vec![Region {
                producer: 2,
                members: vec![3, 4],
                consumer: vec![false, true],
            }]
        );
    }

    #[test]
    fn bad_shapes_are_named() {
        // Two producers feeding one node (and one more node after it: reported once).
        let two = vec![
            node(&[], true),
            node(&[], true),
            node(&[(0, false), (1, false)], false),
            node(&[(2, false)], false),
        ];
        let (_, p) = analyse(&two);
        assert_eq!(
            p,
            vec![StreamProblem::TwoStreams {
                node: 2,
                first: 0,
                second: 1
            }]
        );
        // A producer inside another's region: one problem, not one per node downstream.
        let nested = vec![
            node(&[], true),
            node(&[(0, false)], true),
            node(&[(1, false)], false),
        ];
        let (_, p) = analyse(&nested);
        assert_eq!(p, vec![StreamProblem::Nested { node: 1, outer: 0 }]);
        // A region node that needs a consumer's final output.
        let after = vec![
            node(&[], true),
            node(&[(0, true)], false),
            node(&[(1, false)], false),
            node(&[(0, true), (2, false)], false),
        ];
        let (_, p) = analyse(&after);
        assert_eq!(
            p,
            vec![StreamProblem::AfterEnd {
                node: 3,
                producer: 0,
                consumer: 1
            }]
        );
    }
}
