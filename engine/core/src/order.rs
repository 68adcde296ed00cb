//! Dependency order of a node list (Kahn's algorithm), shared by the executor's plan and the
//! stream analysis.

use std::collections::VecDeque;

/// Nodes in dependency order. `sources(i)` lists the nodes `i` reads from (repeats allowed),
/// `dependents(i)` the distinct nodes that read from `i`. Nodes on a cycle are left out:
/// validation reports cycles before anything runs.
pub(crate) fn dependency_order<'a, S>(
    n: usize,
    sources: impl Fn(usize) -> S,
    dependents: impl Fn(usize) -> &'a [usize],
) -> Vec<usize>
where
    S: Iterator<Item = usize>,
{
    let mut indeg: Vec<usize> = (0..n)
        .map(|i| {
            let mut s: Vec<usize> = sources(i).collect();
            s.sort_unstable();
            s.dedup();
            s.len()
        })
        .collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &d in dependents(i) {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                queue.push_back(d);
            }
        }
    }
    order
}
