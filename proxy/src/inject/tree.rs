//! A YAML stream parsed into node trees that remember where each node starts in the text,
//! so injection can insert text at exact byte offsets and leave every other byte alone.
//!
//! Scalars keep their text without type resolution: Kubernetes reads YAML 1.1 (`0400` is an
//! octal number, `on` a boolean), which no Rust YAML crate implements, so the injector never
//! reinterprets or rewrites a value it did not add.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScanError, Span};

/// One node of a parsed document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// Byte offset of the node's first character in the input: the first key of a block
    /// mapping, the `[` or `{` of a flow collection, or the first item of a block sequence.
    /// Zero for nodes converted from JSON values, which have no text.
    pub start: usize,
    pub value: NodeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeValue {
    /// A scalar's text as the parser resolved it (quotes and escapes removed).
    Scalar(String),
    Sequence {
        items: Vec<Node>,
        flow: bool,
    },
    Mapping {
        entries: Vec<(Node, Node)>,
        flow: bool,
    },
    /// A `*alias` reference; the injector does not follow aliases.
    Alias,
}

/// A YAML syntax error with its position.
#[derive(Debug, thiserror::Error)]
#[error("invalid YAML at line {line}, column {column}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<ScanError> for SyntaxError {
    fn from(error: ScanError) -> SyntaxError {
        SyntaxError {
            line: error.marker().line(),
            column: error.marker().col() + 1,
            message: error.info().to_owned(),
        }
    }
}

impl Node {
    /// Returns the value of `key` when this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Mapping { entries, .. } => entries
                .iter()
                .find(|(name, _)| name.as_str() == Some(key))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// Follows `path` through nested mappings.
    pub fn path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(text) => Some(text),
            _ => None,
        }
    }

    /// Returns the items of a sequence, or an empty slice for any other node.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            NodeValue::Sequence { items, .. } => items,
            _ => &[],
        }
    }

    /// Converts a JSON value, such as the pod of an admission request. Numbers, booleans and
    /// null become scalars holding their JSON text.
    pub fn from_json(value: &serde_json::Value) -> Node {
        let value = match value {
            serde_json::Value::Null => NodeValue::Scalar("null".to_owned()),
            serde_json::Value::Bool(flag) => NodeValue::Scalar(flag.to_string()),
            serde_json::Value::Number(number) => NodeValue::Scalar(number.to_string()),
            serde_json::Value::String(text) => NodeValue::Scalar(text.clone()),
            serde_json::Value::Array(items) => NodeValue::Sequence {
                items: items.iter().map(Node::from_json).collect(),
                flow: true,
            },
            serde_json::Value::Object(fields) => NodeValue::Mapping {
                entries: fields
                    .iter()
                    .map(|(key, value)| (Node::scalar(key), Node::from_json(value)))
                    .collect(),
                flow: true,
            },
        };
        Node { start: 0, value }
    }

    fn scalar(text: &str) -> Node {
        Node {
            start: 0,
            value: NodeValue::Scalar(text.to_owned()),
        }
    }
}

/// Parses every document of a YAML stream. A document with no content (a `---` followed by
/// comments only) yields no node.
pub(crate) fn parse_stream(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let offsets = ByteOffsets::new(text);
    let mut builder = TreeBuilder {
        text,
        offsets: &offsets,
        stack: Vec::new(),
        documents: Vec::new(),
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event?;
        builder.push(event, span);
    }
    Ok(builder.documents)
}

/// The parser reports positions in characters; edits need byte offsets.
struct ByteOffsets(Vec<usize>);

impl ByteOffsets {
    fn new(text: &str) -> ByteOffsets {
        let mut offsets: Vec<usize> = text.char_indices().map(|(offset, _)| offset).collect();
        offsets.push(text.len());
        ByteOffsets(offsets)
    }

    fn of(&self, char_index: usize) -> usize {
        self.0
            .get(char_index)
            .copied()
            .unwrap_or_else(|| self.0.last().copied().unwrap_or(0))
    }
}

/// A collection whose end event has not arrived yet.
enum Open {
    Sequence {
        start: usize,
        flow: bool,
        items: Vec<Node>,
    },
    Mapping {
        start: usize,
        flow: bool,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct TreeBuilder<'a> {
    text: &'a str,
    offsets: &'a ByteOffsets,
    stack: Vec<Open>,
    documents: Vec<Node>,
}

impl TreeBuilder<'_> {
    fn push(&mut self, event: Event<'_>, span: Span) {
        let start = self.offsets.of(span.start.index());
        match event {
            Event::Scalar(text, ..) => self.add(Node {
                start,
                value: NodeValue::Scalar(Cow::into_owned(text)),
            }),
            Event::Alias(_) => self.add(Node {
                start,
                value: NodeValue::Alias,
            }),
            Event::SequenceStart(..) => {
                let flow = self.text[start..].starts_with('[');
                self.stack.push(Open::Sequence {
                    start,
                    flow,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(..) => {
                let flow = self.text[start..].starts_with('{');
                self.stack.push(Open::Mapping {
                    start,
                    flow,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    let node = match open {
                        Open::Sequence { start, flow, items } => Node {
                            start,
                            value: NodeValue::Sequence { items, flow },
                        },
                        Open::Mapping {
                            start,
                            flow,
                            entries,
                            ..
                        } => Node {
                            start,
                            value: NodeValue::Mapping { entries, flow },
                        },
                    };
                    self.add(node);
                }
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }

    /// Attaches a finished node to the open collection, or ends a document with it.
    fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                // A document whose root is an empty plain scalar has no content.
                if node.value != NodeValue::Scalar(String::new()) {
                    self.documents.push(node);
                }
            }
            Some(Open::Sequence { items, .. }) => items.push(node),
            Some(Open::Mapping { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(name) => entries.push((name, node)),
            },
        }
    }
}
