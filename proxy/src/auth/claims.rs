//! A route's requirements on a verified token: its scopes and its claim conditions.

use serde_json::{Map, Value};

use crate::config::{ClaimCondition, ClaimRequirement};

/// Returns whether `granted` contains every scope in `required`.
pub fn has_scopes<'a>(required: &[String], granted: impl Iterator<Item = &'a str> + Clone) -> bool {
    required
        .iter()
        .all(|scope| granted.clone().any(|granted| granted == scope))
}

/// Returns the first requirement that `claims` does not meet, or `None` when all are met.
pub fn unmet_requirement<'a>(
    requirements: &'a [ClaimRequirement],
    claims: &Map<String, Value>,
) -> Option<&'a ClaimRequirement> {
    requirements
        .iter()
        .find(|requirement| !satisfies(&requirement.condition, claims.get(&requirement.claim)))
}

/// Checks one condition. A missing claim and a `null` one fail every condition. Values
/// compare as JSON values, so type matters: `"5"` is not `5`, and `5.0` is not `5`.
fn satisfies(condition: &ClaimCondition, value: Option<&Value>) -> bool {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return false;
    };
    match condition {
        ClaimCondition::Equals(expected) => value == expected,
        ClaimCondition::OneOf(allowed) => allowed.contains(value),
        ClaimCondition::Contains(element) => value
            .as_array()
            .is_some_and(|items| items.contains(element)),
        ClaimCondition::Present => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn requirement(claim: &str, condition: ClaimCondition) -> ClaimRequirement {
        ClaimRequirement {
            claim: claim.to_owned(),
            condition,
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    #[test]
    fn scopes_must_all_be_granted() {
        let granted = ["foo".to_string(), "bar".to_string()];
        assert!(has_scopes(&[], granted.iter().map(String::as_str)));
        assert!(has_scopes(
            &["foo".into()],
            granted.iter().map(String::as_str)
        ));
        assert!(has_scopes(
            &["bar".into(), "foo".into()],
            granted.iter().map(String::as_str)
        ));
        assert!(!has_scopes(
            &["foo".into(), "baz".into()],
            granted.iter().map(String::as_str)
        ));
        assert!(!has_scopes(
            &["Foo".into()],
            granted.iter().map(String::as_str)
        ));
        assert!(!has_scopes(&["foo".into()], std::iter::empty()));
    }

    #[test]
    fn equals_compares_type_and_value() {
        let tenant = [requirement("tenant", ClaimCondition::Equals(json!("acme")))];
        let level = [requirement("level", ClaimCondition::Equals(json!(5)))];
        let admin = [requirement("admin", ClaimCondition::Equals(json!(true)))];

        assert_eq!(
            unmet_requirement(&tenant, &claims(json!({"tenant": "acme"}))),
            None
        );
        assert!(unmet_requirement(&tenant, &claims(json!({"tenant": "Acme"}))).is_some());
        assert!(unmet_requirement(&tenant, &claims(json!({"tenant": ["acme"]}))).is_some());
        assert!(unmet_requirement(&tenant, &claims(json!({}))).is_some());
        assert_eq!(
            unmet_requirement(&level, &claims(json!({"level": 5}))),
            None
        );
        assert!(unmet_requirement(&level, &claims(json!({"level": "5"}))).is_some());
        assert!(unmet_requirement(&level, &claims(json!({"level": 5.0}))).is_some());
        assert_eq!(
            unmet_requirement(&admin, &claims(json!({"admin": true}))),
            None
        );
        assert!(unmet_requirement(&admin, &claims(json!({"admin": "true"}))).is_some());
    }

    #[test]
    fn one_of_accepts_any_listed_value() {
        let role = [requirement(
            "role",
            ClaimCondition::OneOf(vec![json!("admin"), json!("ops")]),
        )];
        assert_eq!(
            unmet_requirement(&role, &claims(json!({"role": "ops"}))),
            None
        );
        assert!(unmet_requirement(&role, &claims(json!({"role": "dev"}))).is_some());
        assert!(unmet_requirement(&role, &claims(json!({"role": ["ops"]}))).is_some());
    }

    #[test]
    fn contains_needs_an_array() {
        let groups = [requirement(
            "groups",
            ClaimCondition::Contains(json!("admins")),
        )];
        let with = claims(json!({"groups": ["users", "admins"]}));
        assert_eq!(unmet_requirement(&groups, &with), None);
        assert!(unmet_requirement(&groups, &claims(json!({"groups": ["users"]}))).is_some());
        assert!(unmet_requirement(&groups, &claims(json!({"groups": "admins"}))).is_some());
        assert!(unmet_requirement(&groups, &claims(json!({"groups": [["admins"]]}))).is_some());
    }

    #[test]
    fn present_rejects_missing_and_null() {
        let verified = [requirement("email_verified", ClaimCondition::Present)];
        assert_eq!(
            unmet_requirement(&verified, &claims(json!({"email_verified": false}))),
            None
        );
        assert!(unmet_requirement(&verified, &claims(json!({"email_verified": null}))).is_some());
        assert!(unmet_requirement(&verified, &claims(json!({}))).is_some());
    }

    #[test]
    fn first_unmet_requirement_is_reported() {
        let both = [
            requirement("tenant", ClaimCondition::Equals(json!("acme"))),
            requirement("groups", ClaimCondition::Contains(json!("admins"))),
        ];
        let unmet = unmet_requirement(&both, &claims(json!({"tenant": "acme"})));
        assert_eq!(unmet.map(|r| r.claim.as_str()), Some("groups"));
    }
}
