//! The route index: finds the first route, in declaration order, that matches a method and a
//! path, at a cost that depends on the path and not on the number of routes.
//!
//! Routes sit in a trie keyed by path segment, the text between two `/`. A prefix route `p`
//! matches a path when the path equals `p` or starts with `p` followed by `/`, which is the same
//! as saying that the segments of `p` are the leading segments of the path. An exact route
//! matches when all segments are equal. So one walk down the trie along the request path visits
//! every route that can match. The prefix `/` is the exception, because it matches every path
//! that starts with `/`, and it is kept outside the trie.
//!
//! Each trie node groups its routes by method and stores the lowest route position for each.
//! The nine methods that RFC 9110 and RFC 5789 define are found by array slot, and other
//! methods by a binary search on the name. A walk over a path of `s` segments does at most `s`
//! binary searches among a node's children and `s + 2` lookups by method, so with `n` routes it
//! costs `O(s log n)` segment comparisons.
//!
//! Segments are compared byte by byte in a loop, ordered by length first, and standard methods
//! are compared as enum values. Comparing both as strings called the C library's `memcmp`,
//! which took more than half of a lookup's time under `perf` on the 2-core VM of the
//! `request_path` benchmark, and a one-rule lookup took about 105 ns instead of 27 ns.

use std::cmp::Ordering;

use http::Method;

use crate::config::{PathMatch, RouteRule};

/// Positions in the route table, indexed by path segment and method.
#[derive(Debug, Clone)]
pub(super) struct RouteIndex {
    /// Routes with the prefix `/`.
    root_prefix: MethodTable,
    /// The node for zero segments. It contains no routes, because splitting any path at `/`
    /// gives at least one segment, but it is the parent of every first segment.
    trie: Node,
}

impl RouteIndex {
    pub(super) fn new(routes: &[RouteRule]) -> RouteIndex {
        let mut index = RouteIndex {
            root_prefix: MethodTable::default(),
            trie: Node::new(),
        };
        for (position, route) in routes.iter().enumerate() {
            match &route.path {
                PathMatch::Prefix(prefix) if prefix == "/" => {
                    index.root_prefix.insert(position, &route.methods);
                }
                PathMatch::Prefix(prefix) => {
                    let node = index.trie.descend_or_insert(prefix, position);
                    node.prefix.insert(position, &route.methods);
                }
                PathMatch::Exact(path) => {
                    let node = index.trie.descend_or_insert(path, position);
                    node.exact.insert(position, &route.methods);
                }
            }
        }
        index
    }

    /// Returns the position in the route table of the first route that matches `method` and
    /// `path`, or `None` when no route matches. Any string is accepted as `path`, and the
    /// result is the same as trying the routes in declaration order.
    pub(super) fn first_match(&self, method: &Method, path: &str) -> Option<usize> {
        let mut best = if path.starts_with('/') {
            self.root_prefix.first_match(method)
        } else {
            None
        };

        let mut node = &self.trie;
        for segment in path.as_bytes().split(|&byte| byte == b'/') {
            let Some(child) = node.child(segment) else {
                return best;
            };
            // Every route at or below `child` was declared after `best`, so none can win.
            if best.is_some_and(|best| best < child.lowest) {
                return best;
            }
            node = child;
            best = lower(best, node.prefix.first_match(method));
        }

        // The walk used every segment, so `node` is the path itself and its exact routes match.
        lower(best, node.exact.first_match(method))
    }
}

/// A trie node: the routes whose path ends after a given run of segments.
#[derive(Debug, Clone)]
struct Node {
    /// Child nodes, one per next segment, sorted by [`compare_segments`] for binary search.
    children: Vec<(Box<[u8]>, Node)>,
    /// Prefix routes whose path ends here.
    prefix: MethodTable,
    /// Exact routes whose path ends here.
    exact: MethodTable,
    /// The lowest route position stored at this node or below it, `usize::MAX` when none.
    lowest: usize,
}

impl Node {
    fn new() -> Node {
        Node {
            children: Vec::new(),
            prefix: MethodTable::default(),
            exact: MethodTable::default(),
            lowest: usize::MAX,
        }
    }

    fn child(&self, segment: &[u8]) -> Option<&Node> {
        let position = self
            .children
            .binary_search_by(|(key, _)| compare_segments(key, segment))
            .ok()?;
        Some(&self.children[position].1)
    }

    /// Returns the node for `path`, creating the nodes that are missing, and records on the
    /// way that the route at `position` is stored at or below each node it passes.
    fn descend_or_insert(&mut self, path: &str, position: usize) -> &mut Node {
        let mut node = self;
        for segment in path.as_bytes().split(|&byte| byte == b'/') {
            node.lowest = node.lowest.min(position);
            let slot = match node
                .children
                .binary_search_by(|(key, _)| compare_segments(key, segment))
            {
                Ok(slot) => slot,
                Err(slot) => {
                    node.children.insert(slot, (segment.into(), Node::new()));
                    slot
                }
            };
            node = &mut node.children[slot].1;
        }
        node.lowest = node.lowest.min(position);
        node
    }
}

/// Orders segments by length, then byte by byte.
fn compare_segments(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        for (x, y) in a.iter().zip(b) {
            if x != y {
                return x.cmp(y);
            }
        }
        Ordering::Equal
    })
}

/// The methods with a slot of their own in a [`MethodTable`].
const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// The lowest route position for each method among the routes stored at one place.
#[derive(Debug, Clone, Default)]
struct MethodTable {
    /// The lowest position of a route that lists no methods and so applies to every method.
    any_method: Option<usize>,
    /// The lowest position of a route listing each of [`STANDARD_METHODS`], in that order.
    standard: [Option<usize>; STANDARD_METHODS.len()],
    /// The lowest position of a route listing each other method, sorted by method name.
    extension: Vec<(Method, usize)>,
}

impl MethodTable {
    /// Adds the route at `position`. Routes are added in declaration order, so the first
    /// position stored for a method is the lowest and later ones are not stored.
    fn insert(&mut self, position: usize, methods: &[Method]) {
        if methods.is_empty() {
            self.any_method.get_or_insert(position);
        }
        for method in methods {
            if let Some(slot) = standard_slot(method) {
                self.standard[slot].get_or_insert(position);
            } else if let Err(slot) = self.search_extension(method) {
                self.extension.insert(slot, (method.clone(), position));
            }
        }
    }

    fn first_match(&self, method: &Method) -> Option<usize> {
        let listed = match standard_slot(method) {
            Some(slot) => self.standard[slot],
            None => self
                .search_extension(method)
                .ok()
                .map(|slot| self.extension[slot].1),
        };
        lower(self.any_method, listed)
    }

    fn search_extension(&self, method: &Method) -> Result<usize, usize> {
        self.extension
            .binary_search_by(|(listed, _)| listed.as_str().cmp(method.as_str()))
    }
}

/// Returns the position of `method` in [`STANDARD_METHODS`], or `None` for an extension method.
fn standard_slot(method: &Method) -> Option<usize> {
    STANDARD_METHODS
        .iter()
        .position(|standard| standard == method)
}

/// Returns the lower of two optional positions, or the one that is present.
fn lower(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => a.or(b),
    }
}

#[cfg(test)]
mod tests;
