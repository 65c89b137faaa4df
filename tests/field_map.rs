//! A field map with mistakes is refused with every problem listed.

use recsync::mapping::MapProblem;
use recsync::{ConflictPolicy, Field, FieldMap};

#[test]
fn every_problem_is_reported_at_once() {
    let err = FieldMap::builder()
        .systems(["crm", "crm"])
        .key("missing")
        .field(Field::new("email").native("erp", "Email"))
        .field(Field::new("phone").native("crm", "email"))
        .field(
            Field::new("score")
                .one_way_from("crm")
                .policy(ConflictPolicy::authority("crm")),
        )
        .field(
            Field::new("title")
                .one_way_from("crm")
                .policy(ConflictPolicy::authority("marketing")),
        )
        .field(Field::new("phone"))
        .build()
        .unwrap_err();
    let p = &err.problems;
    assert!(
        p.contains(&MapProblem::DuplicateSystem {
            system: "crm".into()
        }),
        "{err}"
    );
    assert!(
        p.contains(&MapProblem::UnknownKey {
            key: "missing".into()
        }),
        "{err}"
    );
    assert!(
        p.contains(&MapProblem::UnknownSystem {
            field: "email".into(),
            system: "erp".into()
        }),
        "{err}"
    );
    assert!(
        p.contains(&MapProblem::UnknownSystem {
            field: "title".into(),
            system: "marketing".into()
        }),
        "{err}"
    );
    assert!(
        p.contains(&MapProblem::DuplicateField {
            field: "phone".into()
        }),
        "{err}"
    );
    assert!(
        p.iter().any(
            |x| matches!(x, MapProblem::NativeMappedTwice { native, .. } if native == "email")
        ),
        "{err}"
    );
    // The message names each field.
    let text = err.to_string();
    for name in ["email", "title", "phone", "missing"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn authority_must_be_a_source() {
    let err = FieldMap::builder()
        .systems(["hubspot", "salesforce"])
        .field(
            Field::new("score")
                .one_way_from("hubspot")
                .policy(ConflictPolicy::authority("salesforce")),
        )
        .build()
        .unwrap_err();
    assert_eq!(
        err.problems,
        vec![MapProblem::AuthorityNotSource {
            field: "score".into(),
            system: "salesforce".into()
        }]
    );
}

#[test]
fn a_single_system_is_refused() {
    let err = FieldMap::builder().system("crm").build().unwrap_err();
    assert_eq!(err.problems, vec![MapProblem::TooFewSystems { count: 1 }]);
}
