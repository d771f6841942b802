//! The YAML side of injection: text insertions at byte offsets of the original document, so
//! comments, quoting, key order and values such as `defaultMode: 0400` stay exactly as
//! written.
//!
//! Block collections get block YAML in the layout `kubectl` prints; flow collections (`[]`,
//! `{...}`, and JSON input) get JSON, which is valid YAML flow syntax.

use super::plan::{Plan, PlanError};
use super::sidecar::{self, Template};
use super::tree::{Node, NodeValue};

/// Text to insert at a byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Insertion {
    pub offset: usize,
    pub text: String,
}

/// Computes the insertions that add the sidecar described by `plan` to the pod spec it
/// points at. `workload` names the pod in errors.
pub(crate) fn insertions(
    text: &str,
    plan: &Plan<'_>,
    image: &str,
    workload: &str,
) -> Result<Vec<Insertion>, PlanError> {
    let unsupported = |problem: String| PlanError::Unsupported {
        workload: workload.to_owned(),
        problem,
    };
    let container = sidecar::container(image, &plan.settings);
    let volumes = sidecar::volumes(&plan.settings);
    let mut edits = Vec::new();

    // Fields the pod spec lacks, added together in front of its first key.
    let mut new_fields: Vec<(&str, Vec<Template>)> = Vec::new();
    match plan.init_containers {
        Some(existing) => edits.push(prepend(text, existing, &[container]).map_err(&unsupported)?),
        None => new_fields.push(("initContainers", vec![container])),
    }
    match plan.volumes {
        Some(existing) => edits.push(prepend(text, existing, &volumes).map_err(&unsupported)?),
        None => new_fields.push(("volumes", volumes)),
    }
    if !new_fields.is_empty() {
        edits.push(add_fields(text, plan.spec, &new_fields).map_err(&unsupported)?);
    }
    Ok(edits)
}

/// Applies insertions to `text`. Insertions at the same offset keep their order.
pub(crate) fn apply(text: &str, mut insertions: Vec<Insertion>) -> String {
    let line_ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
    // A stable sort keeps insertions at the same offset in the order they were made.
    insertions.sort_by_key(|insertion| insertion.offset);
    let mut output = text.to_owned();
    let mut shift = 0;
    for insertion in &insertions {
        let inserted = insertion.text.replace('\n', line_ending);
        output.insert_str(insertion.offset + shift, &inserted);
        shift += inserted.len();
    }
    output
}

/// Inserts `items` in front of the first item of an existing sequence.
fn prepend(text: &str, sequence: &Node, items: &[Template]) -> Result<Insertion, String> {
    let NodeValue::Sequence {
        items: existing,
        flow,
    } = &sequence.value
    else {
        return Err("expected a list".into());
    };
    if *flow {
        let mut inserted = join_json(items);
        if !existing.is_empty() {
            inserted.push_str(", ");
        }
        return Ok(Insertion {
            offset: sequence.start + 1,
            text: inserted,
        });
    }
    let (line_start, indent) = block_line(text, sequence.start, LineStart::SequenceItem)?;
    let mut inserted = String::new();
    for item in items {
        item.write_item(indent, &mut inserted);
    }
    Ok(Insertion {
        offset: line_start,
        text: inserted,
    })
}

/// Inserts new fields in front of the first key of a mapping.
fn add_fields(
    text: &str,
    mapping: &Node,
    fields: &[(&str, Vec<Template>)],
) -> Result<Insertion, String> {
    let NodeValue::Mapping { entries, flow } = &mapping.value else {
        return Err("expected the pod spec to be a mapping".into());
    };
    if *flow {
        let members: Vec<String> = fields
            .iter()
            .map(|(key, items)| format!("\"{key}\": [{}]", join_json(items)))
            .collect();
        let mut inserted = members.join(", ");
        if !entries.is_empty() {
            inserted.push_str(", ");
        }
        return Ok(Insertion {
            offset: mapping.start + 1,
            text: inserted,
        });
    }
    let first_key = entries
        .first()
        .map(|(key, _)| key.start)
        .ok_or("the pod spec is empty")?;
    let (line_start, indent) = block_line(text, first_key, LineStart::MappingKey)?;
    let pad = " ".repeat(indent);
    let mut inserted = String::new();
    for (key, items) in fields {
        inserted.push_str(&format!("{pad}{key}:\n"));
        for item in items {
            item.write_item(indent, &mut inserted);
        }
    }
    Ok(Insertion {
        offset: line_start,
        text: inserted,
    })
}

/// What a line must start with, after its indentation, for injection to insert lines in
/// front of it.
#[derive(Clone, Copy)]
enum LineStart {
    /// The `-` of a block sequence's first item.
    SequenceItem,
    /// The first key of a block mapping, at the node's own offset.
    MappingKey,
}

/// Returns the start of the line that contains `offset` and the line's indentation, after
/// checking that the line starts as `expected` says.
fn block_line(text: &str, offset: usize, expected: LineStart) -> Result<(usize, usize), String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |newline| newline + 1);
    let line = &text[line_start..];
    let indent = line.len() - line.trim_start_matches(' ').len();
    let starts_right = match expected {
        LineStart::SequenceItem => line[indent..].starts_with('-'),
        LineStart::MappingKey => line_start + indent == offset,
    };
    if starts_right {
        Ok((line_start, indent))
    } else {
        Err(format!(
            "cannot edit the YAML around line {}: a list or mapping must start its own line \
             (write the pod spec in block style or as JSON)",
            text[..offset].matches('\n').count() + 1
        ))
    }
}

fn join_json(items: &[Template]) -> String {
    items
        .iter()
        .map(Template::to_json_text)
        .collect::<Vec<_>>()
        .join(", ")
}
